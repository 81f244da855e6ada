"""Issue 13 part 6: lerobot's dataset tools keep sir's datasets whole. Every recorder writes the
same label columns, so aggregate_datasets merges demos and corrections; an EnvSpec the tools
drop is rebuilt from what they keep, or its loss refused at start in one sentence."""

import shutil

import numpy as np
import pandas as pd
import pytest

from sir.data.labels import LABEL_FEATURE_SPECS
from sir.envs.layout import spec_without_record
from sir.envs.spec import SPEC_FILENAME, EnvSpec
from sir.errors import UserError
from sir.training import TrainConfig, train


def frames_of(path):
    return pd.concat(pd.read_parquet(f) for f in sorted((path / "data").glob("*/*.parquet")))


def info_features(path):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    return LeRobotDatasetMetadata(path.name, root=path).features


def tiny(repo_ids, root, tmp_path, **kw):
    settings = dict(policy="act", preset="tiny", batch_size=4, training_steps=2, eval_freq=0, eval_episodes=1,
                    max_steps=5, checkpoint_dir=str(tmp_path / "ck"))
    return TrainConfig(repo_ids=repo_ids, root=str(root), **{**settings, **kw})


@pytest.fixture(scope="module")
def corrections(lift_demos, tmp_path_factory):
    """(root, repo_id) of sir.dagger.record corrections of a tiny ACT trained for 3 steps."""
    from sir.dagger.record import RecordConfig, record_corrections

    root, repo_id = lift_demos
    run = train(tiny([repo_id], root, tmp_path_factory.mktemp("weak"), training_steps=3))
    out = tmp_path_factory.mktemp("corrections")
    result = record_corrections(RecordConfig(checkpoint=str(run.final_model), episodes=2, root=str(out),
                                             repo_id="lift_dagger", patience=5, max_steps=150))
    assert result.path is not None and result.interventions == 2
    return out, "lift_dagger"


def test_demos_carry_the_label_columns_of_corrections(lift_demos):
    root, repo_id = lift_demos
    path = root / repo_id
    features = info_features(path)
    for name, spec in LABEL_FEATURE_SPECS.items():
        assert features[name]["dtype"] == spec["dtype"] == "int64" and tuple(features[name]["shape"]) == (1,)
    frames = frames_of(path)
    assert (np.stack(frames["source"]).ravel() == 1).all() and (np.stack(frames["success"]).ravel() == 1).all()


def test_aggregate_datasets_merges_demos_and_corrections_and_sir_trains_on_the_merge(
        lift_demos, corrections, tmp_path, capsys):
    from lerobot.datasets.aggregate import aggregate_datasets

    (demo_root, demo_id), (dagger_root, dagger_id) = lift_demos, corrections
    assert info_features(demo_root / demo_id) == info_features(dagger_root / dagger_id)
    merged = tmp_path / "data" / "lift_merged"
    aggregate_datasets([demo_id, dagger_id], "lift_merged", roots=[demo_root / demo_id, dagger_root / dagger_id],
                       aggr_root=merged)
    assert not (merged / "meta" / SPEC_FILENAME).exists(), "aggregate_datasets now keeps the EnvSpec: simplify sir"

    frames = frames_of(merged)
    demo_frames = len(frames_of(demo_root / demo_id))
    dagger = frames[frames["episode_index"] >= 6]
    human_ok = (np.stack(dagger["source"]).ravel() == 1) & (np.stack(dagger["success"]).ravel() == 1)
    capsys.readouterr()
    result = train(tiny(["lift_merged"], merged.parent, tmp_path))
    out = capsys.readouterr().out
    assert "has no meta/sir_env.json (lerobot's editing tools" in out and "rebuilt its EnvSpec" in out
    # The demos (human, successful) are kept whole beside the human frames of successful corrections.
    assert "lift_merged: Filtered 8 episodes" in out
    assert 0 < human_ok.sum() < len(dagger)
    assert result.datasets[0]["frames"] == demo_frames + int(human_ok.sum())
    recorded = EnvSpec.load(demo_root / demo_id)
    assert (result.env_spec.env_name, result.env_spec.robots, result.env_spec.state_keys) == (
        recorded.env_name, recorded.robots, recorded.state_keys)


@pytest.mark.parametrize("tool", ["delete_episodes", "split_dataset"])
def test_the_envspec_dropped_by_an_editing_tool_is_rebuilt_from_what_it_keeps(lift_demos, tmp_path, tool):
    from lerobot.datasets import dataset_tools
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, repo_id = lift_demos
    source = LeRobotDataset(repo_id, root=root / repo_id)
    if tool == "delete_episodes":
        dataset_tools.delete_episodes(source, [0, 2], output_dir=tmp_path / "edited", repo_id="edited")
        edited = tmp_path / "edited"
    else:
        edited = tmp_path / "splits" / "train"
        dataset_tools.split_dataset(source, {"train": [0, 1, 2], "val": [3, 4]}, output_dir=tmp_path / "splits")
    assert EnvSpec.load(edited) is None, f"{tool} now keeps meta/sir_env.json: simplify sir"

    spec, line, rebuilt = spec_without_record("edited", edited, info_features(edited))
    recorded = EnvSpec.load(root / repo_id)
    assert rebuilt and "rebuilt its EnvSpec" in line and "\n" not in line
    same = ("env_name", "robots", "controller", "control_freq", "state_keys", "env_state_keys", "cameras", "task")
    assert {k: getattr(spec, k) for k in same} == {k: getattr(recorded, k) for k in same}
    # --env/--robot still choose, as for data recorded elsewhere.
    spec, line, rebuilt = spec_without_record("edited", edited, info_features(edited), env="Stack")
    assert not rebuilt and spec.env_name == "Stack" and line.startswith("No EnvSpec recorded")


def test_a_lost_envspec_that_cannot_be_rebuilt_to_fit_is_refused_before_training(data_root, data_state8, tmp_path):
    # A sir dataset whose observation.state is not the default layout's 9 values lost its spec.
    shutil.copytree(data_root / data_state8, tmp_path / "data" / "odd_layout")
    (tmp_path / "data" / "odd_layout" / "meta" / SPEC_FILENAME).unlink()
    with pytest.raises(UserError) as err:
        train(tiny(["odd_layout"], tmp_path / "data", tmp_path))
    message = str(err.value)
    assert message.startswith("Dataset 'odd_layout' has no meta/sir_env.json (lerobot's editing tools")
    assert "copy meta/sir_env.json from the source dataset or pass --env/--robot" in message and "\n" not in message
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("mode", ["successful-corrections", "hg-dagger", "iwr", "sirius", "all"])
def test_labelled_demos_are_trained_on_whole_in_every_mode_failures_kept_with_keep_failures_too(mode):
    from sir.data.mixture.weights import training_frames

    episode = np.repeat([0, 1, 2], 4)
    labels = {"source": np.ones((12, 1), np.int64), "success": np.repeat([1, 0, 1], 4)[:, None]}
    said = []
    frames, summary, classes = training_frames("demos", episode, labels, np.array([0, 1, 2]), mode, said.append)
    assert frames.tolist() == list(range(12)) and summary is None and classes is None
    assert said == ["demos: demonstrations (every frame human), using all 3 episodes (12 frames)"]
    # One policy frame makes it a DAgger dataset again: the failed episode goes by default.
    labels["source"][0] = 0
    frames, summary, _ = training_frames("d", episode, labels, np.array([0, 1, 2]), mode, said.append)
    assert summary is None or summary.policy_frames == 1
    if mode == "successful-corrections":
        assert frames.tolist() == [1, 2, 3, 8, 9, 10, 11]
