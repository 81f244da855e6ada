"""Which episodes of each dataset to train on.

The selection is given per dataset, on the command line or in a file::

    --episodes "lift_demos=0:25,lift_dagger=all"
    --episodes "lift_demos=0:10,20:25,40"        # a bare item continues the previous dataset
    --episodes episodes.yaml                      # {lift_demos: "0:25", lift_dagger: [0, 3, 7]}

An item is ``all``, an episode index, or a half-open range ``start:stop`` (either end may be
left out). Datasets that the selection does not name keep all their episodes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from sir.errors import UserError

EpisodeSpec = dict[str, list[Any] | None]
_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def parse_episode_spec(spec: str | Path | dict | None, repo_ids: list[str]) -> EpisodeSpec:
    """Per dataset, the raw selection items (None: all episodes)."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        raw = dict(spec)
    elif isinstance(spec, Path) or str(spec).strip().endswith(_FILE_SUFFIXES):
        raw = _load_file(Path(spec))
    else:
        raw = _parse_text(str(spec), repo_ids)
    unknown = [name for name in raw if name not in repo_ids]
    if unknown:
        raise UserError(
            f"--episodes names '{unknown[0]}', which is not among --repo-ids ({', '.join(repo_ids)})."
        )
    out: EpisodeSpec = {}
    for name, value in raw.items():
        if value is None:
            out[name] = None
        elif isinstance(value, (list, tuple)):
            out[name] = list(value)
        elif isinstance(value, str):
            out[name] = [s.strip() for s in value.split(",") if s.strip()]
        elif isinstance(value, int):
            out[name] = [value]
        else:
            raise UserError(
                f"--episodes gives {value!r} for '{name}'; use 'all', an index, a range such as 0:25, or a list."
            )
    return out


def _load_file(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"--episodes file {path} does not exist.")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = _yaml_load(text)
    except Exception as err:
        raise UserError(f"--episodes file {path} could not be read ({err}).") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"--episodes file {path} must map dataset names to episode selections.")
    return {str(k): v for k, v in data.items()}


def _yaml_load(text: str) -> Any:
    import yaml

    # YAML 1.1 reads an unquoted 0:25 as the base-60 integer 25; ranges must stay strings.
    class Loader(yaml.SafeLoader):
        pass

    int_tag = "tag:yaml.org,2002:int"
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != int_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(int_tag, re.compile(r"^[-+]?(0|[1-9][0-9]*)$"), list("-+0123456789"))
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def _parse_text(text: str, repo_ids: list[str]) -> dict[str, list[str]]:
    raw: dict[str, list[str]] = {}
    current: str | None = None
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if "=" in token:
            current, _, item = (s.strip() for s in token.partition("="))
            if current in raw:
                raise UserError(f"--episodes names '{current}' twice; give each dataset one entry.")
            raw[current] = []
        elif current is None:
            if len(repo_ids) != 1:
                raise UserError(
                    f"--episodes item '{token}' does not say which dataset it is for; "
                    f"write it as <repo_id>={token}."
                )
            current, item = repo_ids[0], token
            raw[current] = []
        else:
            item = token
        if item:
            raw[current].append(item)
    return raw


def select_episodes(items: list[Any] | None, total: int, repo_id: str) -> np.ndarray:
    """Sorted, unique episode indices of ``repo_id`` (which has ``total`` episodes)."""
    if items is None:
        return np.arange(total)
    chosen: set[int] = set()
    for item in items:
        chosen.update(_expand(item, total, repo_id))
    if not chosen:
        raise UserError(f"--episodes selects no episodes of '{repo_id}'; select at least one or leave it out.")
    return np.array(sorted(chosen), dtype=np.int64)


def _expand(item: Any, total: int, repo_id: str) -> range:
    text = str(item).strip()
    if text.lower() in {"all", "*", ":"}:
        return range(total)
    try:
        if ":" in text:
            start_s, _, stop_s = text.partition(":")
            start = int(start_s) if start_s.strip() else 0
            stop = int(stop_s) if stop_s.strip() else total
            if start < 0 or stop > total:
                raise UserError(
                    f"--episodes asks for episodes {text} of '{repo_id}', which has {total} "
                    f"(0:{total})."
                )
            return range(start, stop)
        index = int(text)
    except ValueError:
        raise UserError(
            f"--episodes cannot read '{text}' for '{repo_id}'; use 'all', an index such as 3, "
            f"or a range such as 0:25."
        ) from None
    if not 0 <= index < total:
        raise UserError(f"--episodes asks for episode {index} of '{repo_id}', which has {total} (0 to {total - 1}).")
    return range(index, index + 1)
