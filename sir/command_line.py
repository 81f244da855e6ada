"""The command line of a config that nests the configs of the functions its command calls.

The DAgger loop calls the trainer and the recorder: ``LoopConfig`` holds a ``TrainConfig``
and a ``RecordConfig`` (``nested`` fields), and the experiment's config holds a
``LoopConfig``. Library code passes these configs, never flag strings. A ``CommandLine``
lists the command's flags: each goes to a field anywhere in that tree (``Flag``: the loop's
``--batch-size`` is ``train.batch_size``), and a ``FlagString`` (``--train-args "--lr 1e-3"``)
is read, once, at the command's edge, into the nested config it names. ``flat`` gives back
what a command line said (by flag name, the flag strings as flags), for a settings file a
later run compares itself with.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sir.config import add_flag, coerce, fields, flag, flags_given, refuse_renamed, to_flags, validate
from sir.errors import UserError


def nested(factory: Callable[[], Any], help: str = "") -> Any:
    """A config field holding the config of a function the command calls (the DAgger loop's
    ``TrainConfig``), made by ``factory``. It is no flag itself: a ``CommandLine`` says which
    of its fields are flags of the command, and which quoted string of flags sets the rest."""
    return dataclasses.field(default_factory=factory, metadata={"help": help, "cli": False})


@dataclasses.dataclass(frozen=True)
class Flag:
    """A flag of a ``CommandLine``: ``--<last part of path>``, whose value goes to ``path``, a
    field of the command's config (``rounds``) or of a config nested in it (``train.batch_size``).
    Its default is the value there in the command's default config; ``help`` replaces the
    field's own where the command means more by it."""

    path: str
    help: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


@dataclasses.dataclass(frozen=True)
class FlagString:
    """A flag of a ``CommandLine`` whose value is a quoted string of the flags of the config at
    ``path`` (``--train-args "--lr 1e-3"`` for ``train``), read into it over what the command's
    own flags set there. ``moves``: fields the string may give that belong elsewhere in the
    command's config (field -> path); ``refuses``: fields it may not give (field -> the
    sentence saying why and what to give instead)."""

    name: str
    path: str
    help: str
    moves: Mapping[str, str] = dataclasses.field(default_factory=dict)
    refuses: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _get(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _replace_at(cfg: Any, path: str, value: Any) -> Any:
    """``cfg`` with the field at ``path`` (dotted, through nested configs) set to ``value``."""
    head, _, rest = path.partition(".")
    return dataclasses.replace(cfg, **{head: _replace_at(getattr(cfg, head), rest, value) if rest else value})


def _field_at(cls: type, path: str) -> tuple[dataclasses.Field, Any]:
    """(the field, its type) at ``path`` of config class ``cls``."""
    head, _, rest = path.partition(".")
    f, tp = next(((f, tp) for f, tp in fields(cls) if f.name == head), (None, None))
    if f is None:
        raise ValueError(f"{cls.__name__} has no field {head!r}")
    return _field_at(tp, rest) if rest else (f, tp)


class CommandLine:
    """The command line of a config that nests others: ``entries`` (a path is short for
    ``Flag(path)``) in the order ``--help`` and ``flat`` list them. Every flag of the config's
    own fields must be among them."""

    def __init__(self, cls: type, entries: Iterable[str | Flag | FlagString]):
        self.cls = cls
        self.entries = [Flag(e) if isinstance(e, str) else e for e in entries]
        self.flags = [e for e in self.entries if isinstance(e, Flag)]
        self.strings = [e for e in self.entries if isinstance(e, FlagString)]
        self.types = {e.name: _field_at(cls, e.path) for e in self.flags}
        own = {f.name for f, _ in fields(cls) if f.metadata.get("cli", True)}
        missing = own - {e.path for e in self.flags}
        names = [e.name for e in self.entries]
        if missing or len(set(names)) != len(names):
            raise ValueError(f"{cls.__name__}'s command line lacks {sorted(missing)} or names a flag twice: {names}")

    def parser(self, prog: str, description: str) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=prog, description=description)
        defaults = self.cls()
        for e in self.entries:
            if isinstance(e, FlagString):
                parser.add_argument(flag(e.name), dest=e.name, default="", metavar='"FLAGS"', help=e.help)
                continue
            f, tp = self.types[e.name]
            help_text = f.metadata.get("help", "") if e.help is None else e.help
            add_flag(parser, e.name, f, tp, copy.deepcopy(_get(defaults, e.path)), help_text)
        return parser

    def parse(self, argv: list[str] | None, prog: str, description: str) -> Any:
        """The command's whole parse: its flags, and its flag strings read into the nested
        configs, as one checked config. A flag the config's ``RENAMED`` names is refused in one
        sentence saying what became of it (see ``sir.config``)."""
        refuse_renamed(self.cls, sys.argv[1:] if argv is None else argv)
        cfg = self.from_flat(vars(self.parser(prog, description).parse_args(argv)), "the command line")
        validate(cfg)
        return cfg

    def from_flat(self, values: Mapping[str, Any], source: str) -> Any:
        """The config that ``values`` (flag name -> value, as ``flat`` gives them) say; an
        unknown name, a value of the wrong type or a refused flag in a string is refused."""
        known = {e.name for e in self.entries}
        for key in values:
            if key not in known:
                raise UserError(f"{source} sets '{key}', which is not a setting of this command (see --help).")
        defaults = cfg = self.cls()
        for e in self.flags:
            if e.name in values:
                cfg = _replace_at(cfg, e.path, coerce(e.name, values[e.name], self.types[e.name][1], source))
        # Strings last: their flags go over what the command's own flags set.
        for e in self.strings:
            text = values.get(e.name) or ""
            if not isinstance(text, str):
                raise UserError(f"{source} sets '{e.name}' to {text!r}, which is not a quoted string of flags.")
            given = flags_given(type(_get(cfg, e.path)), text, flag(e.name))
            for name in given:
                if name in e.refuses:
                    raise UserError(e.refuses[name])
            moved = {name: given.pop(name) for name in e.moves if name in given}
            cfg = _replace_at(cfg, e.path, dataclasses.replace(_get(cfg, e.path), **given))
            for name, value in moved.items():
                target = e.moves[name]
                if _get(cfg, target) not in (value, _get(defaults, target)):
                    raise UserError(f"{flag(e.name)} gives {flag(name)} {value} but {flag(target.rsplit('.', 1)[-1])} "
                                    f"is {_get(cfg, target)}; give it once.")
                cfg = _replace_at(cfg, target, value)
        return cfg

    def flat(self, cfg: Any) -> dict[str, Any]:
        """What a command line giving ``cfg`` says, by flag name: each flag's value, and each
        flag string as the flags that differ from what the command's own flags leave there."""
        defaults = self.cls()
        out = {}
        for e in self.entries:
            if isinstance(e, Flag):
                out[e.name] = copy.deepcopy(_get(cfg, e.path))
                continue
            base = _get(defaults, e.path)
            for f in self.flags:
                if f.path.startswith(e.path + "."):
                    base = _replace_at(base, f.path[len(e.path) + 1:], _get(cfg, f.path))
            out[e.name] = to_flags(_get(cfg, e.path), base)
        return out

    def same_settings(self, saved: Mapping[str, Any], cfg: Any, source: str, ignore: Iterable[str] = ()) -> bool:
        """Whether flag values saved earlier (``flat``'s) say what ``cfg`` says, the names in
        ``ignore`` aside: the same names, the same values, flag strings by what they set."""
        if not isinstance(saved, Mapping):
            return False
        now = self.flat(cfg)
        try:
            earlier = self.flat(self.from_flat(saved, source))
        except UserError:
            return False
        return set(saved) == set(now) and all(earlier[k] == now[k] for k in now if k not in set(ignore))
