"""Many scenes, one expression: ``rrsis batch``.

- :mod:`.inputs`: the scene list from files, globs, folders and text / CSV lists;
- :mod:`.tasks`: one scene as one task (the same engine call as ``rrsis segment``), the
  per-worker model cache and the record each task leaves in the output folder;
- :mod:`.collect`: the index of scenes and the merged answers;
- :mod:`.run`: running the tasks serially or on Dask distributed, with retries and progress.
"""
