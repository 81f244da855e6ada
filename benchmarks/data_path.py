"""Each trainer's data path on the same data: batches per second of lerobot-train's
(``LeRobotDataset`` read item by item through a torch DataLoader) and of sir's (the mixture's
in-memory frame store, batches gathered whole), with the recipe's policy windows and batch.

    OMP_NUM_THREADS=1 python benchmarks/data_path.py --task PickPlaceCan --root results/data \\
        --repo-id pickplacecan_200 [--seconds 20] [--rounds 3] [--out results/data_path.json]

The policy configuration is the one ``sir.training.train_policy --config
sir/results/recipes/<Task>.yaml`` builds (``benchmarks/lerobot_train_beside.py`` builds it and
gives it to lerobot-train), so both sides serve the same windows (ACT's action chunk, the
observation steps) at the recipe's batch size and ``num_workers``:

- lerobot-train's: ``lerobot.datasets.factory.make_dataset`` on the ``TrainPipelineConfig``
  lerobot-train would read, and a DataLoader built as ``lerobot_train.py`` builds it (a shuffle,
  or lerobot's ``EpisodeAwareSampler`` for policies that drop episode ends);
- sir's: ``sir.data.make_mixture``, fitted to the policy and its frames cached, and
  ``sir.data.mixture.sampling.make_dataloader``, as ``sir.training`` builds them.

Each is drawn from for ``--seconds`` in turn, ``--rounds`` times, alternating which goes first,
so that load from elsewhere hits both alike; batches/s are medians over the rounds, with the
load average printed each round. Only the batches: normalization and the model step are
each trainer's own (the step is the same lerobot code in both). Writes ``--out`` (JSON) with the
command that ran.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmark beside this one builds the configs

import lerobot_train_beside as beside  # noqa: E402

from sir.results.recipes import TASKS  # noqa: E402


def lerobot_loader(settings: dict[str, Any], policy_cfg: Any, root: str, repo_id: str, out: Path) -> Any:
    """lerobot-train's batches: its dataset and DataLoader, as ``lerobot_train.py`` (0.4.4) makes them."""
    import torch
    from lerobot.datasets.factory import make_dataset
    from lerobot.datasets.sampler import EpisodeAwareSampler

    cfg = beside.lerobot_pipeline_config(policy_cfg, settings, root, repo_id, out, 1, 1)
    dataset = make_dataset(cfg)
    if hasattr(cfg.policy, "drop_n_last_frames"):
        shuffle, sampler = False, EpisodeAwareSampler(
            dataset.meta.episodes["dataset_from_index"], dataset.meta.episodes["dataset_to_index"],
            episode_indices_to_use=dataset.episodes, drop_n_last_frames=cfg.policy.drop_n_last_frames, shuffle=True)
    else:
        shuffle, sampler = True, None
    return torch.utils.data.DataLoader(dataset, num_workers=cfg.num_workers, batch_size=cfg.batch_size,
                                       shuffle=shuffle, sampler=sampler, pin_memory=False, drop_last=False,
                                       prefetch_factor=2 if cfg.num_workers > 0 else None)


def sir_loader(settings: dict[str, Any], policy_cfg: Any, root: str, repo_id: str) -> Any:
    """sir's batches: the mixture fitted to the policy, its frames cached, and the trainer's DataLoader."""
    from sir.data import make_mixture
    from sir.data.mixture.sampling import make_dataloader
    from sir.training import TrainConfig
    from sir.training.config import check

    cfg = check(TrainConfig(**{**settings, "repo_ids": [repo_id], "root": root}))
    mixture = make_mixture(cfg, verbose=False)
    mixture.fit_policy(policy_cfg)
    mixture.cache_frames(cfg.frame_cache_gb, cfg.frame_cache_dir)
    return make_dataloader(mixture, cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed)


def batches_per_s(batches: Any, seconds: float) -> float:
    """Batches drawn per second from the endless iterator ``batches`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while True:
        next(batches)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def endless(loader: Any) -> Any:
    """Pass after pass, as a training loop draws (lerobot-train's ``cycle``)."""
    return itertools.chain.from_iterable(itertools.repeat(loader))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="PickPlaceCan", choices=list(TASKS), help="recipe (default: PickPlaceCan)")
    p.add_argument("--root", default="results/data", help="folder of the dataset (default: results/data)")
    p.add_argument("--repo-id", default=None, help="dataset under --root (default: <task>_200, as make results)")
    p.add_argument("--train-args", default="", help="train_policy flags over the recipe, quoted (e.g. \"--preset "
                   "tiny\")")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds each side is drawn from a round (default: 20)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, alternating which side goes first (default: 3)")
    p.add_argument("--out", default=None, help="JSON file to write (default: none)")
    args = p.parse_args(argv)
    ran = "python benchmarks/data_path.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    repo_id = args.repo_id or f"{args.task.lower()}_200"
    settings = beside.sir_settings(args.task, args.train_args)
    policy_cfg, _, _ = beside.policy_config(settings, args.root, repo_id)
    with tempfile.TemporaryDirectory() as tmp:
        sides = {"lerobot-train": endless(lerobot_loader(settings, policy_cfg, args.root, repo_id, Path(tmp))),
                 "sir": endless(sir_loader(settings, policy_cfg, args.root, repo_id))}
        for batches in sides.values():  # the first batch: workers started, files opened
            next(batches)
        rates: dict[str, list[float]] = {name: [] for name in sides}
        loads = []
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
            for name in order:
                rates[name].append(batches_per_s(sides[name], args.seconds))
            loads.append(os.getloadavg()[0])
            print(f"round {round_ + 1}: " + ", ".join(f"{name} {rates[name][-1]:.1f} batches/s" for name in sides)
                  + f"  [load average {loads[-1]:.1f}]", flush=True)
    batch = settings.get("batch_size", 16)
    result = {
        "task": args.task, "repo_id": repo_id, "settings": settings, "batch_size": batch,
        "action_window": len(policy_cfg.action_delta_indices or [0]),
        "observation_window": len(policy_cfg.observation_delta_indices or [0]),
        "num_workers": settings.get("num_workers", 0), "torch_threads": os.environ.get("OMP_NUM_THREADS"),
        "seconds": args.seconds, "rounds": args.rounds, "load_average": loads,
        "batches_per_s": {name: statistics.median(r) for name, r in rates.items()},
        "samples_per_s": {name: batch * statistics.median(r) for name, r in rates.items()},
        "per_round": rates, "command": ran,
    }
    print(f"medians of {args.rounds} rounds of {args.seconds:g} s, batches of {batch}: "
          + ", ".join(f"{name} {v:.1f} batches/s ({1000 / v:.2f} ms a batch)"
                      for name, v in result["batches_per_s"].items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    main()
