"""Issue 13 parts 4 and 9: datasets named by hub repo id (resolved in lerobot's cache,
HF_LEROBOT_HOME, with an optional @revision) and --push-to-hub. No network here: the cache
is a temporary folder, the hub is offline, and the upload goes to a stand-in for HfApi."""

import json
import shutil

import pytest

from sir.data.resolve import resolve_dataset, split_revision
from sir.errors import UserError
from sir.training import TrainConfig, train

COMMIT = "0123abcd" * 5  # 40 hex digits, as huggingface_hub records a snapshot's commit


@pytest.fixture
def hub_cache(monkeypatch, tmp_path, lift_demos):
    """HF_LEROBOT_HOME in tmp_path holding lift_demos as the hub dataset org/lift, downloaded
    from commit COMMIT (the file huggingface_hub's snapshot_download leaves), offline."""
    from lerobot.utils import constants

    cache = tmp_path / "hf_lerobot"
    root, repo_id = lift_demos
    shutil.copytree(root / repo_id, cache / "org" / "lift")
    meta = cache / "org" / "lift" / ".cache" / "huggingface" / "download" / "meta"
    meta.mkdir(parents=True)
    (meta / "info.json.metadata").write_text(f"{COMMIT}\netag\n1.0\n")
    monkeypatch.setenv("HF_LEROBOT_HOME", str(cache))
    monkeypatch.setattr(constants, "HF_LEROBOT_HOME", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def tiny(repo_ids, tmp_path, **kw):
    settings = dict(policy="act", preset="tiny", batch_size=4, training_steps=2, eval_freq=0, eval_episodes=1,
                    max_steps=5, checkpoint_dir=str(tmp_path / "ck"))
    return TrainConfig(repo_ids=repo_ids, **{**settings, **kw})


@pytest.mark.parametrize("text, parts", [("org/lift", ("org/lift", None)), ("org/lift@v3.0", ("org/lift", "v3.0")),
                                         ("lift@" + COMMIT, ("lift", COMMIT))])
def test_a_revision_follows_the_repo_id_after_an_at(text, parts):
    assert split_revision(text) == parts


@pytest.mark.parametrize("text", ["org/lift@", "@main", "org/lift@a@b"])
def test_a_malformed_revision_is_refused_in_one_sentence(text):
    with pytest.raises(UserError, match="is not <name> or <user/name>@<revision>"):
        split_revision(text)


def test_a_pinned_revision_is_refused_beside_root(tmp_path):
    with pytest.raises(UserError, match="pins a hub revision, but --root reads local folders"):
        resolve_dataset("org/lift@main", tmp_path)


def test_a_pinned_revision_resolves_to_the_cached_copy_of_that_commit(hub_cache):
    resolved = resolve_dataset(f"org/lift@{COMMIT[:7]}")
    assert resolved.root == hub_cache / "org" / "lift" and resolved.revision == COMMIT
    assert resolved.repo_id == f"org/lift@{COMMIT[:7]}"


def test_a_tag_sir_fetched_resolves_offline_while_the_cache_holds_its_commit(hub_cache):
    note = hub_cache / "org" / "lift" / ".cache" / "huggingface" / "sir_pinned_revision"
    note.write_text(f"v3.0\n{COMMIT}\n")
    assert resolve_dataset("org/lift@v3.0").revision == COMMIT
    note.write_text("v3.0\nfedcba\n")  # another revision was fetched over it since
    with pytest.raises(UserError, match="v3.0"):
        resolve_dataset("org/lift@v3.0")


def test_another_revision_than_the_cached_one_is_refused_offline_naming_both(hub_cache):
    with pytest.raises(UserError) as err:
        resolve_dataset("org/lift@v9.9")
    message = str(err.value)
    assert f"revision {COMMIT}, not v9.9" in message and "HF_HUB_OFFLINE" in message and "\n" not in message


def test_training_and_verify_read_a_hub_dataset_from_the_cache_with_its_revision(hub_cache, tmp_path, capsys):
    from sir.data.verify import main as verify

    result = train(tiny([f"org/lift@{COMMIT[:7]}"], tmp_path))
    assert result.datasets[0]["root"] == str(hub_cache / "org" / "lift")
    assert result.datasets[0]["revision"] == COMMIT and result.datasets[0]["repo_id"] == f"org/lift@{COMMIT[:7]}"
    saved = json.loads((result.run_dir / "train_config.json").read_text())
    assert saved["_resolved"]["datasets"][0]["revision"] == COMMIT
    assert json.loads((result.final_model / "sir_checkpoint.json").read_text())["datasets"][0]["revision"] == COMMIT
    capsys.readouterr()
    verify(["--repo-ids", "org/lift"])
    assert COMMIT in capsys.readouterr().out


# -- --push-to-hub -------------------------------------------------------------------------


def test_push_to_hub_offline_is_refused_before_training(lift_demos, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root, repo_id = lift_demos
    with pytest.raises(UserError) as err:
        train(tiny([repo_id], tmp_path, root=str(root), push_to_hub="someone/act_lift"))
    assert "HF_HUB_OFFLINE" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "ck").exists()


def test_push_to_hub_without_a_token_is_refused_before_training(lift_demos, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no_tokens"))
    root, repo_id = lift_demos
    with pytest.raises(UserError, match="needs a Hugging Face token; run `hf auth login` or set HF_TOKEN"):
        train(tiny([repo_id], tmp_path, root=str(root), push_to_hub="someone/act_lift"))
    assert not (tmp_path / "ck").exists()


def test_push_to_hub_refuses_a_malformed_repo_id(lift_demos, tmp_path):
    root, repo_id = lift_demos
    with pytest.raises(UserError, match="is not a Hugging Face repo id"):
        train(tiny([repo_id], tmp_path, root=str(root), push_to_hub="not a repo//id"))


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records the repos made and the files uploaded."""

    calls: list = []

    def create_repo(self, repo_id, private=False, exist_ok=False, **_):
        FakeHub.calls.append(("create_repo", repo_id, private, exist_ok))
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, repo_type, folder_path, commit_message=None, **_):
        from pathlib import Path

        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir() if p.is_file()}
        FakeHub.calls.append(("upload_folder", repo_id, repo_type, files))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()


@pytest.mark.parametrize("no_eval", [False, True])
def test_push_to_hub_uploads_the_best_model_or_the_final_one_without_evaluation(
        lift_demos, tmp_path, monkeypatch, capsys, no_eval):
    import huggingface_hub
    from huggingface_hub.repocard import RepoCard

    import sir.training.trainer

    monkeypatch.setattr(sir.training.trainer, "check_push", lambda repo: "someone")  # the start check, tested above
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.setattr(RepoCard, "validate", lambda self, repo_type=None: None)  # lerobot's card validates online
    FakeHub.calls = []
    root, repo_id = lift_demos
    result = train(tiny([repo_id], tmp_path, root=str(root), push_to_hub="someone/act_lift", no_eval=no_eval))
    pushed = result.final_model if no_eval else result.best_model
    assert pushed is not None and pushed.is_dir()
    (_, repo, private, exist_ok), (_, up_repo, repo_type, files) = FakeHub.calls
    assert repo == up_repo == "someone/act_lift" and exist_ok and repo_type == "model" and not private
    local = {p.name: p.read_bytes() for p in pushed.iterdir() if p.is_file()}
    assert {k: v for k, v in files.items() if k != "README.md"} == local
    assert {"config.json", "model.safetensors", "sir_env.json", "policy_preprocessor.json"} <= set(files)
    assert b"lerobot" in files["README.md"] and repo_id.encode() in files["README.md"]
    assert (f"Pushed {pushed} to someone/act_lift: https://huggingface.co/someone/act_lift/commit/1"
            in capsys.readouterr().out)
