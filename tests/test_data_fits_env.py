"""Data recorded elsewhere is checked against the env before any training step."""

import numpy as np
import pytest

from sir.errors import UserError
from sir.training import TrainConfig, train


def foreign_dataset(root, repo_id, state_dim, names=None, camera=None, env_state_dim=None):
    """A LeRobotDataset written by lerobot itself, without sir's EnvSpec."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {"observation.state": {"dtype": "float32", "shape": (state_dim,), "names": names},
                "action": {"dtype": "float32", "shape": (7,), "names": None}}
    if env_state_dim:
        features["observation.environment_state"] = {"dtype": "float32", "shape": (env_state_dim,), "names": None}
    if camera:
        features[f"observation.images.{camera}"] = {"dtype": "video", "shape": (32, 32, 3),
                                                    "names": ["height", "width", "channels"]}
    ds = LeRobotDataset.create(repo_id=repo_id, fps=20, features=features, root=root / repo_id, use_videos=True)
    rng = np.random.default_rng(0)
    for _ in range(2):
        for _ in range(6):
            frame = {"observation.state": rng.normal(size=state_dim).astype(np.float32),
                     "action": rng.uniform(-1, 1, 7).astype(np.float32), "task": "lift"}
            if env_state_dim:
                frame["observation.environment_state"] = rng.normal(size=env_state_dim).astype(np.float32)
            if camera:
                frame[f"observation.images.{camera}"] = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return repo_id


def config(root, repo_id, tmp_path, **kw):
    return TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=4,
                       training_steps=2, eval_episodes=1, max_steps=5, checkpoint_dir=str(tmp_path / "ck"), **kw)


def test_joint_state_of_another_robot_is_refused_before_training(tmp_path):
    repo_id = foreign_dataset(tmp_path, "arm8", 8)
    with pytest.raises(UserError,
                       match=r"observation.state' has shape \(8,\) but the Lift env with Panda gives \(9,\)"):
        train(config(tmp_path, repo_id, tmp_path))
    assert not (tmp_path / "ck" / f"act_{repo_id}" / "final_model").exists()


def test_a_layout_of_the_right_size_but_other_names_is_refused(tmp_path):
    repo_id = foreign_dataset(tmp_path, "joints9", 9, names=[f"joint_{i}" for i in range(9)])
    with pytest.raises(UserError, match="joint_0.*--state-keys/--env-state-keys.*--no-eval"):
        train(config(tmp_path, repo_id, tmp_path))


def test_cameras_come_from_the_image_features_and_an_unknown_one_is_named(tmp_path):
    repo_id = foreign_dataset(tmp_path, "front_cam", 9, camera="front")
    with pytest.raises(UserError, match="no camera 'front'"):
        train(config(tmp_path, repo_id, tmp_path))


@pytest.mark.slow
def test_no_eval_trains_on_data_sir_cannot_simulate(tmp_path):
    repo_id = foreign_dataset(tmp_path, "arm8", 8, env_state_dim=4)
    result = train(config(tmp_path, repo_id, tmp_path, no_eval=True))
    assert result.best_model is None and result.best_metrics is None
    assert (result.final_model / "model.safetensors").is_file()


def test_env_flag_that_contradicts_the_recorded_envspec_is_refused(lift_demos, tmp_path):
    root, repo_id = lift_demos
    with pytest.raises(UserError, match="records Lift.*--env Stack"):
        train(config(root, repo_id, tmp_path, env="Stack"))
