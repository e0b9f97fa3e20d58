"""The ``rrsis`` command: a thin click layer over :mod:`rrsis_geo`."""
