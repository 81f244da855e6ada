"""How the scripted corrector's rule plays out: takeovers per episode and why and where they
came, correction lengths, how corrections ended (cut at a cap, or reset as failures), success
after correction, and the share of frames the corrector labels.

    python benchmarks/corrector_rule.py --checkpoint ck/act_can/final_model [--episodes 40]
                                        [--max-steps 300] [--rules before default '--patience 40' ...]
    python benchmarks/corrector_rule.py --expert PickPlaceCan [--episodes 20]

Each rule is a string of ``sir.dagger.record``'s corrector flags over its defaults (``default``:
none, the rule it records with; ``before``: the rule before issue 33, ``RULE_BEFORE_ISSUE_33``:
an oracle taking over at once on straying from the expert's command, handing back on agreement
mid-recovery or at a 50-step cap, without noise). Every rule runs the same episodes (seeds
50000 + i, as ``sir.dagger.record`` runs them), without writing a dataset; the default rules are
``before default``. ``--expert`` drives with the task's own scripted expert instead, with the
demos' recording noise, on seeds 1000 + i: a policy as good as the demonstrations, so its
takeovers are false alarms. Prints a JSON line per rule.

Run for issue 33 (2-core CPU machine, shared; results in docs/dagger.md, "Measured: the rule
before issue 33 and the default"), on round-0-like policies, ACT ``--preset cpu`` on 10
scripted demos: PickPlaceCan trained 1,000 steps (as the DAgger experiment's round 0), Lift 80::

    python -m sir.data.collect --env PickPlaceCan --episodes 10 --seed 0 --root /tmp/sirbench/data \\
        --repo-id can_demos
    python -m sir.training.train_policy --repo-ids can_demos --root /tmp/sirbench/data --policy act \\
        --preset cpu --batch-size 32 --training-steps 1000 --no-eval --device cpu \\
        --checkpoint-dir /tmp/sirbench/ck --run-name act_can
    python benchmarks/corrector_rule.py --checkpoint /tmp/sirbench/ck/act_can/final_model \\
        --episodes 20 --max-steps 300    # about 30 s a rule
    # Lift: --env Lift, --repo-id lift_demos, --training-steps 80, --run-name act_lift; --max-steps 150
    python benchmarks/corrector_rule.py --expert PickPlaceCan --episodes 10    # no takeover by either rule
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter

import numpy as np

from sir.config import flags_given
from sir.dagger.corrector import ScriptedCorrector
from sir.dagger.record import RULE_BEFORE_ISSUE_33, CorrectedPolicy, RecordConfig, corrector_noise, takeover_rule
from sir.data.record.runner import run_episode
from sir.envs.factory import make_env
from sir.envs.spec import default_spec
from sir.experts import RECORDING_NOISE, make_expert

NAMED_RULES = {"before": RULE_BEFORE_ISSUE_33, "default": ""}


class ExpertPolicy:
    """The task's expert answering as a lerobot policy does, reading the state from the env."""

    def __init__(self, env, env_name: str):
        self.env = env
        self.expert = make_expert(env_name, RECORDING_NOISE, seed=1)

    def reset(self) -> None:
        pass  # no action queue to drop

    def select_action(self, batch):
        import torch

        return torch.as_tensor(self.expert.act(self.env._get_observations()), dtype=torch.float32)[None]


def measure(env, spec, policy, pre, post, flags: str, seeds: range, max_steps: int, start=None) -> dict:
    cfg = dataclasses.replace(RecordConfig(), **flags_given(RecordConfig, flags, "--rules"))
    expert = make_expert(spec.env_name, corrector_noise(cfg), seed=0)
    actor = CorrectedPolicy(policy, pre, post, ScriptedCorrector(expert, takeover_rule(cfg)), spec.task)
    began = time.perf_counter()
    episodes = []
    for seed in seeds:
        if start is not None:
            start()
        episodes.append(run_episode(env, spec, actor, seed, max_steps))
    corrections = [c for e in episodes for c in e.corrections]
    corrected = [e for e in episodes if e.corrections]
    lengths = [c["steps"] for c in corrections]
    frames = sum(len(e.frames) for e in episodes)
    cut = [c for c in corrections if c["hand_back"] in ("cap", "reset")]
    return {
        "episodes": len(episodes),
        "success": f"{sum(e.success for e in episodes)}/{len(episodes)}",
        "alone": f"{sum(e.success for e in episodes if not e.corrections)}/{len(episodes) - len(corrected)}",
        "corrected": f"{sum(e.success for e in corrected)}/{len(corrected)}",
        "takeovers_per_episode": round(len(corrections) / len(episodes), 2),
        "takeovers_per_episode_counts": dict(sorted(Counter(len(e.corrections) for e in episodes).items())),
        "correction_mean": round(float(np.mean(lengths)), 1) if lengths else 0.0,
        "correction_median": float(np.median(lengths)) if lengths else 0.0,
        "correction_max": max(lengths, default=0),
        "first_takeover_median": float(np.median([e.corrections[0]["step"] for e in corrected])) if corrected else None,
        "corrector_share": round(sum(lengths) / frames, 3) if frames else 0.0,
        "frames": frames,
        "reasons": dict(Counter(c["reason"] for c in corrections)),
        "phases": dict(Counter(c["phase"] for c in corrections)),
        "hand_backs": dict(Counter(str(c["hand_back"]) for c in corrections)),
        # Corrections ended by the budget: cut mid-recovery and handed back (cap), or reset as failures.
        "cut": len(cut),
        "labels_in_cut": f"{sum(c['steps'] for c in cut)}/{sum(lengths)}",
        "seconds": round(time.perf_counter() - began),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a policy's model folder")
    source.add_argument("--expert", help="a task whose scripted expert drives instead")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=None, help="default: the EnvSpec's horizon")
    parser.add_argument("--rules", nargs="*", default=["before", "default"],
                        help="strings of sir.dagger.record's corrector flags, or a name: " + ", ".join(NAMED_RULES))
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
            start = None
            if args.expert:
                # A fresh expert for each rule, so that every rule sees the same noise.
                policy = ExpertPolicy(env, args.expert)
                start = lambda p=policy: p.expert.reset(env)  # noqa: E731
            row = measure(env, spec, policy, pre, post, NAMED_RULES.get(text, text), seeds,
                          args.max_steps or spec.horizon, start)
            print(json.dumps({"rule": text, **row}), flush=True)
    finally:
        env.close()


if __name__ == "__main__":
    main()
