"""Shared fixtures. Every dataset a test uses is made here or in the test: nothing comes
from a hub (HF_HUB_OFFLINE is set), and wandb runs offline."""

from __future__ import annotations

import os
import signal

# A suite started in the background (nohup, or `&` without job control) inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler, neither here nor in the
# commands the Ctrl-C tests start: give SIGINT its Python handler back (children inherit it).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def lift_demos(tmp_path_factory):
    """(root, repo_id) of 6 scripted Lift demos, state only, recorded by sir.data.collect."""
    from sir.data.collect import main as collect

    root = tmp_path_factory.mktemp("datasets")
    collect(["--env", "Lift", "--episodes", "6", "--root", str(root), "--repo-id", "lift_demos", "--seed", "0"])
    return root, "lift_demos"


# -- output to a file, as in a batch job ---------------------------------------------------


@pytest.fixture
def logged(tmp_path):
    """``logged(fn, *args)`` calls ``fn(*args)`` with stdout and stderr going to one file, as
    ``command > log 2>&1`` runs it: Python's streams and the file descriptors (so C code and
    child processes write there too). Returns (what fn returned, the file's text)."""
    import contextlib
    import sys

    def run(fn, *args, **kwargs):
        path = tmp_path / f"log_{len(list(tmp_path.glob('log_*')))}.txt"
        with path.open("a") as log:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    result = fn(*args, **kwargs)
            finally:
                log.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        return result, path.read_text()

    return run


def progress_counts(text: str, desc: str) -> list[tuple[int, int]]:
    """(done, total) of each plain progress line ``desc: done/total unit | ...`` in ``text``."""
    import re

    return [(int(m[1]), int(m[2])) for m in re.finditer(rf"^{re.escape(desc)}: (\d+)/(\d+) \S+ \|", text, re.M)]


@pytest.fixture(scope="session")
def progress_lines():
    """``progress_lines(text, desc)``: (done, total) of each plain progress line of ``desc``."""
    return progress_counts


@pytest.fixture(scope="session")
def one_line_per_interval():
    """``check(text, desc, total)``: ``text`` holds no carriage return, and the progress lines
    of ``desc`` count up to ``total`` in steps of at least the reporting interval (a tenth of
    the loop), one line each, the last at ``total``."""
    import math

    def check(text: str, desc: str, total: int, initial: int = 0) -> list[int]:
        assert "\r" not in text
        counts = progress_counts(text, desc)
        assert counts and all(t == total for _, t in counts), f"no progress lines of {desc!r} in:\n{text}"
        done = [d for d, _ in counts]
        every = max(1, math.ceil((total - initial) / 10))
        assert done[-1] == total and len(done) <= math.ceil((total - initial) / every)
        assert all(b - a >= every for a, b in list(zip([initial, *done], done, strict=False))[:-1]), done
        assert done == sorted(set(done))
        return done

    return check


# -- datasets (sir.data tests) ------------------------------------------------------------
# Small synthetic LeRobot datasets, written once per session into one folder, so a test can
# mix any of them with make_mixture(DataConfig(repo_ids=..., root=data_root)).

# Per episode: the frames' source labels (0 policy, 1 human) and the episode's success.
DAGGER_EPISODES = [
    ([0] * 8 + [1] * 12, 1),  # policy, then a successful human takeover: 12 frames kept
    ([0] * 5 + [1] * 10, 0),  # takeover that failed: dropped
    ([1] * 10, 1),  # all human, successful: 10 frames kept
    ([0] * 12, 1),  # the policy succeeded alone: nothing to learn from
]
DAGGER_KEPT_FRAMES = 22


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sir_datasets")


def _data_dataset(root: Path, repo_id: str, lengths: list[int], **kwargs) -> str:
    from sir.data.record.synthetic import make_synthetic_dataset

    if not (root / repo_id / "meta" / "info.json").is_file():
        make_synthetic_dataset(root, repo_id, lengths, **kwargs)
    return repo_id


@pytest.fixture(scope="session")
def lerobot_dagger_dataset(data_root):
    """``write(repo_id, episodes, outcome)``: a DAgger dataset in ``data_root`` written by
    lerobot's own ``LeRobotDataset`` writer in lerobot 0.6's format, with Lift's observation
    layout: ``intervention`` (bool, shape (1,), names None) True on the frames a person drove,
    as ``lerobot-rollout --strategy.type=dagger`` records it, and the outcome as
    ``next.success`` (True on a successful episode's last frame), as ``next.reward`` (shaped
    values below 1, 1.0 on a successful episode's last frame; a failed episode reaches 1.0
    midway and ends below it, as a cube lifted then dropped), or not at all (None).
    ``episodes``: (per-frame sources, success) as DAGGER_EPISODES."""
    import numpy as np

    def write(repo_id: str, episodes, outcome: str | None) -> str:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        root = data_root / repo_id
        if (root / "meta" / "info.json").is_file():
            return repo_id
        features = {
            "observation.state": {"dtype": "float32", "shape": (9,), "names": None},
            "observation.environment_state": {"dtype": "float32", "shape": (10,), "names": None},
            "action": {"dtype": "float32", "shape": (7,), "names": None},
            "intervention": {"dtype": "bool", "shape": (1,), "names": None},
        }
        if outcome == "next.success":
            features[outcome] = {"dtype": "bool", "shape": (1,), "names": None}
        elif outcome == "next.reward":
            features[outcome] = {"dtype": "float32", "shape": (1,), "names": None}
        dataset = LeRobotDataset.create(repo_id, 20, features, root=root, robot_type="panda", use_videos=False)
        rng = np.random.default_rng(len(episodes))
        for sources, success in episodes:
            n = len(sources)
            for t, source in enumerate(sources):
                frame = {"observation.state": rng.normal(size=9).astype(np.float32),
                         "observation.environment_state": rng.normal(size=10).astype(np.float32),
                         "action": rng.uniform(-1, 1, size=7).astype(np.float32),
                         "intervention": np.array([bool(source)]), "task": "lift the cube"}
                if outcome == "next.success":
                    frame[outcome] = np.array([bool(success) and t == n - 1])
                elif outcome == "next.reward":
                    peak = t == n - 1 if success else t == n // 2
                    frame[outcome] = np.array([1.0 if peak else 0.9 * t / n], dtype=np.float32)
                dataset.add_frame(frame)
            dataset.save_episode()
        dataset.finalize()
        return repo_id

    return write


@pytest.fixture(scope="session")
def data_demos(data_root) -> str:
    """5 state-only episodes of 18 to 30 frames."""
    return _data_dataset(data_root, "demos", [20, 25, 30, 22, 18], seed=1)


@pytest.fixture(scope="session")
def data_demos_b(data_root) -> str:
    """3 state-only episodes with other statistics (values shifted by 5)."""
    return _data_dataset(data_root, "more_demos", [15, 40, 12], offset=5.0, seed=2)


@pytest.fixture(scope="session")
def data_dagger(data_root) -> str:
    """A DAgger dataset: see DAGGER_EPISODES."""
    return _data_dataset(data_root, "dagger", [len(s) for s, _ in DAGGER_EPISODES], dagger=DAGGER_EPISODES,
                         offset=-3.0, seed=3)


@pytest.fixture(scope="session")
def data_dagger_failed(data_root) -> str:
    """A DAgger dataset with no successful human correction."""
    episodes = [([0] * 6 + [1] * 4, 0), ([0] * 8, 1)]
    return _data_dataset(data_root, "dagger_failed", [len(s) for s, _ in episodes], dagger=episodes, seed=4)


@pytest.fixture(scope="session")
def data_dagger_bool(data_root) -> str:
    """DAgger labels stored as bool."""
    episodes = [([0] * 3 + [1] * 5, 1), ([1] * 4, 0)]
    return _data_dataset(data_root, "dagger_bool", [8, 4], dagger=episodes, label_dtype="bool", seed=5)


@pytest.fixture(scope="session")
def data_fps10(data_root) -> str:
    return _data_dataset(data_root, "demos_fps10", [10, 10], fps=10, seed=6)


@pytest.fixture(scope="session")
def data_state8(data_root) -> str:
    """observation.state of 8 values instead of 9."""
    return _data_dataset(data_root, "demos_state8", [10, 10], state_dim=8, seed=7)


@pytest.fixture(scope="session")
def data_no_env_state(data_root) -> str:
    """No observation.environment_state."""
    return _data_dataset(data_root, "demos_no_env_state", [10, 10], env_state_dim=0, seed=8)


@pytest.fixture(scope="session")
def data_no_reward(data_root) -> str:
    """Without the next.reward feature, and recorded in another env layout (horizon)."""
    return _data_dataset(data_root, "demos_no_reward", [10, 12], drop_features=["next.reward"],
                    spec_overrides={"horizon": 123}, seed=9)


@pytest.fixture(scope="session")
def data_camera(data_root) -> str:
    """2 short episodes with a 32x32 camera stored as H.264 video."""
    return _data_dataset(data_root, "camera", [8, 6], cameras=["agentview"], seed=10)


@pytest.fixture(scope="session")
def data_camera_b(data_root) -> str:
    return _data_dataset(data_root, "camera_b", [5, 7, 4], cameras=["agentview"], seed=11)


@pytest.fixture(scope="session")
def data_camera_png(data_root) -> str:
    """A camera stored as PNG images in the parquet files (dtype image, not video)."""
    return _data_dataset(data_root, "camera_png", [6, 5], cameras=["agentview"], image_size=16, use_videos=False,
                         seed=12)


@pytest.fixture(scope="session")
def data_dagger_episodes() -> list[tuple[list[int], int]]:
    return DAGGER_EPISODES


@pytest.fixture(scope="session")
def eval_tiny_act(lift_demos):
    """(policy, preprocessor, postprocessor, spec) for the sir.eval tests: an untrained tiny ACT
    with lift_demos' stats, built as sir.training.train_policy builds one. Shared: do not train it."""
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from sir.data import make_mixture
    from sir.data.mixture.config import DataConfig
    from sir.policies import build_config

    root, repo_id = lift_demos
    mixture = make_mixture(DataConfig(repo_ids=repo_id, root=root), verbose=False)
    features = dataset_to_policy_features(mixture.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items() if k not in outputs}
    cfg = build_config("act", "tiny", inputs, outputs, "cpu")
    policy = make_policy(cfg, ds_meta=mixture)
    preprocessor, postprocessor = make_pre_post_processors(cfg, dataset_stats=mixture.stats)
    spec = next(s for s in mixture.env_specs if s is not None)
    return policy, preprocessor, postprocessor, spec


# -- policies (tests/test_policies_matrix.py) ----------------------------------------------


@pytest.fixture(scope="session")
def policies_camera_demos(tmp_path_factory):
    """(root, repo_id) of 2 scripted Lift demos with one 16x16 agentview camera (H.264 video),
    recorded by sir.data.collect: real actions a camera policy can learn, rendered at a size
    that keeps the recording (about 6 env steps/s with a camera here) and training short."""
    from sir.data.collect import main as collect

    root = tmp_path_factory.mktemp("policies_datasets")
    collect(["--env", "Lift", "--episodes", "2", "--root", str(root), "--repo-id", "lift_camera16", "--seed", "0",
             "--cameras", "agentview", "--image-size", "16", "--max-steps", "40"])
    return root, "lift_camera16"


# -- a local Ray cluster (the Ray evaluation backend) ---------------------------------------


@pytest.fixture(scope="session")
def ray_cluster():
    """The address of a one-node Ray cluster on 127.0.0.1, started for the session with
    `ray start --head --block` and stopped after it (the blocking start stops every process
    it started when it is terminated). Two CPUs: as many actors as the tests start."""
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="sir-ray-")  # short: Ray's socket paths live under it
    # Ray turns token authentication on by itself when a token file (~/.ray/auth_token) is
    # there, which a ray.init() elsewhere on the machine writes: the cluster and every driver
    # here (this process and the evaluation processes it starts) say outright that it is off.
    saved_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray = str(Path(sys.executable).with_name("ray"))
    proc = subprocess.Popen(
        [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp_dir],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "RAY_ADDRESS": ""})
    lines = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                break
            if time.monotonic() > deadline:
                break
        if proc.poll() is not None or not any("Ray runtime started" in x for x in lines):
            raise RuntimeError("ray start --head failed:\n" + "".join(lines[-30:]))
        # The blocking start keeps printing; its pipe must be drained or it stalls.
        import threading

        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield f"127.0.0.1:{port}"
    finally:
        _leave_ray()
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
        if saved_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved_mode


def fresh_evaluators() -> None:
    """Stop the evaluation process runs share (sir.eval.background), so the next run starts
    one that sees this process's environment as it is now (RAY_AUTH_MODE, say)."""
    from sir.eval.background import discard_kept_evaluator

    discard_kept_evaluator()


@pytest.fixture
def fresh_evaluation_process():
    fresh_evaluators()


def _leave_ray() -> None:
    """Close this process's Ray actors and its driver, and the evaluation processes' (they
    may have joined too), before the cluster goes."""
    import sys

    fresh_evaluators()
    if "ray" not in sys.modules:
        return
    import ray

    from sir.eval.pool import discard_ray_pool

    discard_ray_pool()
    if ray.is_initialized():
        ray.shutdown()
