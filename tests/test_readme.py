"""The README runs as written (issue 13, part 10): its shell commands, read from README.md
itself, run in order in one folder without one writing where an earlier one wrote, and the
outputs tree ("Where outputs go") names only what they leave there.

Each command runs in this process as its module's ``main(argv)``, with small-size flags
appended (argparse keeps the last of a repeated flag, so they override the README's sizes).
Step counts are divided by STEP_SCALE, ``checkpoint_<N>`` folder names included, so a
command that names a checkpoint of an earlier run still finds it only if the README's
steps line up; recorded episodes and the episode numbers training selects are divided by
EPISODE_SCALE likewise. Folder and dataset names are never changed (``sir.dagger.loop``
runs one round of the README's three: its later rounds' folders are read by nothing).
The quick test checks the same order without running anything: no command writes where an
earlier one wrote, and each reads inside folders earlier ones write.

Lines that do not run here, and why:
- ``make ...``: the targets wrap these same commands (``make test`` would run this suite);
- ``accelerate launch`` / ``torchrun``: several processes or GPUs;
- ``--device``/``--corrector`` keyboard, spacemouse or mjgui: a person at a window;
- ``--push-to-hub``, or ``--repo-ids`` without ``--root``: the Hugging Face Hub (tests are offline);
- ``sir.data.import_hdf5``: reads an HDF5 file a person brings (tests/test_import_hdf5.py runs it).
Those still must not write where an earlier command wrote, and what they read must exist by then.
"""

from __future__ import annotations

import glob
import importlib
import json
import math
import posixpath
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
STEP_SCALE = 100
STEP_FLAGS = ("--training-steps", "--eval-freq", "--save-freq", "--steps-per-stage")
EPISODE_SCALE = 10  # recorded episodes, and the episode numbers training selects
PEOPLE_DEVICES = {"keyboard", "spacemouse", "mjgui"}
TRAIN = "sir.training.train_policy"

# Appended to each command (per module) to make it cheap.
SMALL = {
    TRAIN: ["--preset", "tiny", "--batch-size", "4", "--eval-episodes", "1", "--max-steps", "20",
            "--eval-workers", "1", "--video-episodes", "1", "--device", "cpu"],
    "sir.eval.evaluate": ["--episodes", "1", "--max-steps", "20", "--workers", "1", "--video-episodes", "1",
                          "--device", "cpu"],
    "sir.eval.compare": ["--episodes", "1", "--max-steps", "20", "--workers", "1", "--device", "cpu"],
    # The policy barely trained: the expert takes over, and needs the env's horizon to succeed.
    "sir.dagger.record": ["--episodes", "1", "--device", "cpu"],
    "sir.dagger.loop": ["--rounds", "1", "--episodes-per-round", "1", "--preset", "tiny", "--batch-size", "4",
                        "--training-steps", "2", "--eval-freq", "0", "--eval-episodes", "1", "--max-steps", "20",
                        "--train-args", "--eval-workers 1 --device cpu"],
    "sir.data.verify": ["--num-samples", "16", "--batch-size", "4"],
}


@dataclass
class Command:
    text: str  # the README's line (continuations joined)
    launcher: str  # "python", "accelerate", "torchrun", "make"
    module: str | None
    args: list[str]
    skip: str | None = None


def fenced_blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(section heading, language, lines) of every fenced block."""
    blocks, heading, block, lang = [], "", None, ""
    for line in text.splitlines():
        if block is None and line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            if block is None:
                block, lang = [], line[3:].strip()
            else:
                blocks.append((heading, lang, block))
                block = None
        elif block is not None:
            block.append(line)
    return blocks


def flag(args: list[str], name: str, default: str | None = None) -> str | None:
    """The value of the last ``name`` (``--x v`` or ``--x=v``), as argparse reads it."""
    value = default
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def skip_reason(cmd: Command) -> str | None:
    if cmd.launcher == "make":
        return "make targets wrap the same commands"
    if cmd.launcher != "python":
        return "several processes or GPUs"
    if flag(cmd.args, "--device") in PEOPLE_DEVICES or flag(cmd.args, "--corrector") in PEOPLE_DEVICES:
        return "a person at a window drives it"
    if "--push-to-hub" in cmd.args or (flag(cmd.args, "--repo-ids") and not flag(cmd.args, "--root")):
        return "the Hugging Face Hub"
    if cmd.module == "sir.data.import_hdf5":
        return "reads an HDF5 file a person brings"
    return None


def readme_commands() -> list[Command]:
    commands = []
    for heading, lang, lines in fenced_blocks(README.read_text()):
        if lang not in ("", "bash", "sh", "shell") or heading == "Where outputs go":
            continue  # python snippets; the outputs tree (read by outputs_tree)
        for text in "\n".join(lines).replace("\\\n", " ").splitlines():
            # [--flag ...] marks optional flags the README offers: run without them.
            tokens = shlex.split(re.sub(r"\s\[[^\]]*\]", "", text), comments=True)
            if not tokens:
                continue  # a comment
            if tokens[0] == "make":
                cmd = Command(text, "make", None, tokens[1:])
            elif tokens[:2] == ["python", "-m"] and tokens[2].startswith("sir."):
                cmd = Command(text, "python", tokens[2], tokens[3:])
            elif tokens[0] in ("accelerate", "torchrun") and "-m" in tokens:
                at = tokens.index("-m")
                cmd = Command(text, tokens[0], tokens[at + 1], tokens[at + 2:])
            else:
                raise AssertionError(f"README shell line of a kind this test does not know: {text!r}")
            cmd.skip = skip_reason(cmd)
            commands.append(cmd)
    return commands


def scaled(module: str, args: list[str]) -> list[str]:
    """Step counts (and checkpoint_<N> names) divided by STEP_SCALE, the episodes a recording
    makes and those training selects (``lift_demos=0:25``) by EPISODE_SCALE; rounded up."""
    def scale(n: int | str, by: int) -> int:
        return math.ceil(int(n) / by)

    out = [re.sub(r"checkpoint_(\d+)", lambda m: f"checkpoint_{scale(m[1], STEP_SCALE)}", a) for a in args]
    for i, arg in enumerate(out[:-1]):
        if arg in STEP_FLAGS:
            out[i + 1] = str(scale(out[i + 1], STEP_SCALE))
        elif arg == "--episodes" and module == "sir.data.collect":
            out[i + 1] = str(scale(out[i + 1], EPISODE_SCALE))
        elif arg == "--episodes" and module in (TRAIN, "sir.data.verify"):
            out[i + 1] = re.sub(r"\d+", lambda m: str(scale(m[0], EPISODE_SCALE)), out[i + 1])
    return out


def small_argv(cmd: Command) -> list[str]:
    if cmd.module not in SMALL and cmd.module != "sir.data.collect":
        pytest.fail(f"the README runs {cmd.module}, for which this test has no small-size flags: add them to SMALL")
    argv = scaled(cmd.module, cmd.args) + SMALL.get(cmd.module, [])
    if cmd.module == TRAIN and "--training-steps" not in cmd.args and "--resume" not in cmd.args:
        argv += ["--training-steps", "2"]  # the default is 10,000; a resumed run keeps its own
    return argv


def writes(cmd: Command) -> tuple[Path | None, bool]:
    """(the folder the command creates, whether it may already exist) from its flags."""
    a = cmd.args
    if cmd.module in ("sir.data.collect", "sir.data.import_hdf5", "sir.dagger.record"):
        return Path(flag(a, "--root", "data")) / flag(a, "--repo-id"), "--skip-existing" in a
    if cmd.module == "sir.dagger.loop":
        name = flag(a, "--run-name") or "dagger_" + Path(flag(a, "--demos")).name
        return Path(flag(a, "--checkpoint-dir", "checkpoints")) / name, "--overwrite" in a
    if cmd.module == TRAIN:
        from sir.data import parse_repo_ids
        from sir.training.trainer import run_name_for

        if flag(a, "--resume"):
            return Path(flag(a, "--resume")).parent, True
        policy, base = flag(a, "--policy"), flag(a, "--policy-path")
        if policy is None and base and (Path(base) / "config.json").is_file():
            policy = json.loads((Path(base) / "config.json").read_text())["type"]
        name = flag(a, "--run-name") or run_name_for(policy or "act", parse_repo_ids(flag(a, "--repo-ids")))
        if "--sequential" in a and not flag(a, "--run-name"):
            name += "_sequential"
        return Path(flag(a, "--checkpoint-dir", "checkpoints")) / name, "--overwrite" in a
    return None, True


def reads(cmd: Command) -> list[Path]:
    """The folders an earlier command must have written (datasets only under a --root)."""
    a = cmd.args
    paths = [Path(flag(a, f)) for f in ("--checkpoint", "--policy-path", "--resume", "--demos") if flag(a, f)]
    if flag(a, "--repo-ids") and flag(a, "--root"):
        paths += [Path(flag(a, "--root")) / r.split("@")[0] for r in flag(a, "--repo-ids").split(",")]
    return paths


def split_items(text: str) -> list[str]:
    """``a/, b.{csv,png}`` -> ``["a/", "b.{csv,png}"]`` (commas inside braces kept)."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    return [i for i in [*items, current.strip()] if i]


def outputs_tree() -> list[tuple[str, str]]:
    """(path, description) for every path the "Where outputs go" tree names; a folder's
    description may name files and folders inside it (``with training_state/``)."""
    (lines,) = [b for h, _, b in fenced_blocks(README.read_text()) if h == "Where outputs go"]
    entries: list[list[str]] = []
    parents: list[str] = []
    for line in lines:
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        if not text:
            continue
        if indent > 8 or not re.match(r"[\w~<.]", text):
            entries[-1][1] += " " + text  # a description going on
            continue
        path_part, *desc = re.split(r"\s{2,}", text, maxsplit=1)
        items = split_items(path_part)
        parents = parents[: indent // 4]
        first = "".join(parents) + items[0]
        parents.append(items[0])
        beside = posixpath.dirname(first.rstrip("/")) + "/"
        entries.append([first, desc[0] if desc else ""])
        entries += [[item if "/" in item else beside + item, ""] for item in items[1:]]
    found = []
    for path, desc in entries:
        found.append((path, desc))
        if path.endswith("/"):
            inner = re.findall(r"(?<![\w/.<-])(\w+\.(?:json|jsonl|csv|png|mp4|safetensors)|\w+/)(?=[\s,)]|$)", desc)
            found += [(path + name, "") for name in inner]
    return found


def model_files() -> list[str]:
    """The files the README's paragraph on model folders says each one holds."""
    text = README.read_text()
    start = text.index("Each model folder is in lerobot's own layout")
    paragraph = text[start: text.index("\n\n", start)]
    return re.findall(r"`(\w+\.(?:json|safetensors))`", paragraph)


# Outputs-tree paths the README's commands do not write here, and why.
NOT_WRITTEN_HERE = {
    "results/": "make results (the results table's long runs; tests/test_results.py)",
    "docs/results": "make results",
    "checkpoints/bc_vs_dagger/": "make bc-vs-dagger (tests/test_dagger.py runs the experiment small)",
    "data/bc_vs_dagger/": "make bc-vs-dagger",
    "docs/dagger_experiment/": "make bc-vs-dagger",
    "~/": "decoded camera frames beyond --frame-cache-gb; the README's datasets have no cameras",
    "data/<repo_id>/videos/": "datasets with cameras only",
}


def as_glob(path: str) -> list[str]:
    path = re.sub(r"<[^>]*>|\.\.\.", "*", path)
    braces = re.search(r"\{([^}]*)\}", path)
    if braces:
        return [g for alt in braces[1].split(",") for g in as_glob(path[:braces.start()] + alt + path[braces.end():])]
    return [path]


def test_readme_lists_commands_of_each_kind():
    """Cheap: the parsing finds the README's commands, so the run below is not vacuous."""
    commands = readme_commands()
    ran = {c.module for c in commands if c.skip is None}
    assert {"sir.data.collect", TRAIN, "sir.eval.evaluate", "sir.dagger.record"} <= ran
    assert any(c.launcher == "make" and c.skip for c in commands)
    tree = dict(outputs_tree())
    assert "checkpoints/<policy>_<datasets>/checkpoint_<step>/training_state/" in tree
    assert "checkpoints/<policy>_<datasets>/eval/<model>/eval_results.json" in tree
    assert "checkpoints/..._sequential/forgetting_matrix.{csv,png}" in tree
    assert {"config.json", "model.safetensors", "sir_env.json"} <= set(model_files())


def test_readme_commands_write_distinct_folders():
    """Quick, without running anything: no command writes where an earlier one wrote, and
    each reads inside folders earlier ones wrote (the run below checks both, and that what
    it reads is really there)."""
    written: dict[Path, str] = {}
    for cmd in readme_commands():
        unwritten = [str(p) for p in reads(cmd) if not any(p == w or w in p.parents for w in written)]
        assert not unwritten, f"README: {cmd.text!r} reads {unwritten}, which no earlier command writes"
        target, may_exist = writes(cmd)
        if target is not None and target in written and not may_exist:
            pytest.fail(f"README: {cmd.text!r} writes {target}, which {written[target]!r} wrote before it")
        if target is not None:
            written[target] = cmd.text


@pytest.mark.slow
def test_readme_commands_run_in_order(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    # Tiny models gain nothing from a second thread; on a shared machine it halves the wall time.
    torch.set_num_threads(1)
    try:
        run_readme()
    finally:
        torch.set_num_threads(threads)


def run_readme() -> None:
    written: dict[Path, str] = {}
    for cmd in readme_commands():
        if cmd.launcher == "make":
            continue
        target, may_exist = writes(cmd)
        if target is not None and target in written and not may_exist:
            pytest.fail(f"README: {cmd.text!r} writes {target}, which {written[target]!r} wrote before it")
        if cmd.skip:
            missing = [str(p) for p in reads(cmd) if not p.exists()]
            assert not missing, f"README: {cmd.text!r} reads {missing}, which no earlier command wrote"
        else:
            argv = small_argv(cmd)
            main = importlib.import_module(cmd.module).main
            try:
                out = main(argv)
            except SystemExit as err:
                pytest.fail(f"README: {cmd.text!r} failed with exit code {err.code} (run as {argv})")
            if target is not None and isinstance(out, Path):
                assert out.resolve() == target.resolve(), (cmd.text, out)
        if target is not None:
            written[target] = cmd.text

    for path, desc in outputs_tree():
        if any(path.startswith(p) for p in NOT_WRITTEN_HERE):
            continue
        matches = [m for g in as_glob(path) for m in glob.glob(g)]
        if desc.startswith("only while"):
            assert not matches, f"{path} ({desc}) is left behind: {matches}"
        else:
            assert matches, f"the README's outputs tree names {path}, which its commands did not write"
    models = [p for p in Path("checkpoints").rglob("*")  # the model folders of every run
              if re.fullmatch(r"best_model|final_model|checkpoint_\d+", p.name)
              and (p.parent / "train_config.json").is_file()]
    assert models
    for model in models:
        missing = [f for f in model_files() if not (model / f).is_file()]
        assert not missing, f"{model} lacks {missing}, which the README says every model folder holds"
