"""Camera datasets from decoded frames: sampling against LeRobotDataset, and whether the
training loop keeps up with a camera model.

    python benchmarks/camera_cache.py [--root DIR] [--episodes 5] [--image-size 64] [--gather-batch 64]
                                      [--preset tiny] [--batch-size 8]

The dataset is recorded once by ``sir.data.collect`` (scripted Lift, one agentview camera).

1. Sampling: ``LeRobotDataset[i]`` (decoding the camera frame from the video, with sir's
   default decoder) against ``Mixture[i]`` after ``Mixture.cache_frames`` (frames decoded
   once, kept in memory), and against whole batches of ``--gather-batch`` samples gathered
   at once (``collate(Mixture.__getitems__(indices))``, what sir's DataLoader does, the
   batch collated), on the same random indices, in this process; with ACT's windows (the
   current camera frame and state, a 100-step action chunk), then with no windows. The
   LeRobotDataset figure is per sample without collation, so it flatters LeRobotDataset.
   Goal: a ratio of at least 50.
2. Training: sir's ``tiny``-preset ACT (``--preset cpu`` for the larger one) with the
   camera (a ResNet-18 trained from scratch), built as the trainer builds it; the smaller
   the model, the more the data's cost shows. The whole loop (sir's DataLoader, collation,
   normalization, forward, backward, optimizer step) against the bare model step on
   pre-built, pre-normalized batches of the same size. Steps of the two alternate one by
   one, so that load from other processes hits both alike; the median of the pairs' ratios
   is the figure. Goal: at least 0.9.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

warnings.filterwarnings("ignore", message="The video decoding and encoding capabilities of torchvision")
# The camera dataset both video benchmarks record (this folder is sys.path[0] when run as a script).
from video_decode import CAMERA, record  # noqa: E402


def rate(fn, indices: list[int], seconds: float) -> tuple[float, int]:
    """Calls per second of fn(index) over the indices, for about ``seconds``."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(indices[n % len(indices)])
        n += 1
    return n / (time.perf_counter() - start), n


def batch_rate(mix, indices: list[int], size: int, seconds: float) -> tuple[float, int]:
    """Samples per second of whole batches of ``size`` gathered and collated at once, as
    sir's DataLoader gets them, over the indices, for about ``seconds``."""
    from sir.data.store.batch import collate

    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        first = (n % len(indices)) // size * size
        chunk = indices[first:first + size]  # the last one may be short
        collate(mix.__getitems__(chunk))
        n += len(chunk)
    return n / (time.perf_counter() - start), n


def camera_act(mix, preset: str):
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from sir.policies import build_config

    features = dataset_to_policy_features(mix.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items() if k not in outputs}
    cfg = build_config("act", preset, inputs, outputs, "cpu", dataset_features=mix.features)
    assert CAMERA in cfg.input_features
    mix.fit_policy(cfg)
    policy = make_policy(cfg, ds_meta=mix)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=mix.stats)
    return policy, pre


def train_benchmark(mix, preset: str, batch_size: int, steps: int, num_workers: int) -> dict[str, float]:
    from sir.data.mixture.sampling import make_dataloader

    torch.manual_seed(0)
    policy, pre = camera_act(mix, preset)
    policy.train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)

    def step(batch):
        loss, _ = policy.forward(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    loader = make_dataloader(mix, batch_size, num_workers=num_workers)
    batches = iter(())

    def next_batch():
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    prebuilt = [pre(next_batch()) for _ in range(8)]
    for batch in prebuilt[:2]:  # warm-up: allocator, autograd caches
        step(batch)
    loop_times, bare_times, data_times = [], [], []
    for i in range(steps):
        def loop_step():
            start = time.perf_counter()
            batch = pre(next_batch())
            data_times.append(time.perf_counter() - start)
            step(batch)

        def bare_step():
            step(prebuilt[i % len(prebuilt)])  # noqa: B023 - called within this iteration

        pair = (bare_step, loop_step) if i % 2 else (loop_step, bare_step)
        for fn in pair:
            start = time.perf_counter()
            fn()
            (bare_times if fn is bare_step else loop_times).append(time.perf_counter() - start)
    return {
        "loop_rate": steps / sum(loop_times),
        "bare_rate": steps / sum(bare_times),
        "pair_ratio": statistics.median(b / loop for b, loop in zip(bare_times, loop_times, strict=True)),
        "data_ms": 1000 * statistics.median(data_times),
        "bare_ms": 1000 * statistics.median(bare_times),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="folder for the recorded dataset (default: a temporary folder)")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5.0, help="time spent sampling each way")
    p.add_argument("--gather-batch", type=int, default=64, help="samples per batch gathered at once")
    p.add_argument("--preset", choices=("tiny", "cpu"), default="tiny", help="sir's ACT preset")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=30, help="training steps each way")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of the training loop")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--skip-training", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from sir.data import make_mixture
    from sir.data.mixture.config import DataConfig
    from sir.data.video import video_backend

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp)
        repo_id = f"cam{args.image_size}_{args.episodes}ep"
        path = record(root, repo_id, args.episodes, args.image_size)
        mix = make_mixture(DataConfig(repo_ids=repo_id, root=root), verbose=False)
        start = time.perf_counter()
        report = mix.cache_frames(cache_dir=Path(tmp) / "frames")
        decode_s = time.perf_counter() - start
        print(f"\n{repo_id}: {len(mix)} frames, {args.image_size}x{args.image_size} camera, decoder {video_backend()}")
        print(f"  decoding once into memory: {decode_s:.2f} s ({report.line()})")
        indices = np.random.default_rng(0).integers(0, len(mix), 100_000).tolist()
        # ACT's windows (one camera frame, a 100-step action chunk), then no window at all,
        # which leaves the camera frame as nearly all of LeRobotDataset's cost.
        for label, delta in (("ACT's windows", {"action": [i / mix.fps for i in range(100)]}),
                             ("no windows (camera frame, state, action)", None)):
            mix.fit(delta)
            ds = LeRobotDataset(repo_id, root=path, delta_timestamps=delta, video_backend=video_backend())
            assert len(ds) == len(mix)
            load = os.getloadavg()[0]
            lerobot_rate, n_lerobot = rate(ds.__getitem__, indices, args.seconds)
            cache_rate, n_cache = rate(mix.__getitem__, indices, args.seconds)
            gather_rate, n_gather = batch_rate(mix, indices, args.gather_batch, args.seconds)
            print(f"Sampling, {label}, one process (load {load:.1f} to {os.getloadavg()[0]:.1f}):")
            print(f"  LeRobotDataset, per sample            {lerobot_rate:10.0f} samples/s  ({n_lerobot} samples)")
            print(f"  sir frame cache, per sample           {cache_rate:10.0f} samples/s  ({n_cache} samples)")
            print(f"  sir frame cache, batches of {args.gather_batch:<4d}      {gather_rate:10.0f} samples/s  "
                  f"({n_gather} samples, collated)")
            print(f"  ratio, per sample                     {cache_rate / lerobot_rate:10.1f}x  (goal >= 50x)")
            print(f"  ratio, batches                        {gather_rate / lerobot_rate:10.1f}x  (goal >= 50x)")

        if not args.skip_training:
            load = os.getloadavg()[0]
            r = train_benchmark(mix, args.preset, args.batch_size, args.steps, args.num_workers)
            print(f"\nTraining the {args.preset}-preset ACT with the camera, batch {args.batch_size}, torch threads "
                  f"{torch.get_num_threads()}, {args.num_workers} loader workers, {args.steps} steps each way "
                  f"(load {load:.1f} to {os.getloadavg()[0]:.1f}):")
            print(f"  bare model step (pre-built batches)   {r['bare_rate']:7.2f} steps/s  "
                  f"(median {r['bare_ms']:.1f} ms)")
            print(f"  whole loop (sample, collate, step)    {r['loop_rate']:7.2f} steps/s  "
                  f"(of which sampling+collation+normalization: median {r['data_ms']:.1f} ms)")
            print(f"  ratio, totals                         {r['loop_rate'] / r['bare_rate']:7.3f}")
            print(f"  ratio, median of back-to-back pairs   {r['pair_ratio']:7.3f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
