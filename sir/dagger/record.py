"""Record DAgger corrections: the policy drives, a corrector takes over when it fails.

    python -m sir.dagger.record --checkpoint checkpoints/act_lift_demos/best_model \
        --episodes 20 --root data --repo-id lift_dagger_r1 [--auto-save-on-success]

The corrector is the task's scripted expert, or a person with one of robosuite's input
devices (``--corrector keyboard|spacemouse|mjgui``, see docs/teleoperation.md) who takes over
and hands back with a key, as often as they like.

Frames are labelled ``source`` 0 (policy) or 1 (corrector) and ``success`` 0/1 (the
episode's outcome), both int64 of shape (1,), the labels ``sir.data`` filters on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sir.config import option, parse, validate
from sir.data.labels import HUMAN, LABEL_FEATURE_SPECS, POLICY, SOURCE, label_episode
from sir.data.record.runner import Episode, RecordingResult, open_writer, record_episodes
from sir.data.record.writer import refuse_if_busy
from sir.envs.devices import DEVICES
from sir.errors import cli_errors


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
    ``take_over(env)``, ``act(obs)``, ``should_hand_back()`` and ``discarded`` can correct;
    ``sir.data.record.teleop.HumanCorrector`` answers them with an operator's keys and device.
    """

    name = "expert"
    discarded = False  # a script never throws an episode away

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

    def should_hand_back(self) -> bool:
        return False  # the expert finishes the episode


class CorrectedPolicy:
    """The actor of a DAgger episode: the policy acts until the corrector takes over; the
    corrector acts until it hands back (a human may, as often as they like); frames are
    labelled by who acted and by the outcome."""

    name = "policy"

    def __init__(self, policy: Any, preprocessor: Any, postprocessor: Any, corrector: Any, task: str):
        self.policy, self.preprocessor, self.postprocessor = policy, preprocessor, postprocessor
        self.corrector = corrector
        self.task = task

    def reset(self, env: Any) -> None:
        self.env = env
        self.policy.reset()
        self.corrector.reset(env)
        self.sources: list[int] = []  # who acted at each step
        self.takeover_step: int | None = None  # the first takeover's

    def act(self, obs: dict[str, np.ndarray], features: dict[str, np.ndarray], reward: float) -> np.ndarray | None:
        import torch

        from sir.eval.batch import to_policy_batch

        corrector = self.corrector
        correcting = bool(self.sources) and self.sources[-1] == HUMAN
        if correcting and corrector.should_hand_back():
            correcting = False
            # The queued action chunk was planned before the takeover, from states long gone.
            self.policy.reset()
        if not correcting:
            with torch.no_grad():
                batch = self.preprocessor(to_policy_batch(features, self.task))
                action = self.postprocessor(self.policy.select_action(batch)).squeeze(0).cpu().numpy().astype(np.float32)
            if not np.all(np.isfinite(action)) or corrector.should_take_over(obs, action, reward):
                correcting = True
                if self.takeover_step is None:
                    self.takeover_step = len(self.sources)
                corrector.take_over(self.env)
        if correcting:
            action = corrector.act(obs)
        if corrector.discarded:
            return None
        self.sources.append(HUMAN if correcting else POLICY)
        return action

    def finish(self, episode: Episode) -> None:
        episode.takeover_step = self.takeover_step
        if self.takeover_step is not None:
            episode.reason = getattr(self.corrector, "reason", None)
        label_episode(episode.frames, None, episode.success)
        for frame, source in zip(episode.frames, self.sources, strict=True):
            frame[SOURCE][0] = source


@dataclass
class RecordConfig:
    checkpoint: str = option(None, "the policy's model folder (e.g. .../best_model)", required=True)
    episodes: int = option(20, "episodes to run", minimum=1)
    root: str = option("data", "folder that holds datasets")
    repo_id: str = option(None, "dataset name; written to <root>/<repo-id>", required=True)
    corrector: str = option("expert", "who corrects: the task's scripted expert, or a person with this robosuite "
                            "input device, watching a window (needs a screen)", choices=["expert", *DEVICES])
    auto_save_on_success: bool = option(False, "also save episodes the policy finished alone (all frames source 0)")
    drop_failures: bool = option(False, "save no episode that ran out of steps without success, corrected or not "
                                 "(Sirius's collection discards them; the DAgger loop sets this)")
    label_budget: int | None = option(None, "stop after the episode in which the corrector's labels (its frames, "
                                      "saved or not) reach this many, as Sirius caps the human samples of a round",
                                      minimum=1)
    max_steps: int | None = option(None, "step limit (default: the EnvSpec's horizon)", minimum=1)
    seed: int = option(50_000, "seed of episode 0; episode i uses seed+i")
    patience: int = option(TakeoverRule.patience, "takeover after this many steps without progress", minimum=0)
    deviation: float = option(TakeoverRule.deviation,
                              "takeover when the policy's arm command differs from the expert's by more than this ...",
                              minimum=0)
    deviation_steps: int = option(TakeoverRule.deviation_steps, "... for this many steps in a row", minimum=1)
    device: str | None = option(None, "cuda, mps or cpu (default: the best available)")


def record_corrections(cfg: RecordConfig) -> RecordingResult:
    """Run ``cfg.episodes`` DAgger episodes and write the corrected ones (and, with
    ``auto_save_on_success``, the policy's own successes) to ``cfg.root/cfg.repo_id``."""
    from sir.envs.factory import make_env
    from sir.experts import make_expert
    from sir.policies.checkpoint import load_checkpoint
    from sir.runtime import pick_device, quiet_libraries

    validate(cfg)
    refuse_if_busy(cfg.root, cfg.repo_id)
    quiet_libraries()
    policy, pre, post, spec, info = load_checkpoint(cfg.checkpoint, device=pick_device(cfg.device))
    policy.eval()
    human = cfg.corrector in DEVICES
    if human:
        from sir.data.record.teleop import HumanCorrector
        from sir.envs.devices import check_screen, window_spec

        check_screen(cfg.corrector, spec)
        env = make_env(window_spec(spec))
        corrector: Any = HumanCorrector(cfg.corrector, env)
        rule = None
    else:
        rule = TakeoverRule(patience=cfg.patience, deviation=cfg.deviation, deviation_steps=cfg.deviation_steps)
        corrector = ScriptedCorrector(make_expert(spec.env_name, seed=cfg.seed), rule)
        env = make_env(spec)
    provenance: dict[str, Any] = {
        "recorded_by": "sir.dagger.record", "checkpoint": str(Path(cfg.checkpoint).resolve()),
        "checkpoint_step": info.get("step"), "checkpoint_datasets": [d.get("repo_id") for d in info.get("datasets", [])],
        "corrector": cfg.corrector, "takeover_rule": asdict(rule) if rule else None, "first_seed": cfg.seed,
        "auto_save_on_success": cfg.auto_save_on_success, "drop_failures": cfg.drop_failures,
        "label_budget": cfg.label_budget, "episodes": [],
    }
    try:
        writer = open_writer(env, spec, cfg.root, cfg.repo_id, cfg.seed, info=provenance, labels=LABEL_FEATURE_SPECS,
                             resumable=True)
        result = record_episodes(
            writer, env, spec, CorrectedPolicy(policy, pre, post, corrector, spec.task), cfg.seed, cfg.episodes,
            cfg.max_steps or spec.horizon, until_written=False,
            keep=lambda ep: (ep.success or not cfg.drop_failures) and (
                ep.takeover_step is not None or (ep.success and cfg.auto_save_on_success)),
            stop=(lambda r: r.corrector_frames >= cfg.label_budget) if cfg.label_budget else None,
            desc=f"DAgger {spec.env_name}",
            status=lambda r: {"interventions": r.interventions, "policy_ok": r.policy_successes,
                              "corrected_ok": r.corrected_successes, **({"discarded": r.discarded} if human else {})},
            info=lambda r: {"episodes": r.per_episode, "interventions": r.interventions,
                            "policy_successes": r.policy_successes, "corrected_successes": r.corrected_successes,
                            "saved": r.episodes, "discarded": r.discarded, "takeovers": r.takeovers,
                            "deployment_frames": r.deployment_frames, "corrector_frames": r.corrector_frames},
        )
    finally:
        if human:
            corrector.close()
    summary = (f"{result.tried} episodes: policy alone succeeded {result.policy_successes}, "
               f"corrector took over {result.interventions} times and succeeded {result.corrected_successes}"
               + (f", {result.discarded} discarded" if human else ""))
    if result.path is None:
        print(f"{summary}; nothing to save (no correction" +
              ("" if cfg.auto_save_on_success else ", and --auto-save-on-success is off") + ").")
    else:
        print(f"{summary}. Wrote {result.episodes} episodes ({result.frames} frames) to {result.path}")
    return result


def parse_config(argv: list[str] | None = None) -> RecordConfig:
    return parse(RecordConfig, argv, "python -m sir.dagger.record",
                 "Run a trained policy in its Robosuite env with a corrector watching; when the corrector "
                 "takes over, it finishes the task. Writes a LeRobot DAgger dataset with per-frame source (0 policy, "
                 "1 corrector) and success labels.")


@cli_errors
def main(argv: list[str] | None = None) -> Path | None:
    return record_corrections(parse_config(argv)).path


if __name__ == "__main__":
    main()
