"""``make_mixture``: the datasets a ``DataConfig`` names, resolved, their episodes selected,
their DAgger frames chosen and weighted, checked to fit together, as one ``Mixture``."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sir.data.labels import label_mapping
from sir.data.mixture import weights as dagger
from sir.data.mixture.compat import env_spec_differences, plan_features
from sir.data.mixture.config import DataConfig
from sir.data.mixture.config import image_transforms as make_image_transforms
from sir.data.mixture.dataset import DatasetInfo, Mixture, Sharing
from sir.data.mixture.episodes import parse_episode_spec, select_episodes
from sir.data.mixture.sampling import check_share_options, parse_weights
from sir.data.resolve import ResolvedDataset, parse_repo_ids, resolve_dataset
from sir.data.store.frames import FrameStore
from sir.data.video import video_backend
from sir.envs.spec import EnvSpec
from sir.errors import UserError


def make_mixture(
    config: DataConfig,
    *,
    delta_timestamps: dict[str, list[float]] | None = None,
    image_transforms: Callable | None = None,
    use_imagenet_stats: bool = True,
    verbose: bool = True,
) -> Mixture:
    """The training mixture that ``config`` describes (see ``docs/datasets.md``).

    ``delta_timestamps`` fits its windows at once (``Mixture.fit``); ``image_transforms``
    is a callable applied to each camera frame, in place of the lerobot transforms that
    ``config.image_transforms`` names."""
    say = print if verbose else _quiet

    def warn(message: str) -> None:
        if verbose:
            print(f"warning: {message}", file=sys.stderr)

    if config.repo_ids is None:
        raise UserError("No datasets given: name them with --repo-ids, e.g. --repo-ids lift_demos,lift_dagger.")
    ids = parse_repo_ids(config.repo_ids)
    root = config.root
    # Cheap checks of the arguments come before any dataset is read.
    weight_array = parse_weights(config.dataset_weights, len(ids))
    balance_datasets, balance_episodes, seed = config.balance_datasets, config.balance_episodes, config.seed
    check_share_options(weight_array, balance_datasets)
    mode = dagger.resolve_mode(config.dagger_mode, not config.no_dagger_filter)
    if mode in dagger.POOLED_MODES and (weight_array is not None or balance_datasets):
        flag = "--dataset-weights" if weight_array is not None else "--balance-datasets"
        raise UserError(f"--dagger-mode {mode} sets every sample's share over the whole mixture (its source's "
                        f"weights); {flag} would change them: give only one.")
    if image_transforms is None:
        image_transforms = make_image_transforms(config.image_transforms)
    episodes = config.episodes
    selection = parse_episode_spec(episodes, ids)

    resolved = [resolve_dataset(r, root) for r in ids]
    metas = [_load_meta(r) for r in resolved]
    plan = plan_features(ids, [m.features for m in metas], [m.fps for m in metas])
    for line in plan.warnings:
        warn(line)
    for line in plan.notes:
        say(f"note: {line}")
    env_specs = [EnvSpec.load(r.root) for r in resolved]
    for line in env_spec_differences(ids, env_specs):
        warn(line)
    chosen_episodes = [
        select_episodes(selection.get(r.repo_id), m.total_episodes, r.repo_id)
        for r, m in zip(resolved, metas, strict=True)
    ]

    stores: list[FrameStore] = []
    used_frames: list[np.ndarray] = []
    infos: list[DatasetInfo] = []
    frame_classes: list[np.ndarray | None] = []
    episode_offset = 0
    bar = tqdm(list(zip(resolved, metas, strict=True)), desc="Loading datasets", unit="dataset", disable=None)
    for index, (res, meta) in enumerate(bar):
        mapping = label_mapping(meta.features, env_specs[index])
        store = FrameStore(
            res.repo_id, res.root, meta, plan.features.keys(),
            extra_columns=mapping.columns if mapping is not None else (),
            dataset_index=index, episode_offset=episode_offset, video_backend=video_backend(),
            image_transforms=image_transforms,
        )
        labels = mapping.read(store.extra, store.frame_episode) if mapping is not None else None
        frames, summary, classes = dagger.training_frames(
            res.repo_id, store.frame_episode, labels, chosen_episodes[index], mode, say, mapping
        )
        # The actions no sample of the mode learns from (the policy's, where a mode learns only
        # from human actions) become padding in every action chunk; demos have no classes.
        untrained = dagger.untrained_actions(mode, classes) if classes is not None else None
        if untrained is not None:
            store.mask_action_frames(untrained)
        stores.append(store)
        used_frames.append(frames)
        frame_classes.append(classes)
        infos.append(DatasetInfo(
            repo_id=res.repo_id, root=res.root, total_episodes=int(meta.total_episodes),
            used_episodes=np.unique(store.frame_episode[frames]).tolist(), frames=len(frames),
            env_spec=env_specs[index], revision=res.revision, total_frames=int(meta.total_frames),
            fps=int(meta.fps), dagger=summary.to_dict() if summary is not None else None,
            dagger_mode=mode if classes is not None else None,  # None: demos, labelled or not
            labels=mapping,
        ))
        episode_offset += int(meta.total_episodes)
    bar.close()

    mixture = Mixture(
        ids, plan, int(metas[0].fps), stores, used_frames, infos,
        Sharing(weight_array, balance_datasets, balance_episodes, seed), use_imagenet_stats, frame_classes,
    )
    mixture.fit(delta_timestamps)
    return mixture


def make_split_mixtures(config: DataConfig, held_out: int, verbose: bool = True) -> tuple[Mixture, Mixture | None]:
    """(the training mixture, the validation mixture or None): with ``held_out`` > 0 the last
    ``held_out`` of each dataset's selected episodes are whole validation episodes, never
    trained on (lerobot 0.6's ``dataset.eval_split``, by episode, per dataset)."""
    if not held_out:
        return make_mixture(config, verbose=verbose), None
    ids = parse_repo_ids(config.repo_ids or [])
    selection = parse_episode_spec(config.episodes, ids)
    train, val = {}, {}
    for repo_id in ids:
        meta = _load_meta(resolve_dataset(repo_id, config.root))
        chosen = select_episodes(selection.get(repo_id), meta.total_episodes, repo_id).tolist()
        if len(chosen) <= held_out:
            raise UserError(f"--val-episodes {held_out} would hold out every selected episode of '{repo_id}' "
                            f"({len(chosen)}); hold out fewer, or select more with --episodes.")
        train[repo_id], val[repo_id] = chosen[:-held_out], chosen[-held_out:]
    # The validation samples are read in order, one after another: no shares or balancing.
    val_config = replace(config, episodes=val, dataset_weights=None, balance_datasets=False, balance_episodes=False)
    return make_mixture(replace(config, episodes=train), verbose=verbose), make_mixture(val_config, verbose=False)


def _quiet(message: str) -> None:
    pass


def _load_meta(res: ResolvedDataset):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    # lerobot fetches what is missing from the hub, so a damaged local copy would be
    # refused as unreachable (offline) or mixed with the hub's files: said here instead.
    info_path = res.root / "meta" / "info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"Dataset '{res.repo_id}': {info_path} cannot be read ({err}); restore the dataset from a "
                        "copy or record it again.") from err
    if isinstance(info, dict):
        _check_fps(res, info_path, info.get("fps"))
    if not any((res.root / "meta" / "episodes").glob("*/*.parquet")):
        raise UserError(f"Dataset '{res.repo_id}' at {res.root} has no meta/episodes/ files (an incomplete copy?); "
                        "restore the dataset from a copy or record it again.")
    try:
        return LeRobotDatasetMetadata(res.repo_id, root=res.root)
    except Exception as err:  # a folder that is not a readable LeRobot v3 dataset
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"Dataset '{res.repo_id}' at {res.root} could not be read as a LeRobot v3 dataset ({reason})."
        ) from err


def _check_fps(res: ResolvedDataset, info_path: Path, fps: object) -> None:
    """Refuse a frame rate that is not a positive number: lerobot divides by it to turn a
    policy's frame offsets into timestamps."""
    if isinstance(fps, int | float) and not isinstance(fps, bool) and math.isfinite(fps) and fps > 0:
        return
    try:
        spec = EnvSpec.load(res.root)
    except UserError:  # a damaged sir_env.json too: refused on its own once fps is mended
        spec = None
    known = f" ({spec.control_freq}, the control rate its meta/sir_env.json records)" if spec is not None else ""
    raise UserError(f"Dataset '{res.repo_id}': {info_path} gives fps {json.dumps(fps)}, not a positive frame rate; "
                    f"set \"fps\" there to the rate the data was recorded at{known}.")
