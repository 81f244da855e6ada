"""Model folders in lerobot's layout, swapped into place so that a kill at any instant
leaves each one loadable, and the leftovers of killed runs removed at the next start."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sir import atomic
from sir.errors import UserError
from sir.policies.checkpoint import load_checkpoint, save_checkpoint
from sir.training import TrainConfig, train


def dead_pid() -> int:
    """The PID of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def run_config(root: Path, repo_id: str, checkpoint_dir: Path, **overrides) -> TrainConfig:
    return TrainConfig(**{
        "repo_ids": [repo_id], "root": str(root), "policy": "act", "preset": "tiny", "batch_size": 8,
        "training_steps": 4, "save_freq": 2, "eval_freq": 0, "eval_episodes": 1, "max_steps": 5,
        "eval_workers": 1, "checkpoint_dir": str(checkpoint_dir), "run_name": "run", **overrides,
    })


@pytest.fixture(scope="module")
def sir_run(lift_demos, tmp_path_factory):
    """(run folder, what train() printed, a dead PID) of a 4-step tiny ACT run started in a
    folder that held only what a killed run left."""
    root, repo_id = lift_demos
    run_dir = tmp_path_factory.mktemp("ck") / "run"
    run_dir.mkdir()
    gone = dead_pid()
    (run_dir / f".final_model.tmp-{gone}").mkdir()
    (run_dir / f".train_config.json.tmp-{gone}").write_text("{")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train(run_config(root, repo_id, run_dir.parent))
    return run_dir, out.getvalue(), gone


def first_observation(lift_demos) -> dict[str, torch.Tensor]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, repo_id = lift_demos
    frame = LeRobotDataset(repo_id, root=root / repo_id)[0]
    return {k: v.unsqueeze(0) for k, v in frame.items() if k.startswith("observation.")}


def act(policy, preprocessor, postprocessor, observation) -> torch.Tensor:
    policy.reset()
    with torch.no_grad():
        return postprocessor(policy.select_action(preprocessor(dict(observation))))


def test_leftovers_alone_do_not_make_a_run_and_are_removed_with_one_line(sir_run):
    run_dir, out, gone = sir_run
    assert (f"Removed 1 temporary folder and 1 temporary file left by a stopped run in {run_dir}: "
            f".final_model.tmp-{gone}, .train_config.json.tmp-{gone}") in out
    assert not (run_dir / f".final_model.tmp-{gone}").exists()
    assert (run_dir / "final_model" / "model.safetensors").is_file()


def test_model_folders_are_in_lerobots_layout_and_readable_by_all(sir_run):
    run_dir, _, _ = sir_run
    model_files = {"config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json",
                   "sir_env.json", "sir_checkpoint.json"}
    final = {p.name for p in (run_dir / "final_model").iterdir()}
    assert model_files <= final
    assert any(n.startswith("policy_preprocessor_step_") and n.endswith(".safetensors") for n in final)
    assert any(n.startswith("policy_postprocessor_step_") and n.endswith(".safetensors") for n in final)
    assert not {"preprocessor", "postprocessor"} & final
    assert (run_dir / "checkpoint_4" / "training_state" / "optimizer_state.safetensors").is_file()
    umask = os.umask(0)
    os.umask(umask)
    modes = {str(p.relative_to(run_dir)): p.stat().st_mode & 0o777
             for folder in ("final_model", "checkpoint_4") for p in (run_dir / folder).rglob("*") if p.is_file()}
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_lerobots_own_loaders_give_the_action_sirs_loader_gives(sir_run, lift_demos):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    folder = sir_run[0] / "final_model"
    cfg = PreTrainedConfig.from_pretrained(folder)
    cfg.device = "cpu"
    policy = get_policy_class(cfg.type).from_pretrained(folder, config=cfg)
    pre, post = make_pre_post_processors(cfg, pretrained_path=str(folder))
    observation = first_observation(lift_demos)
    theirs = act(policy, pre, post, observation)
    ours = act(*load_checkpoint(folder, device="cpu")[:3], observation)
    assert theirs.shape == (1, 7)
    assert torch.equal(theirs, ours)


def test_a_folder_in_sirs_earlier_layout_still_loads(sir_run, lift_demos, tmp_path):
    folder = tmp_path / "best_model"
    shutil.copytree(sir_run[0] / "final_model", folder)
    for pipeline in ("preprocessor", "postprocessor"):
        (folder / pipeline).mkdir()
        for path in folder.glob(f"policy_{pipeline}*"):
            path.rename(folder / pipeline / path.name)
    observation = first_observation(lift_demos)
    assert torch.equal(act(*load_checkpoint(folder, device="cpu")[:3], observation),
                       act(*load_checkpoint(sir_run[0] / "final_model", device="cpu")[:3], observation))


def test_a_folder_without_its_processors_is_refused_in_one_sentence(sir_run, tmp_path):
    folder = tmp_path / "final_model"
    shutil.copytree(sir_run[0] / "final_model", folder)
    (folder / "policy_preprocessor.json").unlink()
    with pytest.raises(UserError, match="holds no policy_preprocessor.json"):
        load_checkpoint(folder, device="cpu")


def test_without_an_atomic_exchange_the_two_renames_still_replace_the_folder(sir_run, tmp_path, monkeypatch):
    import sir.policies.checkpoint as checkpoint

    target = tmp_path / "best_model"
    shutil.copytree(sir_run[0] / "final_model", target)
    monkeypatch.setattr(checkpoint, "exchange", lambda a, b: False)
    policy, pre, post, spec, _ = load_checkpoint(target, device="cpu")
    save_checkpoint(target, policy, pre, post, spec, {"step": 99})
    assert load_checkpoint(target, device="cpu")[4] == {"step": 99}
    assert [p.name for p in tmp_path.iterdir()] == ["best_model"]


# A save over an existing model folder, killed (os._exit) at one point of the swap.
KILLED_SAVE = """
import os, shutil, sys
import sir.policies.checkpoint as checkpoint

source, target, point = sys.argv[1:]
policy, pre, post, spec, _ = checkpoint.load_checkpoint(source, device="cpu")
real_exchange, real_rmtree = checkpoint.exchange, shutil.rmtree
swapped = False

def exchange(a, b):
    global swapped
    swapped = real_exchange(a, b)
    if point == "after_exchange":
        os._exit(0)
    return swapped

def rmtree(path, *args, **kwargs):
    if swapped and point == "mid_cleanup":
        os.remove(os.path.join(path, "model.safetensors"))
        os._exit(0)
    return real_rmtree(path, *args, **kwargs)

checkpoint.exchange = exchange
checkpoint.shutil.rmtree = rmtree
if point == "before_swap":
    checkpoint.swap_into_place = lambda tmp, directory: os._exit(0)
checkpoint.save_checkpoint(target, policy, pre, post, spec, {"step": 99})
print("not killed")
"""


@pytest.mark.parametrize("point, step_after", [
    pytest.param("before_swap", 4, marks=pytest.mark.slow),
    ("after_exchange", 99),
    pytest.param("mid_cleanup", 99, marks=pytest.mark.slow),
])
def test_a_save_killed_at_the_swap_leaves_a_loadable_folder(sir_run, tmp_path, point, step_after):
    target = tmp_path / "best_model"
    shutil.copytree(sir_run[0] / "final_model", target)
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(sir_run[0] / "final_model"), str(target), point],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "not killed" not in done.stdout, done.stderr
    assert load_checkpoint(target, device="cpu")[4]["step"] == step_after
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "best_model"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".best_model.tmp-")
    assert atomic.remove_leftovers(tmp_path).startswith("Removed 1 temporary folder left by a stopped run")
    assert [p.name for p in tmp_path.iterdir()] == ["best_model"]


def test_leftovers_of_live_processes_and_other_hidden_files_are_kept(tmp_path):
    gone = dead_pid()
    kept = [f".x.tmp-{os.getpid()}", ".x.tmp-abc", ".cache", "x.tmp-1"]
    for name in kept + [f".x.old-{gone}"]:
        (tmp_path / name).mkdir()
    assert atomic.remove_leftovers(tmp_path) == (f"Removed 1 temporary folder left by a stopped run in {tmp_path}: "
                                                 f".x.old-{gone}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert atomic.remove_leftovers(tmp_path) is None


@pytest.mark.slow
def test_lerobot_train_fine_tunes_a_sir_model(sir_run, lift_demos, tmp_path):
    root, repo_id = lift_demos
    lerobot_train = Path(sys.executable).with_name("lerobot-train")
    done = subprocess.run(
        [str(lerobot_train), f"--policy.path={sir_run[0] / 'final_model'}", f"--dataset.repo_id={repo_id}",
         f"--dataset.root={root / repo_id}", "--steps=2", "--batch_size=4", "--num_workers=0", "--eval_freq=0",
         "--save_freq=2", "--policy.push_to_hub=false", "--wandb.enable=false", "--policy.device=cpu",
         f"--output_dir={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    saved = tmp_path / "out" / "checkpoints" / "000002" / "pretrained_model"
    assert json.loads((saved / "config.json").read_text())["type"] == "act"
    assert (saved / "model.safetensors").is_file()


MODEL_FOLDER_PREFIXES = ("best_model", "final_model", "checkpoint_")


def stale_leftovers(run_dir: Path, alive: int) -> list[str]:
    return [p.name for p in run_dir.iterdir()
            if (m := atomic.LEFTOVER.match(p.name)) and int(m["pid"]) != alive]


@pytest.mark.slow
def test_a_training_run_killed_at_20_random_instants_keeps_every_model_folder_loadable(lift_demos, tmp_path):
    """Each start resumes from the newest checkpoint (or restarts the run when it has none)
    and is killed with SIGKILL a random time after it has set up. A checkpoint every step
    puts many of those instants inside a save. Runs are forked from a server that has
    imported everything, so a start costs no imports."""
    import multiprocessing

    root, repo_id = lift_demos
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sir.training.trainer", "sir.data", "sir.eval.rollout", "sir.policies",
                                "lerobot.policies.factory", "lerobot.policies.act.modeling_act", "robosuite"])
    base = run_config(root, repo_id, tmp_path, training_steps=1000, save_freq=1, eval_freq=5)
    run_dir = tmp_path / "run"
    rng = random.Random(0)
    kills, loads, mid_save = 0, 0, 0
    checked = 0.0  # folders unchanged since a check (ctime) were loaded then
    while True:
        checkpoints = sorted(run_dir.glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[1]))
        config = (dataclasses.replace(base, resume=str(checkpoints[-1])) if checkpoints
                  else dataclasses.replace(base, overwrite=True))
        started = time.time()
        child = ctx.Process(target=train, args=(config,))
        child.start()
        # Set up once train_config.json is (re)written: after leftovers are removed.
        config_file = run_dir / "train_config.json"
        while not (config_file.is_file() and config_file.stat().st_mtime >= started):
            assert child.is_alive(), "the run ended before it set up"
            time.sleep(0.05)
        assert stale_leftovers(run_dir, child.pid) == []
        if kills == 20:  # the start after the 20th kill only had to clean up
            os.kill(child.pid, signal.SIGKILL)
            child.join()
            break
        time.sleep(rng.uniform(0, 3))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL, "the run failed before it was killed"
        kills += 1
        mid_save += bool(stale_leftovers(run_dir, -1))
        now = time.time()
        for folder in run_dir.iterdir():
            if folder.name.startswith(MODEL_FOLDER_PREFIXES) and folder.stat().st_ctime >= checked - 1:
                load_checkpoint(folder, device="cpu")
                loads += 1
        checked = now
    print(f"\n{kills} kills survived, {mid_save} of them inside a save; {loads} model folder loads after kills")


def test_a_new_recording_removes_the_datasets_killed_recordings_were_building(tmp_path, capsys):
    from sir.data.record.synthetic import make_synthetic_dataset

    gone = dead_pid()
    (tmp_path / f".demos.tmp-{gone}" / "data").mkdir(parents=True)
    make_synthetic_dataset(tmp_path, "more_demos", [5], seed=0)
    assert (f"Removed 1 temporary folder left by a stopped run in {tmp_path}: .demos.tmp-{gone}"
            in capsys.readouterr().out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["more_demos"]
