"""The one episode runner and recording loop behind every sir recorder.

An episode is a plain loop in the style of robomimic's ``run_rollout``: each step asks an
*actor* for the action (a scripted expert, or a policy that a corrector may take over from)
and keeps the observation features, the action, and the reward and success that followed.
``record_episodes`` writes episodes to a dataset with a progress bar. Each finished episode
is durable at once: Ctrl-C moves the finished episodes into place and raises ``Interrupted``
saying so; a kill (or any other error) leaves them for the next recording of the same
repo-id, which goes on from them (``DatasetWriter.recovered``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sir.config import option
from sir.data.labels import HUMAN, LABEL_FEATURE_SPECS, SOURCE, label_demo
from sir.data.record import journal
from sir.data.record.writer import DatasetWriter, dataset_features
from sir.envs.factory import action_dim, check_success, observation_to_features, reset_env
from sir.envs.spec import EnvSpec
from sir.errors import Interrupted, UserError, interrupt_in

Frame = dict[str, np.ndarray]


@dataclass
class DatasetTarget:
    """The flags of the commands that write a dataset (``collect``, ``import_hdf5``): where it
    goes and which cameras and observation keys it records."""

    root: str = option("data", "folder that holds datasets")
    repo_id: str = option(None, "dataset name; written to <root>/<repo-id>", required=True)
    cameras: list[str] = option([], "comma-separated cameras to record (rendered at each recorded state), e.g. "
                                "agentview,robot0_eye_in_hand")
    image_size: int = option(84, "camera image height and width", minimum=8)
    state_keys: list[str] | None = option(
        None, "robosuite observation keys, comma-separated, concatenated into observation.state "
        "(default: the env's layout, see sir.envs.spec)")
    env_state_keys: list[str] | None = option(
        None, "observation keys concatenated into observation.environment_state (default: the env's layout)")


@dataclass
class Episode:
    seed: int
    frames: list[Frame]
    success: bool
    takeover_step: int | None = None  # the step a corrector took over at, if one did
    reason: str | None = None  # why it took over
    discarded: bool = False  # the actor threw the episode away (a human operator's reset key)
    # One entry per takeover (``sir.dagger.record.CorrectedPolicy.finish``); None when no corrector watched.
    corrections: list[dict[str, Any]] | None = None


class Reset:
    """What ``Actor.act`` returns (as ``RESET``) to end the episode at once as a failure that
    counts, kept or dropped by the recorder's rules like any other: a corrector resetting a
    run it could not recover, as Sirius's operator does. None, instead, throws it away."""

    def __repr__(self) -> str:
        return "RESET"


RESET = Reset()


class Actor(Protocol):
    """Chooses each step's action. ``reward`` is the previous step's (0 at the start);
    ``finish`` may label the episode's frames once its outcome is known. ``act`` returning
    None ends the episode and discards it; returning ``RESET`` ends it as a failure."""

    name: str

    def reset(self, env: Any) -> None: ...

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray | Reset | None: ...

    def finish(self, episode: Episode) -> None: ...


class ExpertActor:
    """A scripted expert as an actor: it plans from the raw observation alone."""

    name = "expert"

    def __init__(self, expert: Any):
        self.expert = expert

    def reset(self, env: Any) -> None:
        self.expert.reset(env)

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray:
        return np.asarray(self.expert.act(obs), dtype=np.float32)

    def finish(self, episode: Episode) -> None:
        label_demo(episode.frames, episode.success)


def run_episode(env: Any, spec: EnvSpec, actor: Actor, seed: int, max_steps: int) -> Episode:
    """One episode from the initial state of ``seed``, ending at the first success (or when
    the actor discards it, or resets it: a failure).

    Each frame holds the observation features at step t, the action taken, and the reward
    and success that followed.
    """
    obs = reset_env(env, seed)
    actor.reset(env)
    frames: list[Frame] = []
    success, reward, discarded = False, 0.0, False
    for _ in range(max_steps):
        features = observation_to_features(obs, spec)
        action = actor.act(obs, features, reward)
        if action is RESET:
            break  # not successful: a failure, with the frames so far
        if action is None:
            discarded = True
            break
        obs, reward, done, _ = env.step(action)
        success = check_success(env)
        frames.append({
            **features,
            "action": action,
            "next.reward": np.array([reward], dtype=np.float32),
            "next.success": np.array([success], dtype=bool),
        })
        if success or done:
            break
    episode = Episode(seed, frames, success, discarded=discarded)
    actor.finish(episode)
    return episode


def open_writer(
    env: Any, spec: EnvSpec, root: str | Path, repo_id: str, seed: int, info: dict[str, Any],
    labels: dict[str, dict] = LABEL_FEATURE_SPECS, resumable: bool = False,
) -> DatasetWriter:
    """A writer for the frames ``run_episode`` records in ``env``, plus the ``labels`` features
    (every recorder writes the same ``source``/``success`` columns; see ``sir.data.mixture.weights``);
    ``resumable`` for ``record_episodes`` (see ``DatasetWriter``)."""
    example = observation_to_features(reset_env(env, seed), spec)
    features = dataset_features(spec, example, action_dim(env), extra=labels)
    return DatasetWriter(root, repo_id, spec, features, info=info, resumable=resumable)


@dataclass
class RecordingResult:
    """What a recording wrote (``path`` is None when no episode was kept) and how it went."""

    path: Path | None = None
    episodes: int = 0  # episodes written
    frames: int = 0  # frames written
    episode_lengths: list[int] = field(default_factory=list)  # frames of each written episode, in order
    tried: int = 0
    successes: int = 0
    interventions: int = 0  # episodes a corrector took over
    policy_successes: int = 0  # successes without a takeover
    corrected_successes: int = 0  # successes after a takeover
    per_episode: list[dict[str, Any]] = field(default_factory=list)  # one entry per episode run
    discarded: int = 0  # episodes the actor threw away: not counted as tried
    human_frames: int = 0  # frames of written episodes labelled ``source`` HUMAN
    # Over every episode run, written or not: what a person's log of the deployments shows.
    deployment_frames: int = 0
    corrector_frames: int = 0  # the labels the corrector gave, kept or not (the label budget counts them)
    takeovers: int = 0  # hand-overs from the policy to the corrector

    def intervention_ratio(self) -> float | None:
        """Corrector frames over deployment frames (Sirius's measure of how much help was needed)."""
        return self.corrector_frames / self.deployment_frames if self.deployment_frames else None

    def count(self, episode: Episode, saved: bool) -> None:
        if episode.discarded:
            self.discarded += 1
            return
        corrected = episode.takeover_step is not None
        sources = [int(f[SOURCE][0]) for f in episode.frames if SOURCE in f]
        self.deployment_frames += len(episode.frames)
        self.corrector_frames += sum(s == HUMAN for s in sources)
        # A corrector's log counts them (several an episode where it handed back), a takeover at
        # the first step too; otherwise the hand-overs within the labels.
        self.takeovers += (len(episode.corrections) if episode.corrections is not None
                           else sum(a != HUMAN and b == HUMAN for a, b in itertools.pairwise(sources)))
        self.tried += 1
        self.successes += episode.success
        self.interventions += corrected
        self.policy_successes += episode.success and not corrected
        self.corrected_successes += episode.success and corrected
        if saved:
            self.episodes += 1
            self.frames += len(episode.frames)
            self.episode_lengths.append(len(episode.frames))
            self.human_frames += sum(int(f[SOURCE][0]) == HUMAN for f in episode.frames if SOURCE in f)
        entry = {"seed": episode.seed, "success": bool(episode.success), "takeover_step": episode.takeover_step,
                 "reason": episode.reason, "frames": len(episode.frames), "saved": bool(saved)}
        if episode.corrections is not None:
            entry["corrections"] = episode.corrections
        self.per_episode.append(entry)


def record_episodes(
    writer: DatasetWriter,
    env: Any,
    spec: EnvSpec,
    actor: Actor,
    first_seed: int,
    episodes: int,
    max_steps: int,
    *,
    until_written: bool,
    keep: Callable[[Episode], bool],
    desc: str,
    status: Callable[[RecordingResult], dict[str, Any]],
    info: Callable[[RecordingResult], dict[str, Any]] | None = None,
    stop: Callable[[RecordingResult], bool] | None = None,
) -> RecordingResult:
    """Run episodes (episode i from seed ``first_seed + i``), write those ``keep`` accepts
    (never a discarded one), then finalize the dataset. Closes ``env``.

    ``until_written``: run until ``episodes`` are written (the bar counts written episodes),
    giving up after 3 x ``episodes`` without a success; otherwise run ``episodes`` (the bar
    counts episodes run). ``status`` gives the bar's counters; ``info``, what to add to the
    dataset's sir_info.json; ``stop``, when it says so after an episode, ends the recording
    early (a label budget spent). A writer that recovered an interrupted recording's episodes
    goes on after them: its counts, and the seeds after the last episode it kept.
    Ctrl-C keeps the finished episodes and raises ``Interrupted`` (what was kept).
    """
    from sir.progress import Progress

    notes = writer.recovered or {}
    result = RecordingResult(**notes["result"]) if "result" in notes else RecordingResult()
    runs = int(notes.get("runs", 0))  # episodes run so far, discarded ones too
    next_seed = int(notes.get("next_seed", first_seed))
    bar = Progress(episodes, desc, "ep", initial=result.episodes if until_written else runs)
    seeds = itertools.count(next_seed) if until_written else range(next_seed, next_seed + max(0, episodes - runs))
    interrupted = False
    try:
        for seed in seeds:
            if until_written and result.episodes >= episodes:
                break
            episode = run_episode(env, spec, actor, seed, max_steps)
            runs += 1
            saved = not episode.discarded and keep(episode)
            counted = copy.deepcopy(result)  # becomes the result once the episode is on disk
            counted.count(episode, saved)
            if episode.corrections is not None and not episode.discarded:
                # Before the episode's frames: its commit then holds the line (journal.CORRECTIONS).
                writer.log(journal.CORRECTIONS, {
                    "episode_index": writer.num_episodes if saved else None, "seed": seed,
                    "success": bool(episode.success), "frames": len(episode.frames),
                    "takeovers": len(episode.corrections), "corrections": episode.corrections})
            if saved:
                notes = {"result": {k: v for k, v in asdict(counted).items() if k != "path"},
                         "runs": runs, "next_seed": seed + 1}
                writer.add_episode(episode.frames, progress=notes)
            result = counted
            bar.update(1 if saved or not until_written else 0, **status(result))
            if stop is not None and stop(result):
                break
            if until_written and result.tried >= 3 * episodes and not result.successes:
                raise UserError(f"The {spec.env_name} {actor.name} failed {result.tried} episodes in a row; "
                                "nothing to record.")
    except BaseException as err:
        if interrupt_in(err) is None:
            writer.abort()
            raise
        interrupted = True  # Ctrl-C, even when a library wrapped it in another exception
    finally:
        bar.close()
        env.close()
    if info is not None:
        writer.info.update(info(result))
    result.path = writer.finalize()
    if interrupted:
        raise Interrupted(f"{result.episodes} finished episode{'s' if result.episodes != 1 else ''} "
                          f"kept in {result.path}"
                          if result.path else "no episode was finished; nothing written") from None
    return result
