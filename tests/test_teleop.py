"""Teleoperation as a person does it: the commands run in a subprocess on a virtual X server
(Xvfb) with robosuite's MuJoCo window open, and xdotool types real X key events, which
robosuite's own Keyboard device hears through pynput."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sir.data.collect import main as collect

needs_x = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                             reason="needs Xvfb and xdotool (make install installs them with apt-get)")


def start_xvfb(*options: str) -> tuple[subprocess.Popen, str]:
    """An Xvfb on a free display number (it picks one and reports it through -displayfd)."""
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp",
                               *options], pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    return server, f":{number}"


@pytest.fixture(scope="module")
def display():
    # A short autorepeat delay, so that a key held for a second sends a dozen presses.
    server, name = start_xvfb("+extension", "RECORD", "-ardelay", "150", "-arinterval", "40")
    yield name
    server.terminate()
    server.wait()


class Operator:
    """A sir command run as a person runs it, and the keys they type while watching its console."""

    def __init__(self, display: str, args: list[str], log: Path):
        env = {**os.environ, "DISPLAY": display}
        self.display = display
        self.stderr = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", *args], env=env, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.log = log
        self.watchdog = threading.Timer(150, self.proc.kill)
        self.watchdog.start()
        self.console: list[str] = []

    def wait_for(self, text: str) -> None:
        """Read the console until a line holds ``text`` (the operator's cue)."""
        for line in self.proc.stdout:
            self.console.append(line)
            if text in line:
                return
        pytest.fail(f"the command ended before printing {text!r}:\n{''.join(self.console)}\n"
                    f"{self.log.read_text()[-3000:]}")

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": self.display}, check=True)

    def hold(self, key: str, seconds: float) -> None:
        self.xdotool("keydown", key)
        time.sleep(seconds)
        self.xdotool("keyup", key)

    def finish(self) -> str:
        self.console += self.proc.stdout.readlines()
        code = self.proc.wait()
        self.watchdog.cancel()
        self.stderr.close()
        console = "".join(self.console)
        assert code == 0, f"exit {code}:\n{console}\n{self.log.read_text()[-3000:]}"
        return console


def read_dataset(root: Path, repo_id: str):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root / repo_id)


def column(dataset, name: str) -> np.ndarray:
    return np.stack([np.asarray(v) for v in dataset.hf_dataset[name]])


@pytest.fixture(scope="module")
def human_demo(display, tmp_path_factory):
    """A person records Lift with the keyboard: discards a first try with q, then holds Down
    and then Right."""
    root = tmp_path_factory.mktemp("teleop")
    person = Operator(display, ["sir.data.collect", "--env", "Lift", "--device", "keyboard", "--episodes", "1",
                                "--max-steps", "60", "--keep-failures", "--root", str(root), "--repo-id", "lift_human"],
                      root / "collect.log")
    person.wait_for("Episode 1:")
    person.xdotool("key", "q")
    person.wait_for("Episode 2:")
    person.hold("Down", 1.0)
    person.hold("Right", 1.0)
    return root, "lift_human", person.finish()


@needs_x
def test_keyboard_demonstration_moves_the_arm_plus_x_then_plus_y(human_demo):
    root, repo_id, console = human_demo
    assert "kept 1, discarded 1" in console
    assert "up-right-down-left" in console and "discard the episode" in console  # the keys are listed
    dataset = read_dataset(root, repo_id)
    assert dataset.num_episodes == 1
    action, state = column(dataset, "action"), column(dataset, "observation.state")
    only_x = np.flatnonzero((action[:, 0] > 0.5) & (np.abs(action[:, 1]) < 0.5))
    only_y = np.flatnonzero((action[:, 1] > 0.5) & (np.abs(action[:, 0]) < 0.5))
    assert len(only_x) and len(only_y) and only_x.max() < only_y.min(), action[:, :2]
    eef = state[:, :3]  # robot0_eef_pos leads the default state layout
    turn = only_y.min()
    moved_x, moved_y = eef[turn] - eef[0], eef[-1] - eef[turn]
    assert moved_x[0] > 0.02 and moved_x[0] > 3 * abs(moved_x[1]), moved_x
    assert moved_y[1] > 0.02, moved_y


@pytest.fixture(scope="module")
def tiny_policy(human_demo, tmp_path_factory):
    from sir.training import TrainConfig, train

    root, repo_id, _ = human_demo
    run = train(TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=4,
                            training_steps=2, no_eval=True, device="cpu",
                            checkpoint_dir=str(tmp_path_factory.mktemp("ck"))))
    return run.final_model


@needs_x
def test_keyboard_takeover_and_handback_label_policy_then_human_then_policy(display, tiny_policy, tmp_path):
    person = Operator(display, ["sir.dagger.record", "--checkpoint", str(tiny_policy), "--corrector", "keyboard",
                                "--episodes", "1", "--max-steps", "60", "--root", str(tmp_path), "--repo-id", "dagger",
                                "--device", "cpu"], tmp_path / "record.log")
    person.wait_for("Episode 1:")
    time.sleep(0.5)
    person.xdotool("key", "Return")
    person.hold("Down", 0.6)
    person.xdotool("key", "Return")
    person.finish()
    source = column(read_dataset(tmp_path, "dagger"), "source").ravel()
    runs = [int(s) for i, s in enumerate(source) if i == 0 or s != source[i - 1]]
    assert runs == [0, 1, 0], source
    # The log holds what the operator did: one takeover, as long as the run of 1s, handed
    # back with the key, in a phase the task's expert reads from the state.
    import json

    from sir.experts.grasping import PHASES

    [line] = (tmp_path / "dagger" / "meta" / "sir_corrections.jsonl").read_text().splitlines()
    [correction] = json.loads(line)["corrections"]
    assert correction["step"] == int(np.argmax(source == 1)) and correction["steps"] == int(source.sum())
    assert (correction["reason"], correction["hand_back"]) == ("operator", "operator")
    assert correction["phase"] in PHASES


def test_without_a_display_the_commands_say_to_set_display(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(SystemExit) as exit_:
        collect(["--device", "keyboard", "--root", str(tmp_path), "--repo-id", "x"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "DISPLAY" in error and "xvfb-run" in error
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def display_without_record():
    server, name = start_xvfb("-extension", "RECORD")
    yield name
    server.terminate()
    server.wait()


@needs_x
def test_without_the_record_extension_the_keyboard_listener_is_refused(display_without_record, monkeypatch,
                                                                       tmp_path, capsys):
    monkeypatch.setenv("DISPLAY", display_without_record)
    with pytest.raises(SystemExit) as exit_:
        collect(["--device", "keyboard", "--root", str(tmp_path), "--repo-id", "x"])
    assert exit_.value.code == 2
    assert "RECORD" in capsys.readouterr().err


@needs_x
def test_spacemouse_refusal_names_the_device_and_hidapi(display, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DISPLAY", display)
    with pytest.raises(SystemExit) as exit_:
        collect(["--device", "spacemouse", "--root", str(tmp_path), "--repo-id", "x"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "SpaceMouse" in error and "hidapi" in error


@needs_x
def test_mjgui_is_refused_for_a_controller_that_takes_deltas(display, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DISPLAY", display)
    with pytest.raises(SystemExit) as exit_:
        collect(["--env", "Lift", "--device", "mjgui", "--root", str(tmp_path), "--repo-id", "x"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "mjgui" in error and "absolute" in error
