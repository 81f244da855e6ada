"""The settings that choose and mix datasets, shared by every command that trains on or
inspects a mixture, so that ``sir.data.verify`` checks exactly what training would use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sir.config import option
from sir.data.mixture.weights import DEFAULT_MODE, MODES
from sir.errors import UserError

GROUP = "datasets"
# The transforms of lerobot's ImageTransformsConfig, by the names it gives them.
IMAGE_TRANSFORMS = ("brightness", "contrast", "saturation", "hue", "sharpness", "affine")


@dataclass
class DataConfig:
    repo_ids: list[str] | None = option(
        None, "datasets to train on, separated by commas, e.g. lift_demos,lift_dagger", group=GROUP)
    root: str | None = option(
        None, "folder holding <root>/<repo_id> (default: the Hugging Face cache, downloading when online)", group=GROUP)
    episodes: str | None = option(
        None, 'episodes per dataset, e.g. "lift_demos=0:25,lift_dagger=all", or a YAML/JSON file', group=GROUP)
    dataset_weights: str | None = option(
        None, "share of samples from each dataset, e.g. 1,2 (normalized; one per --repo-ids entry)", group=GROUP)
    balance_datasets: bool = option(False, "draw the same share from every dataset", group=GROUP)
    balance_episodes: bool = option(False, "make every episode equally likely", group=GROUP)
    dagger_mode: str = option(
        DEFAULT_MODE, "which frames of DAgger datasets to train on and how often: successful-corrections (the human "
        "frames of successful episodes), hg-dagger (every human frame), iwr (every frame, interventions half of "
        "the samples), sirius (interventions half, no policy frames just before a takeover, no failed episodes), "
        "all (every frame, uniformly); see docs/dagger.md", group=GROUP, choices=MODES)
    no_dagger_filter: bool = option(
        False, "train on every frame of DAgger datasets: the same as --dagger-mode all", group=GROUP)
    image_transforms: list[str] | None = option(
        None, "augment camera frames as they are sampled, with lerobot's image transforms at its default ranges: "
        f"any of {', '.join(IMAGE_TRANSFORMS)}, comma-separated, each applied to every frame (affine: up to 5 "
        "degrees and 5%% shift); or lerobot (lerobot-train's --dataset.image_transforms.enable: up to 3 of the six "
        "per frame)", group=GROUP)
    seed: int = option(0, "seed of the weighted sampler and of training", group=GROUP)


def image_transforms(names: list[str] | None) -> Any:
    """lerobot's ``ImageTransforms`` for ``--image-transforms`` (None when not asked for)."""
    if not names:
        return None
    from lerobot.datasets.transforms import ImageTransforms, ImageTransformsConfig

    cfg = ImageTransformsConfig(enable=True)
    if names != ["lerobot"]:
        unknown = [n for n in names if n not in IMAGE_TRANSFORMS]
        if unknown:
            raise UserError(f"--image-transforms takes {', '.join(IMAGE_TRANSFORMS)} or lerobot, not {unknown[0]!r}.")
        cfg.tfs = {n: cfg.tfs[n] for n in names}
        cfg.max_num_transforms = len(cfg.tfs)
    return ImageTransforms(cfg)
