"""What a run trains, built in one place: the policy (new from the registry, or a saved
model to fine-tune or resume), its processors, optimizer, learning-rate schedule and the
gradient clip, as lerobot's trainer builds them (``make_policy``,
``make_pre_post_processors``, the config's optimizer and scheduler presets)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir.data.mixture.weights import untrained_actions_text
from sir.training import finetune
from sir.training.config import TrainConfig
from sir.training.schedule import scheduler_config


@dataclass
class StartingPoint:
    """Where the run's weights come from: a saved model (``--resume``, ``--policy-path``) or none."""

    path: Path | None
    config: Any  # the saved model's lerobot config (None for a new model)
    policy: str  # the policy type
    resume: bool

    @classmethod
    def of(cls, config: TrainConfig) -> StartingPoint:
        path = Path(config.resume) if config.resume else (Path(config.policy_path) if config.policy_path else None)
        saved = finetune.load_base_config(path, config.policy) if path is not None else None
        return cls(path, saved, saved.type if saved is not None else (config.policy or "act"), bool(config.resume))


@dataclass
class Model:
    policy: Any
    config: Any  # the policy's lerobot config
    preprocessor: Any
    postprocessor: Any
    optimizer: Any
    scheduler: Any  # None: the constant rate
    scheduler_config: Any
    grad_clip: float | None
    input_features: dict[str, Any]  # the data's, as policy features
    output_features: dict[str, Any]
    trainable: int  # parameters the optimizer updates


def make_model(config: TrainConfig, mixture: Any, start: StartingPoint, device: str,
               say: Callable[[str], Any] = print, held_out: Any = None) -> Model:
    """The policy for ``mixture``'s data and everything that trains it. Fits the mixture's
    sample windows (and the ``held_out`` validation mixture's) to the policy (``Mixture.fit_policy``)."""
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from sir.policies import build_config
    from sir.policies.checkpoint import load_checkpoint

    features = dataset_to_policy_features(mixture.features)
    output_features = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    input_features = {k: f for k, f in features.items() if k not in output_features}
    if start.config is None:
        policy_cfg = build_config(
            start.policy, config.preset, input_features, output_features, device,
            chunk_size=config.action_chunk_size, n_obs_steps=config.n_obs_steps,
            n_action_steps=config.n_action_steps, lr=config.lr, pretrained_path=config.pretrained_path,
            dataset_features=mixture.features, policy_args=config.policy_overrides,
        )
        stats = mixture.stats
    else:
        # Fine-tuning or resuming: the saved model decides the architecture; its stats are
        # pooled with the new data's so the old task keeps its normalization.
        policy_cfg = start.config
        finetune.check_features_match(policy_cfg, features, start.path)
        policy_cfg.device = device
        policy_cfg.pretrained_path = str(start.path)
        if config.lr is not None:
            policy_cfg.optimizer_lr = config.lr
        stats = None if start.resume else finetune.merge_stats(finetune.saved_stats(start.path), mixture.stats)
    for data in (mixture, held_out) if held_out is not None else (mixture,):
        data.fit_policy(policy_cfg)
    if mixture.masks_action_frames and getattr(policy_cfg, "do_mask_loss_for_padding", True) is False:
        # The actions the mode leaves out of a chunk reach the loss as padding
        # (sir.data.mixture.weights.untrained_actions); Diffusion skips padding only when asked to.
        policy_cfg.do_mask_loss_for_padding = True
        say(f"--dagger-mode {mixture.dagger_mode}: do_mask_loss_for_padding set, so "
            f"{untrained_actions_text(mixture.dagger_mode)} in a chunk are not trained on")
    policy = make_policy(policy_cfg, ds_meta=mixture)
    if start.resume:
        _, preprocessor, postprocessor, _, _ = load_checkpoint(start.path, device=device)
    else:
        preprocessor, postprocessor = make_pre_post_processors(policy_cfg, dataset_stats=stats)
    if config.lora_rank is not None:
        policy = finetune.wrap_with_lora(policy, config.lora_rank, config.lora_alpha, config.lora_dropout)
    optimizer_cfg = policy_cfg.get_optimizer_preset()
    params = [p for p in policy.parameters() if p.requires_grad]
    # LoRA: only the adapters train; lerobot's optim params would list frozen base weights too.
    optimizer = optimizer_cfg.build(params if config.lora_rank is not None else policy.get_optim_params())
    schedule = scheduler_config(config, policy_cfg, optimizer.param_groups[0]["lr"])
    scheduler = schedule.build(optimizer, config.training_steps) if schedule else None
    grad_clip = config.grad_clip_norm
    if grad_clip is None:
        grad_clip = getattr(optimizer_cfg, "grad_clip_norm", None)
    return Model(policy, policy_cfg, preprocessor, postprocessor, optimizer, scheduler, schedule, grad_clip,
                 input_features, output_features, sum(p.numel() for p in params))
