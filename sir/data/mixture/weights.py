"""Which frames of DAgger datasets training samples and how often (``--dagger-mode``).

The labels are ``sir.data.labels``' ``source`` and ``success``. A labelled dataset whose
chosen frames are all human is trained on as demos, every frame in every mode (failed episodes recorded with
``--keep-failures`` too); labels matter once policy frames are present. An episode
counts as successful when any of its frames says so, so a recorder that marks only the
final frame works as well as one that repeats the outcome on every frame. By default
training keeps the human frames of successful episodes; the other modes follow published
ways of learning from interventions (see ``MODES`` and docs/dagger.md). Samples' observation
history and action chunks may still read the neighbouring frames of the same episode; which
actions of a chunk are trained on is ``untrained_actions``' rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from sir.data.labels import HUMAN, SOURCE, SUCCESS, LabelMapping, missing_success
from sir.errors import UserError

DEFAULT_MODE = "successful-corrections"
ALL_FRAMES = "all"  # what --no-dagger-filter has always meant: every frame, uniformly
MODES = (DEFAULT_MODE, "hg-dagger", "iwr", "sirius", ALL_FRAMES)

# The classes of training samples, Sirius's four (its demo, robot, pre-intervention and
# intervention action modes). Demos are the frames of datasets without DAgger labels.
DEMO, ROBOT, PRE_INTERVENTION, INTERVENTION = range(4)
CLASS_NAMES = ("demo", "policy", "pre-intervention", "intervention")

# Sirius (Liu et al., RSS 2023), its code at github.com/UT-Austin-RPL/sirius:
# robomimic/exps/sirius/sirius.json relabels the policy steps before each takeover as
# pre-intervention with preintv_relabeling {"mode": "fixed", "fixed_preintv_length": 15}
# (0.75 s at robosuite's 20 Hz), stopping early at an earlier human step.
SIRIUS_PRE_INTERVENTION_STEPS = 15
# robomimic/utils/dataset.py, WeightedDataset._sirius_reweight, over the pooled training set:
# w_demos = 1 (demos keep their natural ratio), weight_intv = 0.5 (interventions' share),
# weight_preintv = 0.002 (pre-intervention's share), and robot frames the remainder,
# (1 - weight_intv - ratio_demos - weight_preintv) / ratio_rollouts.
SIRIUS_INTERVENTION_SHARE = 0.5
SIRIUS_PRE_INTERVENTION_SHARE = 0.002
# Intervention-weighted regression (Mandlekar et al. 2020, arXiv:2012.06733), as the Sirius
# repo implements it (robomimic/utils/dataset.py, IWRDataset.get_dataset_sampler): each
# intervention sample weighs (N - n_int) / n_int over all N samples, every other sample 1,
# so interventions are half of all samples and demos and robot frames the other half.
IWR_INTERVENTION_SHARE = 0.5
POOLED_MODES = ("iwr", "sirius")  # modes whose weights are over the whole mixture
OUTCOME_MODES = (DEFAULT_MODE, "sirius")  # modes that tell successful episodes apart
# The classes whose actions each mode leaves out of every sample's action chunk: they are
# marked as padding (``untrained_actions``), which ACT's and Diffusion's losses skip.
# HG-DAgger (Kelly et al. 2019) aggregates only the expert's labels, so a sample starting
# on a correction must not learn the policy's actions after the hand-back; sir's default
# mode keeps to human actions alike. Sirius weights each timestep of a sequence by its own
# class (WeightedDataset._update_weights; BC_RNN_GMM._compute_losses multiplies the loss by
# those weights), and its pre-intervention weight, 0.002 of the pool, is nearly none. IWR,
# as the Sirius repo runs it (bc_iwr.json: no hc_weights), trains every timestep of a
# sequence, so iwr and all mask nothing.
UNTRAINED_ACTIONS = {
    DEFAULT_MODE: (ROBOT, PRE_INTERVENTION),
    "hg-dagger": (ROBOT, PRE_INTERVENTION),
    "sirius": (PRE_INTERVENTION,),
}


@dataclass
class DaggerSummary:
    episodes: int  # episodes looked at (after episode selection)
    policy_frames: int
    human_frames: int
    successful_episodes: int
    kept_episodes: int  # successful episodes with at least one human frame
    kept_frames: int
    takeovers: int = 0  # policy-to-human hand-overs (a demo-like all-human episode has none)
    autonomous_successes: int = 0  # successful episodes with no human frame

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def check_labels(repo_id: str, name: str, values: np.ndarray) -> np.ndarray:
    """``values`` as int64 0/1, or a UserError naming the dataset and feature."""
    values = np.asarray(values).reshape(len(values), -1)
    if values.shape[1] != 1:
        raise UserError(f"Dataset '{repo_id}' has a '{name}' feature of {values.shape[1]} values per frame; "
                        "DAgger labels are one 0/1 value per frame.")
    values = values[:, 0].astype(np.int64)
    bad = np.setdiff1d(np.unique(values), [0, 1])
    if bad.size:
        raise UserError(f"Dataset '{repo_id}' has '{name}' values {bad.tolist()}; DAgger labels must be 0 or 1.")
    return values


def resolve_mode(mode: str, dagger_filter: bool = True) -> str:
    """The mode to use: ``dagger_filter=False`` (``--no-dagger-filter``) is the mode "all",
    and refused beside any mode other than the default or "all"."""
    if mode not in MODES:
        raise UserError(f"--dagger-mode must be one of {', '.join(MODES)}, not {mode!r}.")
    if dagger_filter:
        return mode
    if mode not in (DEFAULT_MODE, ALL_FRAMES):
        raise UserError(f"--no-dagger-filter trains on every frame, as --dagger-mode {ALL_FRAMES} does; "
                        f"it cannot be combined with --dagger-mode {mode}: give only one.")
    return ALL_FRAMES


def sample_classes(episode_index: np.ndarray, source: np.ndarray,
                   window: int = SIRIUS_PRE_INTERVENTION_STEPS) -> np.ndarray:
    """Each frame's class: INTERVENTION where a human acted, PRE_INTERVENTION for the up to
    ``window`` policy frames just before a takeover (Sirius's relabelling: back to the
    episode's start or an earlier human frame at most), ROBOT for other policy frames.
    Frames of an episode are consecutive, as in every LeRobot dataset."""
    human = source == HUMAN
    classes = np.where(human, INTERVENTION, ROBOT)
    index = np.arange(len(source))
    same_episode = np.r_[False, episode_index[1:] == episode_index[:-1]]
    same_run = same_episode & (human == np.r_[False, human[:-1]])
    run_start = np.maximum.accumulate(np.where(same_run, 0, index))  # first frame of each frame's run
    for start in np.flatnonzero(human & same_episode & ~same_run):  # takeovers
        classes[max(start - window, run_start[start - 1]):start] = PRE_INTERVENTION
    return classes


def untrained_actions(mode: str, classes: np.ndarray) -> np.ndarray | None:
    """The frames of a DAgger dataset whose action no sample trains on under ``mode`` (a mask
    over its frames, from their ``classes``), None where every action trains
    (``UNTRAINED_ACTIONS``)."""
    return np.isin(classes, UNTRAINED_ACTIONS[mode]) if mode in UNTRAINED_ACTIONS else None


def untrained_actions_text(mode: str) -> str:
    """What ``mode`` leaves out of every action chunk, in words: "pre-intervention actions"."""
    return " and ".join(CLASS_NAMES[c] for c in UNTRAINED_ACTIONS[mode]) + " actions"


def select_frames(
    mode: str, episode_index: np.ndarray, source: np.ndarray, success: np.ndarray, candidates: np.ndarray
) -> tuple[np.ndarray, np.ndarray, DaggerSummary]:
    """(mask of the frames ``mode`` trains on among ``candidates``, every frame's class, summary).

    - successful-corrections: the human frames of successful episodes;
    - hg-dagger: every human frame, whatever the outcome (HG-DAgger aggregates all of the
      expert's labels);
    - iwr, all: every frame;
    - sirius: the frames of successful episodes (Sirius learns from deployments seen through
      to success; its collection discards the other trials, so a failed episode is dropped
      whole); their pre-intervention frames stay, at Sirius's small share.

    What a sample's action chunk trains on is ``untrained_actions``' business.
    """
    classes = sample_classes(episode_index, source)
    successful = _successful_episodes(episode_index, success, candidates)[episode_index]
    human = source == HUMAN
    if mode == DEFAULT_MODE:
        keep = candidates & human & successful
    elif mode == "hg-dagger":
        keep = candidates & human
    elif mode == "sirius":
        keep = candidates & successful
    else:
        keep = candidates.copy()
    return keep, classes, _summary(episode_index, human, success, candidates, keep)


def class_shares(mode: str | None, counts: np.ndarray) -> np.ndarray | None:
    """The share of all samples each class (``CLASS_NAMES``) gets under ``mode``, over the
    pooled mixture whose samples number ``counts`` per class; None: every sample equally
    likely (within the datasets' shares)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if mode not in POOLED_MODES or counts[INTERVENTION] in (0, total):
        return None
    shares = np.zeros(len(CLASS_NAMES))
    if mode == "iwr":
        others = counts.copy()
        others[INTERVENTION] = 0
        shares = others / others.sum() * (1 - IWR_INTERVENTION_SHARE)
        shares[INTERVENTION] = IWR_INTERVENTION_SHARE
        return shares
    shares[DEMO] = counts[DEMO] / total
    shares[INTERVENTION] = SIRIUS_INTERVENTION_SHARE
    shares[PRE_INTERVENTION] = SIRIUS_PRE_INTERVENTION_SHARE if counts[PRE_INTERVENTION] else 0.0
    # Sirius's formula leaves robot frames a negative weight when demos are more than half
    # the data; sir gives them none then, and the rest is scaled to a whole.
    shares[ROBOT] = max(0.0, 1 - shares.sum()) if counts[ROBOT] else 0.0
    return shares / shares.sum()


def pooled_probabilities(mode: str | None, classes: np.ndarray, episodes: np.ndarray,
                         balance_episodes: bool = False) -> np.ndarray | None:
    """Each sample's probability under ``mode``'s class shares (``class_shares``), the
    samples of a class equally likely, or with ``balance_episodes`` each episode's part of a
    class equally likely and its samples within it; None where the mode sets no shares."""
    counts = np.bincount(classes, minlength=len(CLASS_NAMES))
    shares = class_shares(mode, counts)
    if shares is None:
        return None
    if not balance_episodes:
        return shares[classes] / counts[classes]
    # Per (class, episode) cell: the class's share over its episodes, then over the cell's samples.
    stride = int(episodes.max()) + 1
    cells, cell, cell_size = np.unique(classes.astype(np.int64) * stride + episodes, return_inverse=True,
                                       return_counts=True)
    episodes_per_class = np.bincount(cells // stride, minlength=len(CLASS_NAMES))
    return shares[classes] / episodes_per_class[classes] / cell_size[cell]


def _successful_episodes(episode_index: np.ndarray, success: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    num_episodes = int(episode_index.max()) + 1 if episode_index.size else 0
    return np.bincount(episode_index[candidates], weights=success[candidates], minlength=num_episodes) > 0


def _summary(episode_index: np.ndarray, human: np.ndarray, success: np.ndarray, candidates: np.ndarray,
             keep: np.ndarray) -> DaggerSummary:
    successful = _successful_episodes(episode_index, success, candidates)
    same_episode = np.r_[False, episode_index[1:] == episode_index[:-1]]
    takeover = candidates & human & same_episode & ~np.r_[False, human[:-1]]
    num_episodes = len(successful)
    any_human = np.bincount(episode_index[candidates], weights=human[candidates], minlength=num_episodes) > 0
    used = np.bincount(episode_index[candidates], minlength=num_episodes) > 0
    return DaggerSummary(
        episodes=int(np.unique(episode_index[candidates]).size),
        policy_frames=int((candidates & ~human).sum()),
        human_frames=int((candidates & human).sum()),
        successful_episodes=int(successful.sum()),
        kept_episodes=int(np.unique(episode_index[keep]).size),
        kept_frames=int(keep.sum()),
        takeovers=int(takeover.sum()),
        autonomous_successes=int((used & successful & ~any_human).sum()),
    )


def training_frames(
    repo_id: str, frame_episode: np.ndarray, labels: dict[str, np.ndarray | None] | None, chosen: np.ndarray,
    mode: str, say: Callable[[str], None], mapping: LabelMapping | None = None,
) -> tuple[np.ndarray, DaggerSummary | None, np.ndarray | None]:
    """(the frames a dataset trains on, its DaggerSummary, every frame's class), announced
    with ``say``. ``labels`` holds the DAgger labels (``LabelMapping.read``; success None
    where the dataset records no outcome), None for another dataset; ``mapping`` names the
    columns they were read from."""
    candidates = np.isin(frame_episode, chosen)
    if labels is None:
        frames = np.flatnonzero(candidates)
        say(f"{repo_id}: not a DAgger dataset, using all {len(chosen)} episodes ({len(frames)} frames)")
        return frames, None, None
    mapping = mapping or LabelMapping(SOURCE, SUCCESS)
    source = check_labels(repo_id, mapping.source, labels[SOURCE])
    if labels[SUCCESS] is None:
        success = np.zeros_like(source)
    else:
        success = check_labels(repo_id, mapping.success or SUCCESS, labels[SUCCESS])
    if not mapping.is_sirs:
        say(f"{repo_id}: DAgger labels {mapping.describe()}")
    if np.all(source[candidates] == HUMAN):
        # Demonstrations (sir labels its demos so): every frame, as for unlabelled demos, failed
        # episodes kept with --keep-failures too.
        frames = np.flatnonzero(candidates)
        say(f"{repo_id}: demonstrations (every frame human), using all {len(chosen)} episodes ({len(frames)} frames)")
        return frames, None, None
    if labels[SUCCESS] is None and mode in OUTCOME_MODES:
        raise UserError(missing_success(repo_id, mapping, mode, tuple(m for m in MODES if m not in OUTCOME_MODES)))
    keep, classes, summary = select_frames(mode, frame_episode, source, success, candidates)
    if mode == ALL_FRAMES:
        say(f"{repo_id}: DAgger filter off, using all {len(chosen)} episodes ({summary.kept_frames} frames)")
        return np.flatnonzero(keep), None, classes
    if summary.kept_frames == 0:
        raise no_frames_error(repo_id, mode, summary)
    if mode == DEFAULT_MODE:
        say(filter_message(repo_id, summary))
    else:
        say(_mode_message(repo_id, mode, summary, classes, keep, candidates, labels[SUCCESS] is not None))
    return np.flatnonzero(keep), summary, classes


def filter_message(repo_id: str, summary: DaggerSummary) -> str:
    return (
        f"{repo_id}: Filtered {summary.episodes} episodes → {summary.kept_episodes} successful human "
        f"corrections ({summary.kept_frames} frames), the policy's actions left out of their action chunks"
    )


def _mode_message(repo_id: str, mode: str, summary: DaggerSummary, classes: np.ndarray, keep: np.ndarray,
                  candidates: np.ndarray, outcomes: bool = True) -> str:
    head = f"{repo_id}: {mode}: {summary.episodes} episodes → {summary.kept_episodes} ({summary.kept_frames} frames)"
    if mode == "hg-dagger":
        outcome = f" ({summary.successful_episodes} episodes successful)" if outcomes else " (outcomes not recorded)"
        return f"{head}, every human frame{outcome}, the policy's actions left out of their action chunks"
    kept = np.bincount(classes[keep], minlength=len(CLASS_NAMES))
    parts = ", ".join(f"{n} {name}" for name, n in zip(CLASS_NAMES[1:], kept[1:], strict=True) if n)
    rule = ("interventions half of the mixture's samples, demos and policy frames the other half (IWR)"
            if mode == "iwr" else
            f"interventions {SIRIUS_INTERVENTION_SHARE:.0%} of the mixture's samples, pre-intervention "
            f"{SIRIUS_PRE_INTERVENTION_SHARE:.1%} (the up to {SIRIUS_PRE_INTERVENTION_STEPS} policy frames before "
            "each takeover, their actions left out of other samples' chunks), demos at their natural share, "
            "policy frames the rest (Sirius)")
    head = f"{head}: {parts}; {rule}"
    if mode == "iwr":
        return head
    failed = summary.episodes - summary.successful_episodes
    removed = int((candidates & ~keep).sum())
    return f"{head}; removed {failed} failed episode{'s' if failed != 1 else ''} ({removed} frames)"


def no_corrections_error(repo_id: str, summary: DaggerSummary) -> UserError:
    return UserError(
        f"Dataset '{repo_id}' has no successful human corrections ({summary.episodes} episodes, "
        f"{summary.human_frames} human frames, {summary.successful_episodes} successful episodes); "
        f"record more corrections or train on everything with --no-dagger-filter."
    )


def no_frames_error(repo_id: str, mode: str, summary: DaggerSummary) -> UserError:
    if mode == DEFAULT_MODE:
        return no_corrections_error(repo_id, summary)
    return UserError(
        f"Dataset '{repo_id}' has no frame left to train on with --dagger-mode {mode} ({summary.episodes} "
        f"episodes, {summary.human_frames} human frames, {summary.successful_episodes} successful episodes); "
        f"record more corrections or choose another --dagger-mode."
    )
