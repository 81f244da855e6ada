"""How the scripted corrector's rule plays out: takeovers per episode, correction lengths,
success after correction, and the share of frames the corrector labels.

    python benchmarks/corrector_rule.py --checkpoint ck/act_can/final_model [--episodes 40]
                                        [--max-steps 300] [--rules '{}' '{"patience": 40}' ...]
    python benchmarks/corrector_rule.py --expert PickPlaceCan [--episodes 20]

Each rule is a JSON object of ``TakeoverRule`` fields over its defaults; every rule runs the
same episodes (seeds 50000 + i, as ``sir.dagger.record`` runs them), without writing a
dataset. ``--expert`` drives with the task's own scripted expert instead, with the demos'
recording noise (--noise 0.1 --target-jitter 0.01), on seeds 1000 + i: a policy as good as
the demonstrations, so its takeovers are false alarms. Prints a line per rule.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

from sir.dagger.corrector import ScriptedCorrector, TakeoverRule
from sir.dagger.record import CorrectedPolicy
from sir.data.record.runner import run_episode
from sir.envs.factory import make_env
from sir.envs.spec import default_spec
from sir.experts import ExpertNoise, make_expert


class ExpertPolicy:
    """The task's expert answering as a lerobot policy does, reading the state from the env."""

    def __init__(self, env, env_name: str):
        self.env = env
        self.expert = make_expert(env_name, ExpertNoise(action_std=0.1, target_jitter=0.01), seed=1)

    def reset(self) -> None:
        pass  # no action queue to drop

    def select_action(self, batch):
        import torch

        return torch.as_tensor(self.expert.act(self.env._get_observations()), dtype=torch.float32)[None]


def measure(env, spec, policy, pre, post, rule: TakeoverRule, seeds: range, max_steps: int, start=None) -> dict:
    actor = CorrectedPolicy(policy, pre, post, ScriptedCorrector(make_expert(spec.env_name, seed=0), rule), spec.task)
    began = time.perf_counter()
    episodes = []
    for seed in seeds:
        if start is not None:
            start()
        episodes.append(run_episode(env, spec, actor, seed, max_steps))
    corrections = [c for e in episodes for c in e.corrections]
    corrected = [e for e in episodes if e.corrections]
    lengths = [c["steps"] for c in corrections]
    return {
        "episodes": len(episodes),
        "alone": f"{sum(e.success for e in episodes if not e.corrections)}/{len(episodes) - len(corrected)}",
        "corrected": f"{sum(e.success for e in corrected)}/{len(corrected)}",
        "takeovers_per_episode": round(len(corrections) / len(episodes), 2),
        "correction_mean": round(float(np.mean(lengths)), 1) if lengths else 0.0,
        "correction_median": float(np.median(lengths)) if lengths else 0.0,
        "first_takeover_median": float(np.median([e.corrections[0]["step"] for e in corrected])) if corrected else None,
        "corrector_share": round(sum(lengths) / sum(len(e.frames) for e in episodes), 3),
        "frames": sum(len(e.frames) for e in episodes),
        "reasons": dict(Counter(c["reason"] for c in corrections)),
        "hand_backs": dict(Counter(str(c["hand_back"]) for c in corrections)),
        "phases": dict(Counter(c["phase"] for c in corrections)),
        "seconds": round(time.perf_counter() - began),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a policy's model folder")
    source.add_argument("--expert", help="a task whose scripted expert drives instead")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=None, help="default: the EnvSpec's horizon")
    parser.add_argument("--rules", nargs="*", default=["{}"], help="JSON objects of TakeoverRule fields")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.checkpoint:
        from sir.policies.checkpoint import load_checkpoint

        policy, pre, post, spec, _ = load_checkpoint(args.checkpoint, device=args.device)
        policy.eval()
        env = make_env(spec)
        seeds = range(50_000, 50_000 + args.episodes)
    else:
        spec = default_spec(args.expert, horizon=args.max_steps or 300)
        env = make_env(spec)
        pre = post = lambda x: x  # noqa: E731
        seeds = range(1000, 1000 + args.episodes)
    try:
        for text in args.rules:
            overrides, start = json.loads(text), None
            if args.expert:
                # A fresh expert for each rule, so that every rule sees the same noise.
                policy = ExpertPolicy(env, args.expert)
                start = lambda p=policy: p.expert.reset(env)  # noqa: E731
            row = measure(env, spec, policy, pre, post, TakeoverRule(**overrides), seeds,
                          args.max_steps or spec.horizon, start)
            print(json.dumps({"rule": overrides, **row}), flush=True)
    finally:
        env.close()


if __name__ == "__main__":
    main()
