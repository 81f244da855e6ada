"""Command settings as dataclasses, and the one mapping between them and the command line.

A command's settings are one dataclass (as lerobot's ``TrainPipelineConfig`` or CleanRL's
``Args``): each field is a long flag of the same name (``training_steps`` is
``--training-steps``), with its default and help text declared once, beside the field::

    @dataclass
    class EvalConfig:
        checkpoint: str = option(None, "a best_model folder", required=True)
        episodes: int = option(50, "episodes to run", minimum=1)

``add_arguments`` puts the fields on an argparse parser, ``from_namespace`` reads them back,
and ``from_mapping`` builds a config from a YAML/JSON mapping, refusing unknown keys by name.
The library functions take the dataclass; the CLIs only parse into it.

A quoted string of a config's flags (``--train-args "--lr 1e-3"``) is read by ``flags_given``
(only the flags given come back) and written by ``to_flags``; ``sir.command_line`` reads such
strings into the configs nested in a command's own.

A flag that a config no longer has, but users may still give, is named in the class's
``RENAMED`` (old flag -> what became of it); ``parse`` and ``flags_given`` refuse it in one
sentence saying so, where argparse would only call it unrecognized.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sir.errors import UserError

C = TypeVar("C")


def option(
    default: Any,
    help: str = "",
    *,
    group: str | None = None,
    choices: Iterable[Any] | None = None,
    required: bool = False,
    minimum: float | None = None,
    positive: bool = False,
    cli: bool = True,
    metavar: str | None = None,
    repeat: bool = False,
) -> Any:
    """A config field that is also a command-line flag.

    ``minimum``/``positive`` are checked by ``validate`` (and so on the command line and in
    config files alike); ``cli=False`` keeps a field out of the parser (library-only).
    ``repeat``: a list field given once per item (``--checkpoint a --checkpoint b``), for
    items that may hold commas themselves.
    """
    meta = {"help": help, "group": group, "choices": list(choices) if choices is not None else None,
            "required": required, "minimum": minimum, "positive": positive, "cli": cli, "metavar": metavar,
            "repeat": repeat}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed) for ``X | None`` annotations."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) is list or tp is list


def split_list(text: str | list[str] | None) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` → ``["a", "b"]`` (blank entries dropped)."""
    if text is None:
        return None
    items = text if isinstance(text, list | tuple) else str(text).split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def _list_parser(tp: Any):
    """The argparse ``type`` of a ``list[X]`` field: comma-separated items, each made an X."""
    args = typing.get_args(tp)
    item = args[0] if args else str

    def parse(text: str) -> list[Any]:
        try:
            return [item(x) for x in split_list(text)]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {item.__name__}") from err

    parse.__name__ = f"list of {item.__name__}"
    return parse


def fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _default_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return str(value)


def add_arguments(parser: argparse.ArgumentParser, cls: type, exclude: Iterable[str] = (),
                  given_only: bool = False) -> None:
    """One flag per field of ``cls``, in declaration order, grouped by the fields' groups.

    ``given_only``: no defaults and nothing required, so that parsing returns only the flags
    given (``flags_given``)."""
    groups: dict[str | None, Any] = {None: parser}
    skip = set(exclude)
    for f, tp in fields(cls):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        group_name = f.metadata.get("group")
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        add_flag(groups[group_name], f.name, f, tp, default, f.metadata.get("help", ""), given_only)


def add_flag(target: Any, name: str, f: dataclasses.Field, tp: Any, default: Any, help_text: str,
              given_only: bool = False) -> None:
    """``--<name>`` for field ``f`` (of type ``tp``) on a parser or argument group."""
    meta = f.metadata
    if given_only:
        default = argparse.SUPPRESS
    base, optional = _base_type(tp)
    kwargs: dict[str, Any] = {"dest": name, "default": default}
    if base is bool and optional and f.default is None:
        # Unset means "decided at run time": --name and --no-name both say it outright.
        target.add_argument(flag(name), action="store_const", const=True, help=help_text, **kwargs)
        target.add_argument(flag(f"no_{name}"), action="store_const", const=False,
                            help=f"the opposite of {flag(name)}", **kwargs)
        return
    if base is bool:
        target.add_argument(flag(name), action="store_true", help=help_text, **kwargs)
        return
    if _is_list(base) and meta.get("repeat"):
        # argparse appends to a copy of the default, so the field's own list stays untouched.
        kwargs.update(action="append", type=(typing.get_args(base) or (str,))[0], metavar=meta.get("metavar"))
    elif _is_list(base):
        kwargs["type"] = _list_parser(base)
        kwargs["metavar"] = meta.get("metavar") or "A,B"
    else:
        kwargs["type"] = base if base in (int, float) else str
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
    if meta.get("choices"):
        kwargs["choices"] = meta["choices"]
    if not given_only:
        if meta.get("required") and default is None:
            kwargs["required"] = True
        elif default is not None and default != [] and "default:" not in help_text:
            help_text = f"{help_text} (default: {_default_text(default)})".lstrip()
    target.add_argument(flag(name), help=help_text.replace("%", "%%"), **kwargs)


def from_namespace(cls: type[C], ns: argparse.Namespace) -> C:
    values = {f.name: getattr(ns, f.name) for f, _ in fields(cls) if hasattr(ns, f.name)}
    return cls(**values)


def coerce(name: str, value: Any, tp: Any, source: str) -> Any:
    base, optional = _base_type(tp)
    if value is None:
        if optional or base is str or _is_list(base):
            return None
        raise UserError(f"{source} sets '{name}' to null, but it needs a value.")
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1"):
                    return True
                if value.lower() in ("false", "no", "0"):
                    return False
                raise ValueError(value)
            return bool(value)
        if _is_list(base):
            item = (typing.get_args(base) or (str,))[0]
            return [item(x) for x in split_list(value)]
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError) as err:
        kind = getattr(base, "__name__", str(base))
        raise UserError(f"{source} sets '{name}' to {value!r}, which is not a valid {kind}.") from err


def from_mapping(cls: type[C], data: Mapping[str, Any], source: str, ignore: Iterable[str] = ()) -> dict[str, Any]:
    """Field values from a mapping (a config file): keys may be flags (``--batch-size``) or
    field names; an unknown key is refused by name. Returns the values, ready for
    ``dataclasses.replace`` or a parser's defaults."""
    known = {f.name: tp for f, tp in fields(cls)}
    skip = set(ignore)
    values = {}
    for key, value in data.items():
        name = str(key).lstrip("-").replace("-", "_")
        if name.startswith("_") or name in skip:
            continue
        if name not in known:
            raise UserError(f"{source} sets '{key}', which is not a setting of this command (see --help).")
        values[name] = coerce(name, value, known[name], source)
    return values


def validate(cfg: Any) -> None:
    """Refuse values below a field's ``minimum`` or not ``positive`` (nan included), in one
    sentence naming the flag; nested configs are checked too."""
    for f, _ in fields(type(cfg)):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value)
            continue
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{flag(f.name)} must be a finite number, not {value}.")
        if f.metadata.get("positive") and value <= 0:
            raise UserError(f"{flag(f.name)} must be greater than 0, not {value}.")
        minimum = f.metadata.get("minimum")
        if minimum is not None and value < minimum:
            raise UserError(f"{flag(f.name)} must be at least {minimum:g}, not {value}.")


class _FlagStringParser(argparse.ArgumentParser):
    """A parser whose errors are a ``UserError`` naming the flag string, not an exit."""

    def error(self, message: str) -> typing.NoReturn:
        raise UserError(f"{self.prog}: {message}.")


def refuse_renamed(cls: type, argv: Iterable[str], source: str | None = None) -> None:
    """Refuse, in one sentence, a flag of ``argv`` that ``cls.RENAMED`` names (see the module's note)."""
    renamed: dict[str, str] = getattr(cls, "RENAMED", {})
    for word in argv:
        old = word.split("=", 1)[0]
        if old in renamed:
            raise UserError(f"{source + ': ' if source else ''}{old} {renamed[old]}.")


def flags_given(cls: type, text: str | list[str], source: str) -> dict[str, Any]:
    """The settings that a quoted string of ``cls``'s flags (``"--lr 1e-3 --batch-size 8"``)
    gives, and only those, by field name; ``source`` names the string in errors
    (``--train-args``). An unknown flag or a bad value is refused in one sentence."""
    try:
        argv = shlex.split(text) if isinstance(text, str) else list(text)
    except ValueError as err:
        raise UserError(f"{source} {text!r} is not a string of flags ({err}); check its quotes.") from err
    refuse_renamed(cls, argv, source)
    parser = _FlagStringParser(prog=source, add_help=False)
    add_arguments(parser, cls, given_only=True)
    ns, unknown = parser.parse_known_args(argv)
    if unknown:
        raise UserError(f"{source} has {' '.join(unknown)!r}, which this command does not take (see its --help).")
    return vars(ns)


def _flag_words(f: dataclasses.Field, tp: Any, value: Any) -> list[str]:
    """The command-line words that set field ``f`` to ``value``, as ``add_arguments`` reads them."""
    base, optional = _base_type(tp)
    if base is bool and optional and f.default is None and value is not None:
        return [flag(f.name) if value else flag(f"no_{f.name}")]
    if base is bool and value is True:
        return [flag(f.name)]
    if base is not bool and _is_list(base) and value is not None and f.metadata.get("repeat"):
        return [word for item in value for word in (flag(f.name), str(item))]
    if base is not bool and _is_list(base) and value is not None:
        return [flag(f.name), ",".join(map(str, value))]
    if base is not bool and value is not None:
        return [flag(f.name), repr(value) if isinstance(value, float) else str(value)]
    raise ValueError(f"{f.name}={value!r} cannot be given as a flag ({flag(f.name)} only sets other values).")


def to_flags(cfg: Any, base: Any) -> str:
    """The quoted string of flags that turns ``base`` into ``cfg`` (two configs of one class):
    what ``flags_given`` reads back into the same values."""
    words = []
    for f, tp in fields(type(cfg)):
        value = getattr(cfg, f.name)
        if f.metadata.get("cli", True) and value != getattr(base, f.name):
            words += _flag_words(f, tp, value)
    return shlex.join(words)


def parse(cls: type[C], argv: list[str] | None, prog: str, description: str) -> C:
    """A command's whole parse: its flags from ``cls``, read into a checked config."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser, cls)
    refuse_renamed(cls, sys.argv[1:] if argv is None else argv)
    cfg = from_namespace(cls, parser.parse_args(argv))
    validate(cfg)
    return cfg
