"""Video decoding on a sir camera dataset: torchcodec against pyav, in one run.

    python benchmarks/video_decode.py [--root DIR] [--episodes 3] [--image-size 64] [--rounds 5]

The dataset is recorded once by ``sir.data.collect`` (scripted Lift, one agentview camera,
H.264 as lerobot's writer encodes it). Two ways of reading it, each with lerobot's
``video_backend`` set to ``torchcodec`` and to ``pyav``:

1. random access: ``LeRobotDataset[i]`` on random frames (one camera frame per sample, as
   ACT reads it), in this process;
2. whole episodes: lerobot's ``decode_video_frames`` asked for every frame of an episode at
   once, which is how sir's frame cache (``sir.data.store.cache``) decodes.

Rounds of the two backends alternate, so load from other processes hits both alike; the
medians over rounds are printed side by side with their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

# torchvision's VideoReader (lerobot's pyav path) warns of its deprecation on every call.
warnings.filterwarnings("ignore", message="The video decoding and encoding capabilities of torchvision")

BACKENDS = ("torchcodec", "pyav")
CAMERA = "observation.images.agentview"


def record(root: Path, repo_id: str, episodes: int, image_size: int) -> Path:
    from sir.data.collect import CollectConfig, collect

    return collect(CollectConfig(
        env="Lift", episodes=episodes, root=str(root), repo_id=repo_id, cameras=["agentview"],
        image_size=image_size, skip_existing=True,
    )).path


def random_access(path: Path, backend: str, indices: list[int], seconds: float) -> float:
    """Samples per second of LeRobotDataset[i] with this backend."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(path.name, root=path, video_backend=backend)
    ds[indices[0]]  # opens the decoder (torchcodec keeps it) outside the timing
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ds[indices[n % len(indices)]]
        n += 1
    return n / (time.perf_counter() - start)


def whole_episodes(path: Path, backend: str) -> float:
    """Frames per second decoding every episode in one call each."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    from lerobot.datasets.video_utils import decode_video_frames

    meta = LeRobotDatasetMetadata(path.name, root=path)
    episodes = meta.episodes
    frames, start = 0, time.perf_counter()
    for ep in range(meta.total_episodes):
        video = path / meta.get_video_file_path(ep, CAMERA)
        first = float(episodes[f"videos/{CAMERA}/from_timestamp"][ep])
        timestamps = [first + i / meta.fps for i in range(int(episodes["length"][ep]))]
        frames += len(decode_video_frames(video, timestamps, 1e-4, backend))
    return frames / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="folder for the recorded dataset (default: a temporary folder)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of each backend")
    p.add_argument("--seconds", type=float, default=2.0, help="random-access time per backend and round")
    args = p.parse_args()

    from sir.data.video import torchcodec_loads

    if not torchcodec_loads():
        raise SystemExit("torchcodec cannot load FFmpeg's libraries here: install FFmpeg (scripts/system_deps.sh).")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp)
        path = record(root, f"cam{args.image_size}_{args.episodes}ep", args.episodes, args.image_size)
        from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

        total = LeRobotDatasetMetadata(path.name, root=path).total_frames
        indices = np.random.default_rng(0).integers(0, total, 10_000).tolist()
        rates: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            order = BACKENDS if r % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                rates.setdefault(("random", backend), []).append(random_access(path, backend, indices, args.seconds))
                rates.setdefault(("episodes", backend), []).append(whole_episodes(path, backend))
            print(f"round {r + 1}/{args.rounds}, load {os.getloadavg()[0]:.1f}")

    print(f"\n{path.name}: {total} frames, {args.image_size}x{args.image_size}, {args.episodes} episodes; "
          f"medians of {args.rounds} rounds")
    print(f"{'':34}{'torchcodec':>12}{'pyav':>12}{'torchcodec/pyav':>18}")
    for what, label, unit in (("random", "LeRobotDataset[i], random frames", "samples/s"),
                              ("episodes", "whole episodes, one call each", "frames/s")):
        tc, av = (statistics.median(rates[(what, b)]) for b in BACKENDS)
        print(f"{label:34}{tc:12.0f}{av:12.0f}{tc / av:17.2f}x  ({unit})")


if __name__ == "__main__":
    main()
