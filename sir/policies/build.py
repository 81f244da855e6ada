"""A policy name, a preset and the generic flags → the lerobot config to build it from.

Policies are built by lerobot's own factories (``make_policy_config``, ``make_policy``,
``make_pre_post_processors``); this module decides the config values from the registry's
entry and runs the checks of ``sir.policies.checks``, each once.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any

from sir.errors import UserError
from sir.policies import checks
from sir.policies.registry import PolicyEntry, get_entry


def build_config(
    name: str,
    preset: str,
    input_features: dict[str, Any],
    output_features: dict[str, Any],
    device: str,
    chunk_size: int | None = None,
    n_obs_steps: int | None = None,
    n_action_steps: int | None = None,
    lr: float | None = None,
    *,
    pretrained_path: str | Path | None = None,
    dataset_features: dict[str, dict] | None = None,
    policy_args: dict[str, Any] | None = None,
) -> Any:
    """The lerobot config for ``name`` with the preset and the generic flags applied.

    ``pretrained_path`` (a local folder or a cached hub id) starts the policy from saved
    weights: lerobot's ``make_policy`` loads them because ``cfg.pretrained_path`` is set.
    ``dataset_features`` (the datasets' raw features) lets needs that the policy features
    do not show, such as ``next.reward``, be checked before anything is built.
    ``policy_args`` (from ``parse_policy_args``) sets fields of lerobot's config over the
    preset; the generic flags still win over both.
    Every need the data or this machine does not meet ends in a ``UserError`` sentence.
    """
    entry = get_entry(name)
    checks.check_preset_name(preset)
    checks.check_trainable(entry)
    inputs = {
        k: ft for k, ft in input_features.items() if entry.uses_env_state or k != "observation.environment_state"
    }
    checks.check_data_needs(entry, inputs, dataset_features)
    checks.check_preset(entry, preset)
    source = checks.weights_source(entry, preset, pretrained_path)
    values = _flag_values(entry, preset, chunk_size, n_obs_steps, n_action_steps, lr, policy_args or {})
    if source is not None:
        cfg = _pretrained_config(entry, source, device, values)
    else:
        from lerobot.policies.factory import make_policy_config

        try:
            cfg = make_policy_config(name, device=device, **values)
        except (ValueError, NotImplementedError) as err:
            # lerobot's configs validate themselves in __post_init__; their message names the field.
            raise UserError(f"Policy '{name}' rejects these settings: {err}") from err
    cfg.input_features = inputs
    cfg.output_features = dict(output_features)
    checks.normalize_env_state(cfg)
    checks.check_config(entry, cfg)
    checks.check_downloads(entry, cfg, preset)
    return cfg


def _flag_values(
    entry: PolicyEntry, preset: str, chunk_size: int | None, n_obs_steps: int | None,
    n_action_steps: int | None, lr: float | None, policy_args: dict[str, Any],
) -> dict[str, Any]:
    """Preset values, then ``--policy-args``, then the generic flags mapped onto the policy's own fields."""
    name = entry.name
    chunk_field, n_action_field = entry.chunk_field, entry.n_action_steps_field
    defaults = _defaults(name)
    values: dict[str, Any] = {**entry.presets[preset], **check_policy_args(name, policy_args)}
    if chunk_size is not None:
        if chunk_field is None:
            raise UserError(f"Policy '{name}' predicts no action chunk; drop --action-chunk-size.")
        values[chunk_field] = chunk_size
        # Without --n-action-steps, the executed steps follow a smaller chunk down (ACT's
        # default executes its whole 100-step chunk); an explicit flag is checked below.
        if n_action_field and n_action_steps is None:
            default_n_action = values.get(n_action_field, defaults.get(n_action_field))
            if default_n_action is not None:
                values[n_action_field] = min(default_n_action, chunk_size)
    if n_obs_steps is not None:
        if entry.single_obs_step and n_obs_steps != 1:
            raise UserError(f"Policy '{name}' looks at one observation step only; drop --n-obs-steps {n_obs_steps}.")
        if n_obs_steps < 1:
            raise UserError("--n-obs-steps must be at least 1.")
        values["n_obs_steps"] = n_obs_steps
    if n_action_steps is not None:
        if n_action_field is None:
            raise UserError(
                f"Policy '{name}' executes its whole predicted chunk; drop --n-action-steps"
                + (" and set the chunk with --action-chunk-size." if chunk_field else ".")
            )
        if n_action_steps < 1:
            raise UserError("--n-action-steps must be at least 1.")
        values[n_action_field] = n_action_steps
    if lr is not None:
        for f in entry.lr_fields:
            values[f] = lr

    merged = {**defaults, **values}
    chunk = merged.get(chunk_field) if chunk_field else None
    n_action = merged.get(n_action_field) if n_action_field else None
    n_obs = merged.get("n_obs_steps", 1)
    if n_action is not None and n_action > 1:
        values.update(entry.multi_step_values)
    if chunk is not None and n_action is not None:
        usable = chunk - n_obs + 1 if entry.chunk_covers_obs_steps else chunk
        if n_action > usable:
            extra = f" minus {n_obs - 1} past observation steps" if usable != chunk else ""
            raise UserError(
                f"--n-action-steps {n_action} is larger than the action chunk ({chunk}{extra}) of policy '{name}'; "
                "lower it or raise --action-chunk-size."
            )
        if entry.drop_last_frames_field:
            # lerobot's own default (Diffusion's 7) is this difference at its default sizes.
            values[entry.drop_last_frames_field] = usable - n_action
    return values


def _pretrained_config(entry: PolicyEntry, source: Path | str, device: str, values: dict[str, Any]) -> Any:
    """The config saved with pretrained weights, with the flag values applied on top."""
    from sir.policies.checkpoint import read_config

    cfg = read_config(source)
    if cfg.type != entry.name:
        raise UserError(f"--pretrained-path {source} holds a '{cfg.type}' policy, not '{entry.name}'; "
                        f"pass --policy {cfg.type} or another checkpoint.")
    try:
        cfg = dataclasses.replace(cfg, device=device, **values)
    except (ValueError, NotImplementedError) as err:
        raise UserError(f"Policy '{entry.name}' rejects these settings: {err}") from err
    cfg.pretrained_path = source
    return cfg


def parse_policy_args(text: str | None) -> dict[str, Any]:
    """``"dim_model=256 down_dims=[64,128,256]"`` → ``{"dim_model": 256, "down_dims": (64, 128, 256)}``.

    Values are read as YAML scalars or lists (lists become tuples, as lerobot's configs
    declare them); the names are checked against the policy's config in ``build_config``.
    """
    import shlex

    import yaml

    values: dict[str, Any] = {}
    for item in shlex.split(text or ""):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--policy-args takes space-separated name=value pairs; '{item}' has no '='.")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        values[key] = tuple(value) if isinstance(value, list) else value
    return values


def check_policy_args(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (from ``parse_policy_args``) checked against lerobot's config for policy
    ``name``: each a field of it, of the field's type, refused in one sentence otherwise
    (lerobot's configs check few types, so a wrong one would surface as a traceback inside
    the model). A number YAML reads as text (``1e-4``, without a dot) is taken as the number
    where the field is a float."""
    defaults = _defaults(name)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise UserError(f"--policy-args: policy '{name}' has no setting {', '.join(map(repr, unknown))}; "
                        f"its settings are the fields of lerobot's {name} config.")
    types = _field_types(name)
    checked = {}
    for key, value in values.items():
        fits, checked[key] = _as_type(value, types.get(key, Any))
        if not fits:
            default = defaults[key]
            example = f" (its default: {key}={_shown(default)})" if default is not None else ""
            raise UserError(f"--policy-args gives {key}={_shown(value)}, but {key} of policy '{name}' takes "
                            f"{_kind(types[key])}{example}.")
    return checked


def _as_type(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether ``value`` is of type ``hint``, and the value to use. Types other than numbers,
    booleans, text, tuples and lists (nested configs, paths, dicts) are left to lerobot."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            fits, out = _as_type(value, arg)
            if fits:
                return True, out
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return isinstance(value, int | float) and not isinstance(value, bool), value
    if hint is str:
        return isinstance(value, str), value
    if hint in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, tuple | list):
            return False, value
        if not args:
            return True, value
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            return False, value
        items = [_as_type(v, t) for v, t in zip(value, item_types, strict=True)]
        return all(fits for fits, _ in items), type(value)(out for _, out in items)
    return True, value


_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
          str: ("text", "strings")}


def _kind(hint: Any, plural: bool = False) -> str:
    """``hint`` in words, as a user of ``--policy-args`` writes such a value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(a, plural) for a in args)
    if hint is type(None):
        return "null"
    if hint in (tuple, list) or origin in (tuple, list):
        if not args:
            return "lists" if plural else "a list"
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_kind(args[0], plural=True)}"
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_kind(args[0], plural=True)}"
        return f"a list of {len(args)} values"
    singular, many = _WORDS.get(hint, (getattr(hint, "__name__", str(hint)),) * 2)
    return many if plural else singular


def _shown(value: Any) -> str:
    """``value`` as it is written in ``--policy-args`` (YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return f"[{', '.join(_shown(v) for v in value)}]"
    return str(value)


@functools.cache
def _field_types(name: str) -> dict[str, Any]:
    from lerobot.policies.factory import make_policy_config

    try:
        return typing.get_type_hints(type(make_policy_config(name, device="cpu")))
    except Exception:  # a config whose annotations do not resolve: its values are left to lerobot
        return {}


@functools.cache
def _defaults(name: str) -> dict[str, Any]:
    from lerobot.policies.factory import make_policy_config

    fields = dataclasses.fields(type(make_policy_config(name, device="cpu")))
    return {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
