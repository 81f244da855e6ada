"""Every bad input to the five commands ends with exit code 2 and one line ``error: <sentence>``,
never a traceback, and leaves every file on disk as it was (issue 12, part 1).

One table: (command, argv, words the sentence must hold). The commands run in this process
(``main(argv)``) against one set of fixtures built once: a tiny synthetic dataset, a tiny ACT
trained on it for two steps, and damaged copies of both (a truncated parquet file, a dataset
without ``meta/episodes/``, one whose ``info.json`` gives fps 0, a truncated ``model.safetensors``,
a broken ``sir_env.json``, a model without its processors, a corrupt ``training_state``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sir.dagger.record import main as record
from sir.data.collect import main as collect
from sir.data.verify import main as verify
from sir.eval.evaluate import main as evaluate
from sir.training.train_policy import main as train

COMMANDS = {"collect": collect, "train": train, "evaluate": evaluate, "verify": verify, "record": record}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    """The folder every case runs in, and the placeholders its argv templates use."""
    from sir.data.record.synthetic import make_synthetic_dataset

    base = tmp_path_factory.mktemp("bad_input")
    data, ckpts = base / "data", base / "ckpts"
    make_synthetic_dataset(data, "demos", [12, 10], seed=0)
    run = train(["--repo-ids", "demos", "--root", str(data), "--preset", "tiny", "--training-steps", "2",
                 "--save-freq", "2", "--batch-size", "4", "--no-eval", "--checkpoint-dir", str(ckpts),
                 "--run-name", "run"])
    model = run / "final_model"

    damaged = base / "damaged"
    damaged.mkdir()
    _truncate(next((_copy(data / "demos", data / "truncated_parquet") / "data").rglob("*.parquet")))
    shutil.rmtree(_copy(data / "demos", data / "no_episodes_meta") / "meta" / "episodes")
    (_copy(data / "demos", data / "bad_info") / "meta" / "info.json").write_text("{not json")
    info = json.loads((data / "demos" / "meta" / "info.json").read_text())
    (_copy(data / "demos", data / "fps_zero") / "meta" / "info.json").write_text(json.dumps({**info, "fps": 0}))
    _truncate(_copy(model, damaged / "truncated_weights") / "model.safetensors")
    (_copy(model, damaged / "bad_env_json") / "sir_env.json").write_text("{not json")
    (_copy(model, damaged / "env_json_list") / "sir_env.json").write_text("[1, 2]\n")
    (_copy(model, damaged / "env_json_unknown_key") / "sir_env.json").write_text('{"env_name": "Lift", "x": 1}\n')
    (_copy(model, damaged / "bad_config") / "config.json").write_text("{not json")
    for path in (_copy(model, damaged / "no_processors")).glob("policy_*processor*"):
        path.unlink()
    # Resume from a checkpoint whose training_state is damaged: a whole run folder each.
    (_copy(run, ckpts / "bad_state_json") / "checkpoint_2" / "training_state" / "training_step.json").write_text("{")
    _truncate(_copy(run, ckpts / "bad_optimizer") / "checkpoint_2" / "training_state" / "optimizer_state.safetensors")
    (base / "afile").write_text("a file where a folder is expected\n")
    return {"base": str(base), "data": str(data), "ckpts": str(ckpts), "run": str(run), "model": str(model),
            "ckpt": str(run / "checkpoint_2"), "damaged": str(damaged), "afile": str(base / "afile")}


def fingerprint(base: Path) -> set[tuple]:
    """Every folder by name, every file by name, size and modification time."""
    seen = set()
    for path in base.rglob("*"):
        rel = str(path.relative_to(base))
        if path.is_dir():
            seen.add((rel, "dir"))
        else:
            st = path.stat()
            seen.add((rel, st.st_size, st.st_mtime_ns))
    return seen


C = ["--env", "Lift", "--episodes", "1", "--max-steps", "5", "--root", "{data}", "--repo-id", "new_demos"]
T = ["--repo-ids", "demos", "--root", "{data}", "--preset", "tiny", "--training-steps", "2", "--batch-size", "4",
     "--no-eval", "--checkpoint-dir", "{base}/new_ckpts"]
E = ["--checkpoint", "{model}", "--episodes", "1", "--max-steps", "5", "--workers", "1", "--device", "cpu"]
V = ["--repo-ids", "demos", "--root", "{data}", "--num-samples", "10"]
R = ["--checkpoint", "{model}", "--episodes", "1", "--max-steps", "5", "--root", "{data}", "--repo-id", "corrections",
     "--device", "cpu"]


def replace(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


CASES = [
    # -- sir.data.collect ---------------------------------------------------------------------
    ("collect", [*C, "--episodes", "0"], ["--episodes"]),
    ("collect", replace(C, "--max-steps", "0"), ["--max-steps"]),
    ("collect", replace(C, "--max-steps", "-5"), ["--max-steps"]),
    ("collect", [*C, "--noise", "-0.1"], ["--noise"]),
    ("collect", [*C, "--noise", "nan"], ["--noise", "finite"]),
    ("collect", [*C, "--target-jitter", "-1"], ["--target-jitter"]),
    ("collect", [*C, "--image-size", "0"], ["--image-size"]),
    ("collect", [*C, "--image-size", "-1", "--cameras", "agentview"], ["--image-size"]),
    ("collect", [*C, "--cameras", "nosuchcam"], ["nosuchcam", "camera"]),
    ("collect", [*C, "--cameras", "agentview,nosuchcam"], ["nosuchcam"]),
    ("collect", replace(C, "--env", "NoSuchEnv"), ["nosuchenv"]),
    ("collect", [*C, "--robot", "NoSuchRobot"], ["nosuchrobot"]),
    ("collect", [*C, "--state-keys", "no_such_key"], ["no_such_key"]),
    ("collect", replace(C, "--root", "{afile}"), ["--root", "not a folder"]),
    ("collect", replace(C, "--repo-id", "../escaped"), ["--repo-id", "../escaped"]),
    ("collect", replace(C, "--repo-id", "{base}/abs_escaped"), ["--repo-id", "abs_escaped"]),
    ("collect", replace(C, "--repo-id", "a/../../escaped"), ["--repo-id"]),
    ("collect", replace(C, "--repo-id", ""), ["--repo-id"]),
    ("collect", replace(C, "--repo-id", "."), ["--repo-id"]),
    ("collect", replace(C, "--repo-id", "demos"), ["already exists"]),
    # -- sir.training.train_policy ------------------------------------------------------------
    ("train", [*T, "--lr", "0"], ["--lr"]),
    ("train", [*T, "--lr=-1e-4"], ["--lr"]),
    ("train", [*T, "--lr", "nan"], ["--lr", "finite"]),
    ("train", [*T, "--num-workers", "-1"], ["--num-workers"]),
    ("train", [*T, "--image-transforms", "affine,blur"], ["--image-transforms", "blur"]),
    ("train", replace(T, "--batch-size", "0"), ["--batch-size"]),
    ("train", replace(T, "--training-steps", "0"), ["--training-steps"]),
    ("train", [*T, "--grad-accum-steps", "0"], ["--grad-accum-steps"]),
    ("train", [*T, "--eval-freq", "-1"], ["--eval-freq"]),
    ("train", [*T, "--max-steps", "0"], ["--max-steps"]),
    ("train", [*T, "--save-freq", "0"], ["--save-freq"]),
    ("train", [*T, "--lora-dropout", "-0.5"], ["--lora-dropout"]),
    ("train", [*T, "--frame-cache-gb", "-1"], ["--frame-cache-gb"]),
    ("train", [*T, "--steps-per-stage", "3"], ["--sequential"]),
    ("train", [*T, "--device", "tpu"], ["--device"]),
    ("train", [*T, "--policy-args", "no_such_setting=1"], ["no_such_setting"]),
    ("train", [*T, "--policy-args", "dim_model=abc"], ["dim_model=abc", "integer"]),
    ("train", [*T, "--policy-args", "n_action_steps=[1,2]"], ["n_action_steps=[1, 2]", "integer"]),
    ("train", replace(T, "--repo-ids", "missing"), ["missing", "not found"]),
    ("train", replace(T, "--repo-ids", "demos,demos"), ["twice"]),
    ("train", replace(T, "--repo-ids", "../escaped"), ["--repo-ids", "../escaped"]),
    ("train", replace(T, "--repo-ids", "{base}/data/demos"), ["--repo-ids"]),
    ("train", replace(T, "--root", "{afile}"), ["--root", "not a folder"]),
    ("train", replace(T, "--checkpoint-dir", "{afile}"), ["--checkpoint-dir", "not a folder"]),
    ("train", replace(T, "--repo-ids", "truncated_parquet"), ["parquet", "truncated_parquet"]),
    ("train", replace(T, "--repo-ids", "no_episodes_meta"), ["meta/episodes", "no_episodes_meta"]),
    ("train", replace(T, "--repo-ids", "bad_info"), ["info.json"]),
    ("train", replace(T, "--repo-ids", "fps_zero"), ["fps_zero", "info.json", "fps 0", "set \"fps\""]),
    ("train", [*T, "--env", "Square"], ["--env", "lift"]),
    ("train", [*T, "--robot", "Sawyer"], ["--robot", "panda"]),
    ("train", [*T, "--state-keys", "robot0_eef_pos"], ["--state-keys", "robot0_eef_quat"]),
    ("train", [*T, "--env-state-keys", "cube_pos"], ["--env-state-keys", "object-state"]),
    ("train", [*T, "--dataset-weights", "1,2"], ["--dataset-weights"]),
    ("train", [*T, "--episodes", "demos=0:99"], ["demos"]),
    ("train", [*T, "--config", "{base}/no_such.yaml"], ["--config"]),
    ("train", [*T, "--policy-path", "{data}"], ["--policy-path", "config.json"]),
    ("train", [*T, "--policy-path", "{damaged}/truncated_weights"], ["model.safetensors", "truncated_weights"]),
    ("train", [*T, "--policy-path", "{damaged}/bad_config"], ["config.json", "bad_config"]),
    ("train", ["--resume", "{base}/no_such/checkpoint_2"], ["--resume"]),
    ("train", ["--resume", "{run}/final_model"], ["training_state"]),
    ("train", ["--resume", "{ckpts}/bad_state_json/checkpoint_2"], ["training_state", "bad_state_json"]),
    ("train", ["--resume", "{ckpts}/bad_optimizer/checkpoint_2"], ["training_state", "bad_optimizer"]),
    # -- sir.eval.evaluate --------------------------------------------------------------------
    ("evaluate", [*E, "--episodes", "0"], ["--episodes"]),
    ("evaluate", replace(E, "--max-steps", "0"), ["--max-steps"]),
    ("evaluate", replace(E, "--max-steps", "-3"), ["--max-steps"]),
    ("evaluate", replace(E, "--workers", "0"), ["--workers"]),
    ("evaluate", [*E, "--render-size", "0"], ["--render-size"]),
    ("evaluate", [*E, "--save-video", "--video-episodes", "0"], ["--video-episodes"]),
    ("evaluate", [*E, "--save-video", "--render-camera", "nosuchcam"], ["nosuchcam", "--render-camera"]),
    ("evaluate", replace(E, "--checkpoint", "{base}/no_such_model"), ["no_such_model"]),
    ("evaluate", replace(E, "--checkpoint", "{afile}"), ["afile"]),
    ("evaluate", replace(E, "--checkpoint", "{damaged}/truncated_weights"), ["model.safetensors", "truncated_weights"]),
    ("evaluate", replace(E, "--checkpoint", "{damaged}/bad_env_json"), ["sir_env.json", "bad_env_json"]),
    ("evaluate", replace(E, "--checkpoint", "{damaged}/env_json_list"), ["sir_env.json", "env_json_list"]),
    ("evaluate", replace(E, "--checkpoint", "{damaged}/env_json_unknown_key"), ["sir_env.json"]),
    ("evaluate", replace(E, "--checkpoint", "{damaged}/bad_config"), ["config.json", "bad_config"]),
    ("evaluate", replace(E, "--checkpoint", "{damaged}/no_processors"), ["policy_preprocessor.json"]),
    ("evaluate", [*E, "--env", "Square"], ["--env", "lift"]),
    ("evaluate", [*E, "--robot", "Sawyer"], ["--robot", "panda"]),
    ("evaluate", [*E, "--cameras", "agentview"], ["--cameras"]),
    ("evaluate", [*E, "--image-size", "0"], ["--image-size"]),
    ("evaluate", replace(E, "--device", "tpu"), ["--device"]),
    # -- sir.data.verify ----------------------------------------------------------------------
    ("verify", [*V, "--batch-size", "0"], ["--batch-size"]),
    ("verify", [*V, "--batch-size", "-2"], ["--batch-size"]),
    ("verify", replace(V, "--num-samples", "0"), ["--num-samples"]),
    ("verify", replace(V, "--repo-ids", "missing"), ["missing", "not found"]),
    ("verify", replace(V, "--repo-ids", ","), ["--repo-ids"]),
    ("verify", replace(V, "--repo-ids", "../escaped"), ["--repo-ids", "../escaped"]),
    ("verify", replace(V, "--repo-ids", "{base}/data/demos"), ["--repo-ids"]),
    ("verify", replace(V, "--root", "{afile}"), ["--root", "not a folder"]),
    ("verify", replace(V, "--repo-ids", "truncated_parquet"), ["parquet", "truncated_parquet"]),
    ("verify", replace(V, "--repo-ids", "no_episodes_meta"), ["meta/episodes", "no_episodes_meta"]),
    ("verify", replace(V, "--repo-ids", "bad_info"), ["info.json"]),
    ("verify", replace(V, "--repo-ids", "fps_zero"), ["fps_zero", "fps 0"]),
    ("verify", [*V, "--dataset-weights", "1,2"], ["--dataset-weights"]),
    ("verify", [*V, "--dataset-weights", "-1"], ["--dataset-weights"]),
    ("verify", [*V, "--episodes", "demos=5:2"], ["demos"]),
    ("verify", [*V, "--episodes", "nosuch=0:1"], ["nosuch"]),
    # -- sir.dagger.record --------------------------------------------------------------------
    ("record", [*R, "--episodes", "0"], ["--episodes"]),
    ("record", replace(R, "--max-steps", "0"), ["--max-steps"]),
    ("record", [*R, "--patience", "-1"], ["--patience"]),
    ("record", [*R, "--oracle-deviation-steps", "0"], ["--oracle-deviation-steps"]),
    ("record", [*R, "--oracle-deviation", "-1"], ["--oracle-deviation"]),
    ("record", [*R, "--away-steps", "-1"], ["--away-steps"]),
    ("record", [*R, "--noise", "-0.1"], ["--noise"]),
    ("record", replace(R, "--checkpoint", "{base}/no_such_model"), ["no_such_model"]),
    ("record", replace(R, "--checkpoint", "{damaged}/truncated_weights"), ["model.safetensors", "truncated_weights"]),
    ("record", replace(R, "--checkpoint", "{damaged}/bad_env_json"), ["sir_env.json", "bad_env_json"]),
    ("record", replace(R, "--checkpoint", "{damaged}/no_processors"), ["policy_preprocessor.json"]),
    ("record", replace(R, "--root", "{afile}"), ["--root", "not a folder"]),
    ("record", replace(R, "--repo-id", "../escaped"), ["--repo-id", "../escaped"]),
    ("record", replace(R, "--repo-id", "{base}/abs_escaped"), ["--repo-id"]),
    ("record", replace(R, "--repo-id", "demos"), ["already exists"]),
    ("record", replace(R, "--device", "tpu"), ["--device"]),
]


BASES = {"collect": C, "train": T, "evaluate": E, "verify": V, "record": R}


def _id(case) -> str:
    """The command and what its argv changes in the command's base argv."""
    command, argv, _ = case
    base = BASES[command]
    changed = [a for i, a in enumerate(argv) if i >= len(base) or a != base[i]]
    if changed and len(argv) == len(base):
        changed = [base[argv.index(changed[0]) - 1], *changed]
    return f"{command}:{' '.join(changed or argv)}".replace("{", "").replace("}", "")


def test_the_table_covers_every_command_with_sixty_cases():
    assert len(CASES) >= 60
    assert {c for c, _, _ in CASES} == set(COMMANDS)


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_ends_in_one_sentence_exit_2_and_touches_nothing(case, world, capsys, monkeypatch):
    command, template, words = case
    argv = [a.format(**world) for a in template]
    base = Path(world["base"])
    monkeypatch.chdir(base)  # default folders (data, checkpoints) land where the fingerprint looks
    before = fingerprint(base)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        COMMANDS[command](argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} not in: {lines[0]}"
    assert fingerprint(base) == before, "the refused command changed files on disk"
