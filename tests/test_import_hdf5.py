"""sir.data.import_hdf5 on a file written by robosuite's own writers and on a robomimic-layout file."""

import json

import h5py
import numpy as np
import pytest

from sir.data.import_hdf5 import ImportConfig, controller_env_kwargs, import_hdf5, main
from sir.data.video import video_backend
from sir.envs.spec import EnvSpec

SEEDS = (0, 1)
# The env returns observations from robosuite's step(), whose positions are the MuJoCo
# kinematics of the state before the step's last 2 ms physics substep; a restored state is
# forwarded to its own kinematics, so positions of moving bodies differ by that substep.
# Joint positions (the gripper's, here) are read from the state itself and match exactly.
SUBSTEP_TOLERANCE = 2e-3
GRIPPER_QPOS = slice(7, 9)  # in the default observation.state: eef pos 3, eef quat 4, gripper qpos 2


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A demo.hdf5 from robosuite's DataCollectionWrapper and gather_demonstrations_as_hdf5
    (imported from robosuite's collect_human_demonstrations.py, which only defines functions
    at import), of Lift episodes driven by sir's scripted expert; and, per episode, the first
    simulator state with the observation features, actions and successes the env gave."""
    from robosuite.controllers import load_composite_controller_config
    from robosuite.scripts.collect_human_demonstrations import gather_demonstrations_as_hdf5
    from robosuite.wrappers import DataCollectionWrapper

    from sir.envs.factory import check_success, make_env, observation_to_features, reset_env
    from sir.envs.spec import default_spec
    from sir.experts import make_expert

    folder = tmp_path_factory.mktemp("robosuite_demos")
    spec = default_spec("Lift", "Panda")
    env = DataCollectionWrapper(make_env(spec), str(folder / "raw"))
    expert = make_expert("Lift", seed=0)
    episodes = []
    for seed in SEEDS:
        obs = reset_env(env, seed)
        expert.reset(env)
        episode = {"first_state": env.sim.get_state().flatten(), "state": [], "action": [], "success": []}
        for _ in range(150):
            episode["state"].append(observation_to_features(obs, spec)["observation.state"])
            action = np.asarray(expert.act(obs), dtype=np.float64)
            obs, _, _, _ = env.step(action)
            episode["action"].append(action)
            episode["success"].append(check_success(env))
            if episode["success"][-1]:
                break
        assert episode["success"][-1], "the scripted expert must succeed: robosuite keeps successful demos only"
        episodes.append({k: np.asarray(v) for k, v in episode.items()})
    env.close()
    # As collect_human_demonstrations.py builds env_info (with its default --controller).
    env_info = {"env_name": "Lift", "robots": ["Panda"],
                "controller_configs": load_composite_controller_config(robot="Panda")}
    gather_demonstrations_as_hdf5(str(folder / "raw"), str(folder), json.dumps(env_info))
    return folder / "demo.hdf5", episodes


def episode_of(demo_states: np.ndarray, episodes: list[dict]) -> dict:
    """The driven episode a demo holds (robosuite gathers episode folders in listdir order)."""
    return next(e for e in episodes if np.array_equal(e["first_state"], demo_states[0]))


def write_robomimic(path, source) -> None:
    """A robomimic dataset (our own writer, following robomimic's documented layout: data
    attrs total and env_args; data/demo_N attrs num_samples and model_file; states, actions,
    rewards, dones, obs/<key>) with the demos of robosuite's file ``source``, and robomimic's
    robosuite <= 1.4 OSC_POSE arm config."""
    osc_pose = {"type": "OSC_POSE", "input_max": 1, "input_min": -1, "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
                "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5], "kp": 150, "damping_ratio": 1,
                "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_ratio_limits": [0, 10],
                "position_limits": None, "orientation_limits": None, "uncouple_pos_ori": True,
                "control_delta": True, "interpolation": None, "ramp_ratio": 0.2}
    env_args = {"env_name": "Lift", "type": 1, "env_kwargs": {
        "has_renderer": False, "has_offscreen_renderer": False, "ignore_done": True, "use_object_obs": True,
        "use_camera_obs": False, "control_freq": 20, "controller_configs": osc_pose, "robots": ["Panda"],
        "camera_depths": False, "camera_heights": 84, "camera_widths": 84, "reward_shaping": False}}
    with h5py.File(source, "r") as src, h5py.File(path, "w") as out:
        data = out.create_group("data")
        data.attrs["env_args"] = json.dumps(env_args)
        total = 0
        for name in src["data"]:
            demo, states = data.create_group(name), src["data"][name]["states"][:]
            n = len(states)
            demo.attrs["num_samples"] = n
            demo.attrs["model_file"] = src["data"][name].attrs["model_file"]
            demo["states"] = states
            demo["actions"] = src["data"][name]["actions"][:]
            demo["rewards"] = np.eye(n)[-1]
            demo["dones"] = np.eye(n, dtype=np.int64)[-1]
            demo["obs/object"] = np.zeros((n, 10))
            total += n
        data.attrs["total"] = total


def load(root, repo_id):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root / repo_id, video_backend=video_backend())


def episode_columns(ds, index: int, *keys: str) -> dict[str, np.ndarray]:
    start, end = (int(ds.meta.episodes[k][index]) for k in ("dataset_from_index", "dataset_to_index"))
    rows = ds.hf_dataset.select(range(start, end))
    return {k: np.stack([np.asarray(v) for v in rows[k]]) for k in keys}


def test_robosuite_demos_import_with_regenerated_observations(recorded, tmp_path, logged, one_line_per_interval):
    path, episodes = recorded
    # Output to a file, as in a batch job: plain progress lines, no redraws.
    result, text = logged(import_hdf5, ImportConfig(path=str(path), root=str(tmp_path), repo_id="lift_human"))

    assert "replayed with recorded actions: 2/2 succeed" in text
    one_line_per_interval(text, "Importing demo.hdf5", 2)
    ds = load(tmp_path, "lift_human")
    spec = EnvSpec.load(tmp_path / "lift_human")
    assert spec.env_name == "Lift" and spec.controller == "BASIC" and spec.env_kwargs == {}
    info = json.loads((tmp_path / "lift_human" / "meta" / "sir_info.json").read_text())
    assert info["replay_open_loop"] == {"succeeded": 2, "episodes": 2, "failed_demos": []}
    with h5py.File(path, "r") as file:
        demos = [file["data"][name] for name in info["demos"]]
        assert [len(d["actions"]) for d in demos] == result.episode_lengths == list(ds.meta.episodes["length"])
        for index, demo in enumerate(demos):
            driven = episode_of(demo["states"][:], episodes)
            columns = episode_columns(ds, index, "action", "observation.state", "next.success")
            np.testing.assert_array_equal(columns["action"], demo["actions"][:].astype(np.float32))
            np.testing.assert_array_equal(columns["action"], driven["action"].astype(np.float32))
            state = columns["observation.state"]
            np.testing.assert_allclose(state[0], driven["state"][0], atol=1e-6)  # both at a reset, forwarded
            np.testing.assert_allclose(state, driven["state"], atol=SUBSTEP_TOLERANCE)
            np.testing.assert_allclose(state[:, GRIPPER_QPOS], driven["state"][:, GRIPPER_QPOS], atol=1e-6)
            np.testing.assert_array_equal(columns["next.success"].reshape(-1), driven["success"])


def test_robomimic_dataset_imports_with_a_camera(recorded, tmp_path, capsys):
    source, episodes = recorded
    path = tmp_path / "lift_robomimic.hdf5"
    write_robomimic(path, source)
    main([str(path), "--root", str(tmp_path), "--repo-id", "lift_mimic", "--cameras", "agentview",
          "--image-size", "32", "--max-episodes", "1"])

    assert "replayed with recorded actions: 1/1 succeed" in capsys.readouterr().out
    ds = load(tmp_path, "lift_mimic")
    spec = EnvSpec.load(tmp_path / "lift_mimic")
    # robomimic's robosuite 1.4 arm config has sir's gains: the plain BASIC controller.
    assert spec.cameras == ["agentview"] and spec.controller == "BASIC" and spec.env_kwargs == {}
    assert ds.meta.total_episodes == 1
    assert ds.features["observation.images.agentview"]["shape"] == (32, 32, 3)
    with h5py.File(path, "r") as file:
        demo = file["data"]["demo_1"]
        assert ds.meta.total_frames == len(demo["actions"])
        driven = episode_of(demo["states"][:], episodes)
        columns = episode_columns(ds, 0, "action", "observation.state")
        np.testing.assert_array_equal(columns["action"], demo["actions"][:].astype(np.float32))
        np.testing.assert_allclose(columns["observation.state"], driven["state"], atol=SUBSTEP_TOLERANCE)
    assert ds[0]["observation.images.agentview"].shape == (3, 32, 32)


def _demo_file(path, env="Lift", controller=None, states=True):
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env"] = env
        info = {"env_name": env, "robots": ["Panda"]}
        if controller is not None:
            info["controller_configs"] = controller
        data.attrs["env_info"] = json.dumps(info)
        if states:
            data["demo_1/states"] = np.zeros((3, 32))
        data["demo_1/actions"] = np.zeros((3, 7))


def _not_hdf5(path):
    path.write_text("not an HDF5 file\n")


def _no_data_group(path):
    with h5py.File(path, "w") as f:
        f.create_group("demos")


JOINT_VELOCITY = {"type": "BASIC", "body_parts": {"right": {"type": "JOINT_VELOCITY", "gripper": {"type": "GRIP"}}}}


@pytest.mark.parametrize("make_file, message", [
    (_not_hdf5, "is not an HDF5 file"),
    (_no_data_group, "has no 'data' group"),
    (lambda p: _demo_file(p, env="NoSuchEnv"), "env 'NoSuchEnv', which robosuite"),
    (lambda p: _demo_file(p, states=False), "has no 'states'"),
    (lambda p: _demo_file(p, controller=JOINT_VELOCITY), "BASIC controller with JOINT_VELOCITY arms"),
], ids=["not-hdf5", "no-data", "unknown-env", "no-states", "controller"])
def test_bad_files_are_refused_in_one_sentence(tmp_path, capsys, make_file, message):
    path = tmp_path / "demo.hdf5"
    make_file(path)
    with pytest.raises(SystemExit) as exc:
        main([str(path), "--root", str(tmp_path), "--repo-id", "refused"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "refused").exists()


def test_a_basic_osc_pose_controller_with_other_gains_is_kept_in_the_spec(tmp_path):
    from robosuite.controllers import load_composite_controller_config

    config = load_composite_controller_config(robot="Panda")
    assert controller_env_kwargs(tmp_path, config, ["Panda"]) == {}
    config["body_parts"]["right"]["kp"] = 300
    assert controller_env_kwargs(tmp_path, config, ["Panda"]) == {"controller_configs": config}
