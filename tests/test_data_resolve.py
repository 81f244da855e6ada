"""Part 1: naming datasets with --repo-ids and finding their folders."""

import shutil

import pytest

from sir.data.resolve import parse_repo_ids, resolve_dataset
from sir.errors import UserError


def test_repo_ids_are_comma_separated_and_whitespace_tolerant():
    assert parse_repo_ids(" a , b,c ,") == ["a", "b", "c"]
    assert parse_repo_ids(["x/y ", " z"]) == ["x/y", "z"]


@pytest.mark.parametrize("text, words", [("a,b,a", "'a' twice"), (" , ", "empty")])
def test_repeated_or_missing_repo_ids_are_errors(text, words):
    with pytest.raises(UserError, match=words):
        parse_repo_ids(text)


def test_root_holds_each_dataset_including_ids_with_a_slash(data_root, data_demos):
    target = data_root / "someone" / "lift-v1"
    if not target.exists():
        shutil.copytree(data_root / data_demos, target)
    assert resolve_dataset(data_demos, data_root).root == data_root / data_demos
    resolved = resolve_dataset("someone/lift-v1", data_root)
    assert resolved.root == target and resolved.revision is None


def test_a_missing_dataset_under_root_names_the_id_and_the_folder(tmp_path):
    with pytest.raises(UserError) as err:
        resolve_dataset("nowhere", tmp_path)
    assert "'nowhere'" in str(err.value) and str(tmp_path / "nowhere") in str(err.value)


def test_without_root_the_hugging_face_cache_is_used(monkeypatch, data_root, data_demos, tmp_path):
    from lerobot.utils import constants

    cache = tmp_path / "hf_lerobot"
    shutil.copytree(data_root / data_demos, cache / "org" / "demos")
    # What huggingface_hub's snapshot_download leaves behind: the commit on the first line.
    meta = cache / "org" / "demos" / ".cache" / "huggingface" / "download" / "meta"
    meta.mkdir(parents=True)
    (meta / "info.json.metadata").write_text("0123abc\netag\n1.0\n")
    monkeypatch.setattr(constants, "HF_LEROBOT_HOME", cache)
    resolved = resolve_dataset("org/demos")
    assert resolved.root == cache / "org" / "demos"
    assert resolved.revision == "0123abc"


def test_offline_with_nothing_cached_says_where_it_looked(monkeypatch, tmp_path):
    from lerobot.utils import constants

    monkeypatch.setattr(constants, "HF_LEROBOT_HOME", tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        resolve_dataset("org/not-here")
    message = str(err.value)
    assert "'org/not-here'" in message and str(tmp_path / "org" / "not-here") in message
    assert "HF_HUB_OFFLINE" in message and "\n" not in message
