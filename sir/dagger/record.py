"""Record DAgger corrections: the policy drives, a corrector takes over when it fails.

    python -m sir.dagger.record --checkpoint checkpoints/act_lift_demos/best_model \
        --episodes 20 --root data --repo-id lift_dagger_r1 [--auto-save-on-success]

The corrector is the task's scripted expert, playing a watching person (``TakeoverRule``:
it takes over on what a person sees, a moment after seeing it, goes on from the state it
finds with the demos' noise, hands back once the critical part is done, and resets the
episode as a failure when it cannot get there), or a person with one of robosuite's input
devices (``--corrector keyboard|spacemouse|mjgui``, see docs/teleoperation.md) who takes over
and hands back with a key; either may take over as often as it likes.

Frames are labelled ``source`` 0 (policy) or 1 (corrector) and ``success`` 0/1 (the
episode's outcome), both int64 of shape (1,), the labels ``sir.data`` filters on. Each
episode's takeovers (step, length, phase, reason, what ended them) go to
``meta/sir_corrections.jsonl`` and to the result's ``per_episode``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sir import seeds
from sir.config import option, parse, validate
from sir.dagger.corrector import Corrector, HumanCorrector, ScriptedCorrector, TakeoverRule
from sir.data.labels import HUMAN, LABEL_FEATURE_SPECS, POLICY, SOURCE, label_episode
from sir.data.record.runner import RESET, Episode, Frame, RecordingResult, Reset, open_writer, record_episodes
from sir.data.record.writer import refuse_if_busy
from sir.envs.devices import DEVICES
from sir.errors import cli_errors
from sir.eval.model_env import (
    ModelEnvConfig,
    check_env_flags,
    check_model_fits_env,
    spec_from_flags,
)
from sir.experts.base import RECORDING_NOISE, ExpertNoise


class CorrectedPolicy:
    """The actor of a DAgger episode: the policy acts until the corrector takes over; the
    corrector acts until it hands back, as often as it likes; frames are labelled by who
    acted and by the outcome, and ``corrections`` logs each takeover as a person's log would
    (see ``finish``).

    While the corrector acts, the policy is still asked, every step, what it would do from
    the state, as Sirius's collection loop and ThriftyDAgger ask theirs: from a fresh plan
    (its queue emptied), since a hand-back would start it afresh from there too.
    """

    name = "policy"

    def __init__(self, policy: Any, preprocessor: Any, postprocessor: Any, corrector: Corrector, task: str):
        self.policy, self.preprocessor, self.postprocessor = policy, preprocessor, postprocessor
        self.corrector = corrector
        self.task = task

    def reset(self, env: Any) -> None:
        self.env = env
        self.policy.reset()
        self.corrector.reset(env)
        self.sources: list[int] = []  # who acted at each step
        self.corrections: list[dict[str, Any]] = []
        self.correcting = False

    def _policy_action(self, features: Frame, fresh: bool = False) -> np.ndarray:
        import torch

        from sir.eval.batch import to_policy_batch

        if fresh:
            # The queued action chunk was planned from states long gone.
            self.policy.reset()
        with torch.no_grad():
            batch = self.preprocessor(to_policy_batch(features, self.task))
            return self.postprocessor(self.policy.select_action(batch)).squeeze(0).cpu().numpy().astype(np.float32)

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray | Reset | None:
        corrector = self.corrector
        step = len(self.sources)
        action = None
        if self.correcting:
            proposal = self._policy_action(features, fresh=True)
            if np.all(np.isfinite(proposal)) and corrector.should_hand_back(obs, proposal, reward):
                self.correcting = False
                self.corrections[-1].update(steps=step - self.corrections[-1]["step"], hand_back=corrector.handed_back)
                action = proposal  # planned afresh from this state: the hand-back's queue reset
        if not self.correcting:
            if action is None:
                action = self._policy_action(features)
            finite = bool(np.all(np.isfinite(action)))
            if not finite or corrector.should_take_over(obs, action, reward):
                corrector.take_over(self.env)
                self.correcting = True
                self.corrections.append({"step": step, "steps": None, "phase": None,
                                         "reason": corrector.reason if finite else "policy action not finite",
                                         "subgoal": None, "hand_back": None})
        if self.correcting:
            action = corrector.act(obs, features, reward)
            entry = self.corrections[-1]
            if entry["step"] == step:
                entry.update(phase=corrector.phase, subgoal=corrector.subgoal)
            if action is RESET:  # the corrector gave up: the episode ends here, a failure
                entry.update(steps=step - entry["step"], hand_back=corrector.handed_back)
                return RESET
        if action is None or corrector.discarded:
            return None
        self.sources.append(HUMAN if self.correcting else POLICY)
        return action

    def finish(self, episode: Episode) -> None:
        """Label the frames, and give the episode its corrections: for each takeover, the
        step it came at, how many steps it lasted, the phase of the task it came in, why it
        came, the sub-goal it was for, and what ended it (``subgoal``, ``agreement``, ``cap``
        or ``operator``; ``reset`` when it ended the episode as a failure; None when it lasted
        to the episode's end)."""
        for entry in self.corrections:
            if entry["steps"] is None:
                entry["steps"] = len(self.sources) - entry["step"]
        episode.corrections = self.corrections
        if self.corrections:
            episode.takeover_step, episode.reason = self.corrections[0]["step"], self.corrections[0]["reason"]
        label_episode(episode.frames, None, episode.success)
        for frame, source in zip(episode.frames, self.sources, strict=True):
            frame[SOURCE][0] = source


@dataclass
class RecordConfig(ModelEnvConfig):
    checkpoint: str = option(None, "the policy's model folder (e.g. .../best_model)", required=True)
    episodes: int = option(20, "episodes to run", minimum=1)
    root: str = option("data", "folder that holds datasets")
    repo_id: str = option(None, "dataset name; written to <root>/<repo-id>", required=True)
    corrector: str = option("expert", "who corrects: the task's scripted expert, or a person with this robosuite "
                            "input device, watching a window (needs a screen)", choices=["expert", *DEVICES])
    auto_save_on_success: bool = option(False, "also save episodes the policy finished alone (all frames source 0)")
    drop_failures: bool = option(False, "save no episode that failed, corrected or not: out of steps without "
                                 "success, or reset by the corrector (Sirius's collection discards them; the DAgger "
                                 "loop sets this)")
    label_budget: int | None = option(None, "stop after the episode in which the corrector's labels (its frames, "
                                      "saved or not) reach this many, as Sirius caps the human samples of a round",
                                      minimum=1)
    max_steps: int | None = option(None, "step limit (default: the EnvSpec's horizon)", minimum=1)
    seed: int = option(seeds.CORRECTIONS.start, "seed of episode 0; episode i uses seed+i")
    patience: int = option(TakeoverRule.patience, "the scripted corrector takes over, as a person watching would, when "
                           "the policy has made no progress for this many steps (no new best shaped reward, no 5 mm "
                           "towards the sub-goal: the gripper nearer the object, the object higher, nearer or lower "
                           "over its target) ...", minimum=1)
    away_steps: int = option(TakeoverRule.away_steps, "... or has moved away from the sub-goal for this many steps "
                             "in a row (0: never), or has dropped the object ...", minimum=0)
    reaction_delay: int = option(TakeoverRule.reaction_delay, "... this many steps after it first sees one of these, "
                                 "if it still holds (a person's reaction)", minimum=0)
    oracle_deviation: float | None = option(
        TakeoverRule.oracle_deviation, "an ORACLE's trigger, off unless given, for oracle studies: also take over when "
        "the policy's arm command differs from the expert's hidden one by more than this (L2), which no person "
        "watching can see ...", minimum=0)
    oracle_deviation_steps: int = option(TakeoverRule.oracle_deviation_steps, "... for this many steps in a row",
                                         minimum=1)
    agree: float = option(TakeoverRule.agree, "it hands back at its sub-goal (grasp secured, object lifted, object "
                          "over the target, ...), or, once past the phase it took over in, when the policy's own "
                          "proposed action, asked every step, is within this of the expert's (L2, same gripper "
                          "command) ...", minimum=0)
    agree_steps: int = option(TakeoverRule.agree_steps, "... for this many steps in a row (ThriftyDAgger's rule)",
                              minimum=1)
    agree_mid_recovery: bool = option(False, "let agreement hand back anywhere in a correction, mid-recovery too (the "
                                      "rule before issue 33)")
    reset_after: int = option(TakeoverRule.reset_after, "a correction stuck this many steps on one part of the task "
                              "(no step up its phases: grasp secured, object lifted, ...) ends the episode as a "
                              "failure (hand_back 'reset'), as Sirius's operator resets a run", minimum=1)
    max_correction: int | None = option(TakeoverRule.max_correction, "hand back after this many steps of a correction "
                                        "in all, recovered or not (hand_back 'cap', the rule before issue 33)",
                                        minimum=1)
    no_hand_back: bool = option(False, "the scripted corrector finishes the episode once it has taken over, never "
                                "handing back (a person hands back with the takeover key either way)")
    noise: float = option(RECORDING_NOISE.action_std, "std of Gaussian noise on the scripted corrector's arm commands "
                          "(the demos' recording noise, sir.data.collect's --noise)", minimum=0)
    target_jitter: float = option(RECORDING_NOISE.target_jitter, "metres of jitter on the scripted corrector's "
                                  "waypoints (sir.data.collect's --target-jitter)", minimum=0)
    device: str | None = option(None, "cuda, mps or cpu (default: the best available)")

    # The old rule's flags: taking over on straying from the expert's command is an oracle's.
    RENAMED: ClassVar[dict[str, str]] = {
        "--deviation": "is now --oracle-deviation, off by default: a person watching cannot see the expert's command, "
                       "so a takeover on straying from it is an oracle's",
        "--deviation-steps": "is now --oracle-deviation-steps, the steps in a row for --oracle-deviation",
    }


def parse_config(argv: list[str] | None = None) -> RecordConfig:
    return parse(RecordConfig, argv, "python -m sir.dagger.record",
                 "Run a trained policy in its Robosuite env with a corrector watching, who takes over when the "
                 "policy fails to make progress and hands back once past the critical part, as often as needed. "
                 "Writes a LeRobot DAgger dataset with per-frame source (0 policy, 1 corrector) and success labels, "
                 "and each episode's takeovers in meta/sir_corrections.jsonl.")


# The scripted corrector before issue 33, as flags, for comparisons (benchmarks/corrector_rule.py):
# an oracle, taking over at once on straying from the expert's command, handing back on agreement
# mid-recovery or at a 50-step cap, acting without noise.
RULE_BEFORE_ISSUE_33 = ("--patience 15 --away-steps 0 --reaction-delay 0 --oracle-deviation 1.0 --agree-mid-recovery "
                        "--max-correction 50 --noise 0 --target-jitter 0")


def takeover_rule(cfg: RecordConfig) -> TakeoverRule:
    """The scripted corrector's rule as the flags set it."""
    return TakeoverRule(patience=cfg.patience, away_steps=cfg.away_steps, reaction_delay=cfg.reaction_delay,
                        oracle_deviation=cfg.oracle_deviation, oracle_deviation_steps=cfg.oracle_deviation_steps,
                        agree=cfg.agree, agree_steps=cfg.agree_steps, agree_mid_recovery=cfg.agree_mid_recovery,
                        reset_after=cfg.reset_after, max_correction=cfg.max_correction,
                        hand_back=not cfg.no_hand_back)


def corrector_noise(cfg: RecordConfig) -> ExpertNoise:
    """The scripted corrector's noise as the flags set it."""
    return ExpertNoise(action_std=cfg.noise, target_jitter=cfg.target_jitter)


def keeps(cfg: RecordConfig, episode: Episode) -> bool:
    """Whether the recording saves ``episode`` (see ``saves``)."""
    return saves(cfg, bool(episode.success), episode.takeover_step is not None)


def saves(cfg: RecordConfig, success: bool, corrected: bool) -> bool:
    """Whether a recording by ``cfg`` saves an episode of this outcome: a corrected one, or
    with ``auto_save_on_success`` one the policy finished alone; with ``drop_failures``, none
    that failed (ran out of steps, or was reset by the corrector)."""
    return bool((success or not cfg.drop_failures) and (corrected or (success and cfg.auto_save_on_success)))


def resets(result: RecordingResult) -> int:
    """Episodes that the scripted corrector ended as failures, stuck."""
    return sum(bool(e.get("corrections")) and e["corrections"][-1]["hand_back"] == "reset" for e in result.per_episode)


def record_corrections(cfg: RecordConfig) -> RecordingResult:
    """Run ``cfg.episodes`` DAgger episodes and write the corrected ones (and, with
    ``auto_save_on_success``, the policy's own successes) to ``cfg.root/cfg.repo_id``."""
    from sir.envs.factory import make_env
    from sir.experts import EXPERTS, make_expert
    from sir.policies.checkpoint import load_checkpoint
    from sir.runtime import pick_device, quiet_libraries

    validate(cfg)
    refuse_if_busy(cfg.root, cfg.repo_id)
    quiet_libraries()
    policy, pre, post, spec, info = load_checkpoint(cfg.checkpoint, device=pick_device(cfg.device),
                                                    spec=spec_from_flags(cfg))
    if cfg.env is not None:
        check_env_flags(cfg, spec)
        check_model_fits_env(policy.config, spec)
    policy.eval()
    human = cfg.corrector in DEVICES
    if human:
        from sir.envs.devices import check_screen, window_spec

        check_screen(cfg.corrector, spec)
        env = make_env(window_spec(spec))
        phases = make_expert(spec.env_name) if spec.env_name in EXPERTS else None
        corrector: Corrector = HumanCorrector(cfg.corrector, env, phases=phases)
        rule = None
    else:
        rule = takeover_rule(cfg)
        corrector = ScriptedCorrector(make_expert(spec.env_name, corrector_noise(cfg), seed=cfg.seed), rule)
        env = make_env(spec)
    provenance: dict[str, Any] = {
        "recorded_by": "sir.dagger.record", "checkpoint": str(Path(cfg.checkpoint).resolve()),
        "checkpoint_step": info.get("step"),
        "checkpoint_datasets": [d.get("repo_id") for d in info.get("datasets", [])],
        "corrector": cfg.corrector, "takeover_rule": asdict(rule) if rule else None,
        "corrector_noise": None if human else asdict(corrector_noise(cfg)), "first_seed": cfg.seed,
        "auto_save_on_success": cfg.auto_save_on_success, "drop_failures": cfg.drop_failures,
        "label_budget": cfg.label_budget, "episodes": [],
    }
    try:
        writer = open_writer(env, spec, cfg.root, cfg.repo_id, cfg.seed, info=provenance, labels=LABEL_FEATURE_SPECS,
                             resumable=True)
        result = record_episodes(
            writer, env, spec, CorrectedPolicy(policy, pre, post, corrector, spec.task), cfg.seed, cfg.episodes,
            cfg.max_steps or spec.horizon, until_written=False,
            keep=lambda ep: keeps(cfg, ep),
            stop=(lambda r: r.corrector_frames >= cfg.label_budget) if cfg.label_budget else None,
            desc=f"DAgger {spec.env_name}",
            status=lambda r: {"interventions": r.interventions, "takeovers": r.takeovers,
                              "policy_ok": r.policy_successes, "corrected_ok": r.corrected_successes,
                              **({"discarded": r.discarded} if human else {})},
            info=lambda r: {"episodes": r.per_episode, "interventions": r.interventions,
                            "policy_successes": r.policy_successes, "corrected_successes": r.corrected_successes,
                            "saved": r.episodes, "discarded": r.discarded, "takeovers": r.takeovers,
                            "deployment_frames": r.deployment_frames, "corrector_frames": r.corrector_frames},
        )
    finally:
        if human:
            corrector.close()
    summary = (f"{result.tried} episodes: policy alone succeeded {result.policy_successes}, corrector took over "
               f"in {result.interventions} ({result.takeovers} takeovers) and {result.corrected_successes} succeeded"
               + (f", {result.discarded} discarded" if human else f", {resets(result)} reset as failures"))
    if result.path is None:
        print(f"{summary}; nothing to save (no correction" +
              ("" if cfg.auto_save_on_success else ", and --auto-save-on-success is off") + ").")
    else:
        print(f"{summary}. Wrote {result.episodes} episodes ({result.frames} frames) to {result.path}")
    return result


@cli_errors
def main(argv: list[str] | None = None) -> Path | None:
    return record_corrections(parse_config(argv)).path


if __name__ == "__main__":
    main()
