import json

import numpy as np
import pytest

from sir.data.collect import CollectConfig, parse_config
from sir.data.collect import collect as record_demos
from sir.data.collect import main as collect
from sir.data.video import video_backend
from sir.envs.spec import EnvSpec


def test_recorder_writes_a_lerobot_dataset_with_the_env_spec(lift_demos):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, repo_id = lift_demos
    ds = LeRobotDataset(repo_id, root=root / repo_id, video_backend=video_backend())
    assert ds.meta.total_episodes == 6
    for key in ("observation.state", "observation.environment_state", "action", "next.reward", "next.success"):
        assert key in ds.features
    assert ds.features["action"]["shape"] == (7,)
    spec = EnvSpec.load(root / repo_id)
    assert spec is not None and spec.env_name == "Lift"
    assert ds.features["observation.state"]["shape"] == (9,)  # eef pos 3 + quat 4 + gripper 2
    # Every kept episode ends in success, and the task string is the spec's.
    last = ds[int(ds.meta.episodes["dataset_to_index"][0]) - 1]
    assert bool(last["next.success"].item())
    assert last["task"] == spec.task


def test_recorder_refuses_to_overwrite_an_existing_dataset(lift_demos, capsys):
    root, repo_id = lift_demos
    before = (root / repo_id / "meta" / "info.json").read_text()
    with pytest.raises(SystemExit) as exc:
        collect(["--episodes", "1", "--root", str(root), "--repo-id", repo_id])
    assert exc.value.code == 2
    assert "already exists" in capsys.readouterr().err
    assert (root / repo_id / "meta" / "info.json").read_text() == before


def test_failed_episodes_are_dropped_unless_kept(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    # Three steps are too few for the expert to lift the cube: every episode fails.
    collect(["--episodes", "2", "--root", str(tmp_path), "--repo-id", "fails", "--max-steps", "3", "--keep-failures"])
    meta = LeRobotDatasetMetadata("fails", root=tmp_path / "fails")
    assert meta.total_episodes == 2 and meta.total_frames == 6
    info = json.loads((tmp_path / "fails" / "meta" / "sir_info.json").read_text())
    assert info["recorded_by"] == "sir.data.collect"
    with pytest.raises(SystemExit) as exc:
        collect(["--episodes", "1", "--root", str(tmp_path), "--repo-id", "dropped", "--max-steps", "3"])
    assert exc.value.code == 2
    assert not (tmp_path / "dropped").exists()


@pytest.mark.slow
def test_recorded_camera_frame_matches_a_fresh_render_of_the_same_state(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from sir.envs.factory import make_env, observation_to_features, reset_env

    collect(["--episodes", "1", "--root", str(tmp_path), "--repo-id", "cam", "--cameras", "agentview",
             "--image-size", "48", "--max-steps", "40", "--seed", "5"])
    ds = LeRobotDataset("cam", root=tmp_path / "cam", video_backend=video_backend())
    recorded = ds[0]["observation.images.agentview"].numpy()
    assert recorded.shape == (3, 48, 48)

    spec = EnvSpec.load(tmp_path / "cam")
    env = make_env(spec)
    fresh = observation_to_features(reset_env(env, 5), spec)["observation.images.agentview"]
    env.close()
    fresh = fresh.transpose(2, 0, 1).astype(np.float32) / 255.0
    err = np.abs(recorded - fresh).mean()
    err_flipped = np.abs(recorded - fresh[:, ::-1]).mean()
    # Video compression blurs a little; a flipped or other image would be far off.
    assert err < 0.04
    assert err < err_flipped / 2


def test_layout_flags_choose_the_recorded_observation_keys(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    collect(["--episodes", "1", "--root", str(tmp_path), "--repo-id", "lean", "--max-steps", "3", "--keep-failures",
             "--state-keys", "robot0_eef_pos,robot0_gripper_qpos", "--env-state-keys", "cube_pos"])
    meta = LeRobotDatasetMetadata("lean", root=tmp_path / "lean")
    assert meta.features["observation.state"]["shape"] == (5,)
    assert meta.features["observation.environment_state"]["shape"] == (3,)
    spec = EnvSpec.load(tmp_path / "lean")
    assert spec.state_keys == ["robot0_eef_pos", "robot0_gripper_qpos"] and spec.env_state_keys == ["cube_pos"]


def test_an_empty_env_state_layout_records_cameras_and_proprioception_only(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    collect(["--episodes", "1", "--root", str(tmp_path), "--repo-id", "vision", "--max-steps", "3", "--keep-failures",
             "--cameras", "agentview", "--image-size", "32", "--env-state-keys", ""])
    meta = LeRobotDatasetMetadata("vision", root=tmp_path / "vision")
    assert "observation.environment_state" not in meta.features
    assert "observation.images.agentview" in meta.features
    assert EnvSpec.load(tmp_path / "vision").env_state_keys == []


def test_collect_returns_what_it_wrote(lift_demos, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    result = record_demos(CollectConfig(repo_id="two", root=str(tmp_path), episodes=2, seed=3))
    meta = LeRobotDatasetMetadata("two", root=tmp_path / "two")
    assert result.path == tmp_path / "two"
    assert (result.episodes, result.frames) == (meta.total_episodes, meta.total_frames)
    assert result.episode_lengths == list(meta.episodes["length"]) and len(result.episode_lengths) == 2
    assert result.successes == 2 and result.tried >= 2
    # An existing dataset is reported as it is on disk.
    root, repo_id = lift_demos
    again = record_demos(CollectConfig(repo_id=repo_id, root=str(root), skip_existing=True))
    meta = LeRobotDatasetMetadata(repo_id, root=root / repo_id)
    assert again.path == root / repo_id and again.episodes == meta.total_episodes == 6
    assert again.episode_lengths == list(meta.episodes["length"]) and again.frames == meta.total_frames


def test_the_command_line_fills_the_same_config_as_python():
    assert parse_config(["--repo-id", "x"]) == CollectConfig(repo_id="x")
    cfg = parse_config(["--repo-id", "x", "--cameras", "agentview, robot0_eye_in_hand", "--state-keys", "a,b"])
    assert cfg.cameras == ["agentview", "robot0_eye_in_hand"] and cfg.state_keys == ["a", "b"]
    with pytest.raises(SystemExit) as exc:
        collect(["--repo-id", "x", "--episodes", "0"])
    assert exc.value.code == 2
