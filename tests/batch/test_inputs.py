"""The scene list of ``rrsis batch``: files, globs, folders, text and CSV lists (no model)."""

import os

import pytest

from rrsis_geo.batch.inputs import list_scenes
from rrsis_geo.errors import ExpressionError, InputError


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    return str(path)


def test_folder_lists_its_rasters_in_order(tmp_path):
    for name in ("b.tif", "a.TIFF", "notes.txt", "sub/c.tif"):
        touch(tmp_path / "in" / name)
    scenes = list_scenes([str(tmp_path / "in")], "  the   lake ")
    assert [s.stem for s in scenes] == ["a", "b"]
    assert all(os.path.isabs(s.path) and s.expression == "the lake" for s in scenes)


def test_recursive_glob_and_plain_files(tmp_path):
    touch(tmp_path / "x" / "1.tif")
    touch(tmp_path / "x" / "deep" / "2.tif")
    scenes = list_scenes([str(tmp_path / "x" / "**" / "*.tif"), str(tmp_path / "missing.tif")], "the lake")
    # a named file that does not exist is the batch's to record as failed, not refused here
    assert [s.stem for s in scenes] == ["1", "2", "missing"]


def test_text_list_is_relative_to_its_folder(tmp_path):
    touch(tmp_path / "lists" / "scenes" / "a.tif")
    (tmp_path / "lists" / "scenes.txt").write_text("# a county\nscenes/a.tif\n\n/abs/b.tif  # absolute\n")
    scenes = list_scenes([str(tmp_path / "lists" / "scenes.txt")], "the lake")
    assert [s.path for s in scenes] == [str(tmp_path / "lists" / "scenes" / "a.tif"), "/abs/b.tif"]


def test_csv_gives_per_scene_expressions(tmp_path):
    (tmp_path / "s.csv").write_text("Scene,expression\na.tif,the largest lake\nb.tif,\n")
    a, b = list_scenes([str(tmp_path / "s.csv")], "the river")
    assert (a.expression, b.expression) == ("the largest lake", "the river")


def test_csv_without_a_scene_column(tmp_path):
    (tmp_path / "s.csv").write_text("file,expression\na.tif,x\n")
    with pytest.raises(InputError, match="'scene'"):
        list_scenes([str(tmp_path / "s.csv")], "the lake")


def test_same_stem_twice_is_refused(tmp_path):
    with pytest.raises(InputError, match="both write a.gpkg"):
        list_scenes([str(tmp_path / "x" / "a.tif"), str(tmp_path / "y" / "a.tif")], "the lake")


def test_a_scene_named_like_the_index_is_refused(tmp_path):
    with pytest.raises(InputError, match="index"):
        list_scenes([str(tmp_path / "index.tif")], "the lake")


def test_nothing_matched(tmp_path):
    with pytest.raises(InputError, match="matches no files"):
        list_scenes([str(tmp_path / "*.tif")], "the lake")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no rasters"):
        list_scenes([str(tmp_path / "empty")], "the lake")


def test_empty_expression(tmp_path):
    with pytest.raises(ExpressionError):
        list_scenes([str(tmp_path / "a.tif")], "  ")
