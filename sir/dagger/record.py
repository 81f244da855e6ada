"""Record DAgger corrections: the policy drives, a corrector takes over when it fails.

    python -m sir.dagger.record --checkpoint checkpoints/act_lift_demos/best_model \
        --episodes 20 --root data --repo-id lift_dagger_r1 [--auto-save-on-success]

Frames are labelled ``source`` 0 (policy) or 1 (corrector) and ``success`` 0/1 (the
episode's outcome), both int64 of shape (1,), the labels ``sir.data`` filters on.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sir.errors import cli_errors

LABEL_FEATURES = {
    "source": {"dtype": "int64", "shape": (1,), "names": None},
    "success": {"dtype": "int64", "shape": (1,), "names": None},
}


@dataclass
class TakeoverRule:
    """When the scripted corrector decides the policy is failing.

    ``patience``: steps without a new best shaped reward (no progress).
    ``drop``: a fall of the shaped reward below its best so far (the object was dropped).
    ``deviation`` / ``deviation_steps``: the policy's arm command differs from the
    expert's by more than ``deviation`` (L2, action units) for that many steps in a row.
    ``grace``: steps the policy always gets before any rule applies.
    """

    patience: int = 40
    drop: float = 0.3
    deviation: float = 1.0
    deviation_steps: int = 8
    grace: int = 5


class ScriptedCorrector:
    """A scripted expert playing the human: watches the policy and takes over on its rule.

    Any object with ``reset(env)``, ``should_take_over(obs, policy_action, reward)``,
    ``take_over(env)`` and ``act(obs)`` can correct; a keyboard or SpaceMouse corrector
    (robosuite's input devices) would answer ``should_take_over`` with the operator's
    button instead of a rule.
    """

    name = "expert"

    def __init__(self, expert: Any, rule: TakeoverRule | None = None):
        self.expert = expert
        self.rule = rule or TakeoverRule()

    def reset(self, env: Any) -> None:
        self.expert.reset(env)
        self.steps = 0
        self.best_reward = -np.inf
        self.since_progress = 0
        self.deviating = 0
        self.reason: str | None = None

    def should_take_over(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool:
        # The shadow expert keeps planning from the real state, so its command is what a
        # watching human would do now.
        expert_action = np.asarray(self.expert.act(obs))
        self.steps += 1
        if reward > self.best_reward + 1e-3:
            self.best_reward, self.since_progress = reward, 0
        else:
            self.since_progress += 1
        gap = float(np.linalg.norm(np.asarray(policy_action)[:3] - expert_action[:3]))
        self.deviating = self.deviating + 1 if gap > self.rule.deviation else 0
        if self.steps <= self.rule.grace:
            return False
        if self.since_progress >= self.rule.patience:
            self.reason = "no progress"
        elif self.best_reward - reward > self.rule.drop:
            self.reason = "object dropped"
        elif self.deviating >= self.rule.deviation_steps:
            self.reason = "actions strayed from the expert's"
        return self.reason is not None

    def take_over(self, env: Any) -> None:
        # A fresh plan from the current state: the expert's phases restart from approach.
        self.expert.reset(env)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.expert.act(obs), dtype=np.float32)


def run_dagger_episode(
    env: Any, spec: Any, policy: Any, preprocessor: Any, postprocessor: Any, corrector: Any,
    seed: int, max_steps: int,
) -> dict[str, Any]:
    """One episode: the policy acts until the corrector takes over, the corrector finishes."""
    import torch

    from sir.envs.factory import check_success, observation_to_features, reset_env
    from sir.eval.rollout import to_policy_batch

    obs = reset_env(env, seed)
    policy.reset()
    corrector.reset(env)
    frames: list[dict[str, np.ndarray]] = []
    takeover: int | None = None
    success, reward = False, 0.0
    for t in range(max_steps):
        features = observation_to_features(obs, spec)
        if takeover is None:
            with torch.no_grad():
                batch = preprocessor(to_policy_batch(features, spec.task))
                action = postprocessor(policy.select_action(batch)).squeeze(0).cpu().numpy().astype(np.float32)
            if not np.all(np.isfinite(action)) or corrector.should_take_over(obs, action, reward):
                takeover = t
                corrector.take_over(env)
        if takeover is not None:
            action = corrector.act(obs)
        obs, reward, done, _ = env.step(action)
        success = check_success(env)
        frames.append({
            **features,
            "action": action,
            "next.reward": np.array([reward], dtype=np.float32),
            "next.success": np.array([success], dtype=bool),
            "source": np.array([0 if takeover is None else 1], dtype=np.int64),
        })
        if success or done:
            break
    for frame in frames:
        frame["success"] = np.array([int(success)], dtype=np.int64)
    return {"frames": frames, "success": success, "takeover_step": takeover,
            "reason": getattr(corrector, "reason", None) if takeover is not None else None}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sir.dagger.record",
        description="Run a trained policy in its Robosuite env with a corrector watching; when the corrector "
        "takes over, it finishes the task. Writes a LeRobot DAgger dataset with per-frame source (0 policy, "
        "1 corrector) and success labels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="the policy's model folder (e.g. .../best_model)")
    p.add_argument("--episodes", type=int, default=20, help="episodes to run")
    p.add_argument("--root", default="data", help="folder that holds datasets")
    p.add_argument("--repo-id", required=True, help="dataset name; written to <root>/<repo-id>")
    p.add_argument("--corrector", default="expert", choices=["expert"],
                   help="who corrects: the task's scripted expert (a device corrector needs a screen)")
    p.add_argument("--auto-save-on-success", action="store_true",
                   help="also save episodes the policy finished alone (all frames source 0)")
    p.add_argument("--max-steps", type=int, default=None, help="step limit (default: the EnvSpec's horizon)")
    p.add_argument("--seed", type=int, default=50_000, help="seed of episode 0; episode i uses seed+i")
    p.add_argument("--patience", type=int, default=TakeoverRule.patience, help="takeover after this many steps without progress")
    p.add_argument("--deviation", type=float, default=TakeoverRule.deviation,
                   help="takeover when the policy's arm command differs from the expert's by more than this ...")
    p.add_argument("--deviation-steps", type=int, default=TakeoverRule.deviation_steps, help="... for this many steps in a row")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be at least 1")
    return args


@cli_errors
def main(argv: list[str] | None = None) -> Path | None:
    args = parse_args(argv)
    from tqdm import tqdm

    from sir.data.writer import DatasetWriter, dataset_features
    from sir.envs.factory import action_dim, make_env, observation_to_features, reset_env
    from sir.experts import make_expert
    from sir.training.checkpoint import load_checkpoint
    from sir.training.train_policy import pick_device, quiet_libraries

    quiet_libraries()
    policy, pre, post, spec, info = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    policy.eval()
    rule = TakeoverRule(patience=args.patience, deviation=args.deviation, deviation_steps=args.deviation_steps)
    corrector = ScriptedCorrector(make_expert(spec.env_name, seed=args.seed), rule)
    env = make_env(spec)
    max_steps = args.max_steps or spec.horizon
    example = observation_to_features(reset_env(env, args.seed), spec)
    features = dataset_features(spec, example, action_dim(env), extra=LABEL_FEATURES)
    provenance: dict[str, Any] = {
        "recorded_by": "sir.dagger.record", "checkpoint": str(Path(args.checkpoint).resolve()),
        "checkpoint_step": info.get("step"), "checkpoint_datasets": [d.get("repo_id") for d in info.get("datasets", [])],
        "corrector": corrector.name, "takeover_rule": asdict(rule), "first_seed": args.seed,
        "auto_save_on_success": args.auto_save_on_success, "episodes": [],
    }
    writer = DatasetWriter(args.root, args.repo_id, spec, features, info=provenance)
    counts = {"interventions": 0, "policy_successes": 0, "corrected_successes": 0, "saved": 0}
    bar = tqdm(range(args.episodes), desc=f"DAgger {spec.env_name}", unit="ep")
    try:
        for i in bar:
            ep = run_dagger_episode(env, spec, policy, pre, post, corrector, args.seed + i, max_steps)
            corrected = ep["takeover_step"] is not None
            counts["interventions"] += corrected
            counts["corrected_successes"] += corrected and ep["success"]
            counts["policy_successes"] += (not corrected) and ep["success"]
            save = corrected or (ep["success"] and args.auto_save_on_success)
            if save:
                writer.add_episode(ep["frames"])
                counts["saved"] += 1
            provenance["episodes"].append({
                "seed": args.seed + i, "success": bool(ep["success"]), "takeover_step": ep["takeover_step"],
                "reason": ep["reason"], "frames": len(ep["frames"]), "saved": bool(save),
            })
            bar.set_postfix(interventions=counts["interventions"], policy_ok=counts["policy_successes"],
                            corrected_ok=counts["corrected_successes"])
    except KeyboardInterrupt:
        print(f"\nInterrupted: keeping the {counts['saved']} episodes recorded so far.", file=sys.stderr)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
        env.close()
    writer.info.update(provenance, **counts)
    path = writer.finalize()
    summary = (f"{len(provenance['episodes'])} episodes: policy alone succeeded {counts['policy_successes']}, "
               f"corrector took over {counts['interventions']} times and succeeded {counts['corrected_successes']}")
    if path is None:
        print(f"{summary}; nothing to save (no correction" +
              ("" if args.auto_save_on_success else ", and --auto-save-on-success is off") + ").")
        return None
    print(f"{summary}. Wrote {writer.num_episodes} episodes ({writer.num_frames} frames) to {path}")
    return path


if __name__ == "__main__":
    main()
