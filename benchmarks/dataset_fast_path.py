"""How much faster sir's in-memory fast path serves samples than LeRobotDataset, and whether
the training loop keeps up with the model.

    python benchmarks/dataset_fast_path.py [--root DIR] [--seconds 5] [--batch-size 32]

1. Sampling: a 7,500-frame state-only dataset (75 episodes of 100 frames, sir's Lift layout)
   with ACT's 100-step action window; ``LeRobotDataset[i]`` against ``Mixture[i]`` on the
   same random indices, in this process. Goal: a ratio of at least 100.
2. Training: a small state-based ACT built through lerobot's ACTConfig/make_policy. The
   whole loop (sampling, collation, normalization, forward, backward, optimizer step) against
   the bare model step (forward, backward, step) on pre-built, pre-normalized batches of the
   same size. Rounds of the two alternate, so that load from other processes hits both alike;
   medians are reported. Goal: a ratio of at least 0.9.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

REPO_ID = "bench_state_7500"


def build_dataset(root: Path, episodes: int, length: int) -> Path:
    from sir.data.record.synthetic import make_synthetic_dataset

    path = root / REPO_ID
    if (path / "meta" / "info.json").is_file():
        return path
    print(f"Writing {episodes} episodes of {length} frames to {path} (once) ...")
    return make_synthetic_dataset(root, REPO_ID, [length] * episodes, seed=0)


def rate(fn, indices: list[int], seconds: float) -> tuple[float, int]:
    """Calls per second of fn(index) over the indices, for about ``seconds``."""
    n = 0
    start = time.perf_counter()
    while True:
        fn(indices[n % len(indices)])
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed, n


def small_act(mix):
    from lerobot.configs.types import FeatureType
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    cfg = ACTConfig(
        device="cpu", dim_model=64, n_heads=2, dim_feedforward=256, n_encoder_layers=1,
        n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8, chunk_size=100, n_action_steps=100,
    )
    mix.fit_policy(cfg)
    policy = make_policy(cfg, ds_meta=mix)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=mix.stats)
    assert not any(f.type is FeatureType.VISUAL for f in cfg.input_features.values())
    return policy, pre


def train_benchmark(mix, batch_size: int, steps: int) -> dict[str, float]:
    from sir.data.mixture.sampling import make_dataloader

    torch.manual_seed(0)
    policy, pre = small_act(mix)
    policy.train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)

    def step(batch):
        loss, _ = policy.forward(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    loader = make_dataloader(mix, batch_size)
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
    # Loop steps and bare steps alternate one by one (in turn first), so that other
    # processes on the machine slow both alike.
    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    loop_times, bare_times, data_times = [], [], []
    for i in tqdm(range(steps), desc="Training steps", unit="pair"):
        def loop_step():
            start = time.perf_counter()
            batch = pre(next_batch())
            data_times.append(time.perf_counter() - start)
            step(batch)

        def bare_step():
            step(prebuilt[i % len(prebuilt)])  # noqa: B023 - called within this iteration

        if i % 2:
            bare_times.append(timed(bare_step))
            loop_times.append(timed(loop_step))
        else:
            loop_times.append(timed(loop_step))
            bare_times.append(timed(bare_step))
    return {
        "loop_rate": steps / sum(loop_times),
        "bare_rate": steps / sum(bare_times),
        # Each pair ran back to back; the median of their ratios shrugs off load spikes.
        "pair_ratio": statistics.median(b / loop for b, loop in zip(bare_times, loop_times, strict=True)),
        "data_ms": 1000 * statistics.median(data_times),
        "bare_ms": 1000 * statistics.median(bare_times),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="folder for the benchmark dataset (default: a temporary folder)")
    p.add_argument("--episodes", type=int, default=75)
    p.add_argument("--length", type=int, default=100, help="frames per episode")
    p.add_argument("--seconds", type=float, default=5.0, help="time spent sampling each way")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=40, help="training steps each way")
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
        path = build_dataset(root, args.episodes, args.length)
        mix = make_mixture(DataConfig(repo_ids=REPO_ID, root=root), verbose=False)
        fps = mix.fps
        # ACT's action window: chunk_size 100 frames from the current one.
        delta = {"action": [i / fps for i in range(100)]}
        mix.fit(delta)
        ds = LeRobotDataset(REPO_ID, root=path, delta_timestamps=delta, video_backend=video_backend())
        assert len(ds) == len(mix) == args.episodes * args.length
        indices = np.random.default_rng(0).integers(0, len(ds), 100_000).tolist()

        lerobot_rate, n_lerobot = rate(ds.__getitem__, indices, args.seconds)
        fast_rate, n_fast = rate(mix.__getitem__, indices, args.seconds)
        print(f"\nSampling, {len(ds)} frames, action window 100, one process:")
        print(f"  LeRobotDataset  {lerobot_rate:10.0f} samples/s  ({n_lerobot} samples)")
        print(f"  sir fast path   {fast_rate:10.0f} samples/s  ({n_fast} samples)")
        print(f"  ratio           {fast_rate / lerobot_rate:10.1f}x  (goal >= 100x)")

        if not args.skip_training:
            r = train_benchmark(mix, args.batch_size, args.steps)
            print(f"\nTraining a small state-based ACT, batch {args.batch_size}, torch threads "
                  f"{torch.get_num_threads()}, {args.steps} steps each way:")
            print(f"  bare model step (pre-built batches)   {r['bare_rate']:7.2f} steps/s  "
                  f"(median {r['bare_ms']:.1f} ms)")
            print(f"  whole loop (sample, collate, step)    {r['loop_rate']:7.2f} steps/s  "
                  f"(of which sampling+collation+normalization: median {r['data_ms']:.1f} ms)")
            print(f"  ratio, totals                         {r['loop_rate'] / r['bare_rate']:7.3f}")
            print(f"  ratio, median of back-to-back pairs   {r['pair_ratio']:7.3f}  (goal >= 0.9)")
            implied = r["bare_ms"] / (r["bare_ms"] + r["data_ms"])
            print(f"  ratio implied by the medians          {implied:7.3f}  (step / (step + data))")


if __name__ == "__main__":
    main()
