"""Model folders saved by a newer lerobot than the one sir runs on (0.4.4).

lerobot's config decoder (draccus) refuses every key of ``config.json`` that its config
class lacks, and newer lerobot releases add fields. Read at lerobot's tags
(``src/lerobot/configs/policies.py`` and ``src/lerobot/policies/*/configuration_*.py``):

- 0.5.0 and 0.5.1 add nothing to ACT's, Diffusion's or the base class's fields;
- 0.6.0 adds ``PreTrainedConfig.pretrained_revision`` (so every 0.6 config carries it) and,
  to PI0, PI0.5 and PI0-FAST, ``use_relative_actions``, ``relative_exclude_joints`` and
  ``action_feature_names``;
- 0.6.1 adds ``DiffusionConfig.gradient_checkpointing``.

A key is dropped, with one line naming it, when the model computes the same without it:
the field only adds an option and the saved value is the one that leaves it off (or any
value, where the option never changes the outputs). A key whose saved value turns on a
behaviour 0.4.4 lacks, or one sir knows nothing about, is refused in one sentence.

The processor files (``policy_preprocessor.json``, ``policy_postprocessor.json``) keep
their schema through 0.6.1 (``DataProcessorPipeline.get_config``: a name, and steps of
``registry_name``, ``config`` and ``state_file``); ACT's and Diffusion's steps are the same
six. A step 0.4.4 does not have (0.6's ``relative_actions_processor``, say) is refused by name.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir.errors import UserError

ANY_VALUE = object()  # the option leaves the model's outputs alone at every value


@dataclass(frozen=True)
class NewerKey:
    since: str  # the first lerobot release whose configs carry it
    effect: str  # what the option does, for the message
    inert: Any = ANY_VALUE  # the saved value at which dropping it leaves the model as saved


NEWER_KEYS: dict[str, NewerKey] = {
    # Read by 0.6's make_policy/make_pre_post_processors as the hub revision to fetch
    # pretrained_path at; sir loads the weights that sit beside this config.
    "pretrained_revision": NewerKey("0.6.0", "the hub revision lerobot fetched starting weights at"),
    # modeling_diffusion.py: torch.utils.checkpoint around the U-Net blocks, training only;
    # the forward pass is the same, the backward pass recomputes it to save memory.
    "gradient_checkpointing": NewerKey("0.6.1", "recomputes the U-Net in training to save memory"),
    # configuration_pi0.py: actions predicted relative to the state (RelativeActionsProcessorStep).
    "use_relative_actions": NewerKey("0.6.0", "actions predicted relative to the robot state", inert=False),
    "relative_exclude_joints": NewerKey("0.6.0", "joints kept absolute under use_relative_actions"),
    # Filled in from the dataset's action names by 0.6's make_policy; read only with relative actions.
    "action_feature_names": NewerKey("0.6.0", "the action dimensions' names"),
}


def installed_lerobot() -> str:
    from importlib.metadata import version

    return version("lerobot")


def readable_config(raw: Any, where: Path | str) -> tuple[Any, list[str]]:
    """``config.json``'s content as the installed lerobot decodes it, and the newer keys
    dropped from it; a key that would change the model, or an unknown one, is refused."""
    import lerobot.policies.factory  # noqa: F401  (registers every policy's config class)
    from lerobot.configs.policies import PreTrainedConfig

    if not isinstance(raw, dict):
        return raw, []
    try:
        cls = PreTrainedConfig.get_choice_class(raw.get("type"))
    except Exception:  # no or unknown type: lerobot's own decoder says so
        return raw, []
    known = {f.name for f in dataclasses.fields(cls)} | {"type"}
    extra = [key for key in raw if key not in known]
    ours = installed_lerobot()
    changing = [k for k in extra if k in NEWER_KEYS and NEWER_KEYS[k].inert is not ANY_VALUE
                and raw[k] != NEWER_KEYS[k].inert]
    if changing:
        key = changing[0]
        newer = NEWER_KEYS[key]
        raise UserError(f"{where} sets {key} to {json.dumps(raw[key])} ({newer.effect}), a behaviour of lerobot "
                        f"{newer.since} and later that lerobot {ours}, which sir runs on, lacks; sir cannot run this "
                        "model as it was saved.")
    unknown = [k for k in extra if k not in NEWER_KEYS]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise UserError(f"{where} has {'settings' if len(unknown) > 1 else 'a setting'} {names} that lerobot {ours} "
                        f"(sir's) does not know, so sir cannot tell whether the model depends on "
                        f"{'them' if len(unknown) > 1 else 'it'}; it was saved by a lerobot newer than those sir reads "
                        "(up to 0.6.1).")
    return {k: v for k, v in raw.items() if k not in extra}, extra


def dropped_line(where: Path | str, dropped: list[str]) -> str:
    items = ", ".join(f"{key} ({NEWER_KEYS[key].effect}; lerobot {NEWER_KEYS[key].since})" for key in dropped)
    return f"{where}: saved by a newer lerobot; dropped what lerobot {installed_lerobot()} lacks and the model " \
           f"does not need: {items}."


def check_processor_steps(config_file: Path) -> None:
    """Refuse, by name, a processor step the installed lerobot does not have."""
    from lerobot.processor import ProcessorStepRegistry

    try:
        steps = json.loads(config_file.read_text()).get("steps", [])
    except (OSError, ValueError, AttributeError):
        return  # lerobot's loader words a damaged file
    for step in steps if isinstance(steps, list) else []:
        name = step.get("registry_name") if isinstance(step, dict) else None
        if name is None:
            continue
        try:
            ProcessorStepRegistry.get(name)
        except KeyError:
            raise UserError(f"{config_file} uses the processor step '{name}', which lerobot {installed_lerobot()} "
                            "(sir's) does not have; it was saved by a newer lerobot, and sir cannot run the model "
                            "without that step.") from None
