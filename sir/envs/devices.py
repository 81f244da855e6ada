"""robosuite's input devices for teleoperation: availability checks, the on-screen window, and
the mapping from a device's command to an env action.

The mapping is robosuite's own teleoperation loop (``scripts/collect_human_demonstrations.py``):
``device.input2action()`` gives an action dict, each arm's entry is the ``<arm>_delta`` or
``<arm>_abs`` command as its controller takes it, and ``robot.create_action_vector`` makes the
env action; robots the operator is not driving hold their grippers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
from typing import Any

import numpy as np

from sir.envs.spec import EnvSpec
from sir.errors import UserError

DEVICES = ("keyboard", "spacemouse", "mjgui")
# robosuite's default for its own demonstration script; a fixed camera keeps the operator's
# left/right stable across episodes.
WINDOW_CAMERA = "agentview"


def window_spec(spec: EnvSpec) -> EnvSpec:
    """``spec`` with robosuite's on-screen MuJoCo viewer: the operator's window. Only the env is
    built from it; datasets keep ``spec`` itself."""
    window = {"has_renderer": True, "renderer": "mjviewer", "render_camera": WINDOW_CAMERA}
    return dataclasses.replace(spec, env_kwargs={**spec.env_kwargs, **window})


def open_window(env: Any) -> None:
    """Show the scene now, as robosuite's ``step`` would at the episode's first step (its reset
    closes the MuJoCo viewer), so that the operator is asked to drive only once the window is
    up: opening it can take seconds."""
    if env.has_renderer and env.renderer == "mjviewer" and env.viewer is not None:
        env.viewer.update()


def _x_display() -> Any | None:
    """The X display teleoperation will use (None off Linux, where no X server is involved)."""
    if not sys.platform.startswith("linux"):
        return None
    name = os.environ.get("DISPLAY")
    if not name:
        raise UserError(
            "Teleoperation needs a screen for its window and keyboard, but DISPLAY is not set; run it in a "
            "desktop session, set DISPLAY (e.g. DISPLAY=:0), or start a virtual screen with "
            "xvfb-run -s '+extension RECORD' python -m ..."
        )
    from Xlib.display import Display
    from Xlib.error import DisplayError

    try:
        return Display(name)
    except DisplayError as err:
        raise UserError(
            f"Teleoperation cannot open the X display DISPLAY={name} ({err}); check that its X server runs "
            "and allows this user, or set DISPLAY to one that does."
        ) from err


def check_screen(device: str, spec: EnvSpec) -> None:
    """Refuse, in one sentence, what would stop ``device`` from driving ``spec``'s env: no
    display, no X RECORD extension for the key listener, no SpaceMouse, or a controller MJGUI
    cannot command. Cheap: runs before any env is built."""
    if device not in DEVICES:
        raise UserError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    display = _x_display()
    # pynput, which reads robosuite's keyboard and sir's operator keys, listens through RECORD.
    if display is not None and not display.has_extension("RECORD"):
        name = os.environ.get("DISPLAY")
        raise UserError(
            f"The keyboard listener (pynput) cannot start: the X server of DISPLAY={name} lacks the RECORD "
            "extension; enable it (Xvfb and xvfb-run: +extension RECORD) or use a desktop X session."
        )
    if display is not None:
        display.close()
    if device == "spacemouse":
        _check_spacemouse()
    if device == "mjgui":
        _check_mjgui_controller(spec)


def _check_spacemouse() -> None:
    try:
        import hid
    except ImportError as err:
        raise UserError(
            "--device spacemouse reads a 3Dconnexion SpaceMouse through the hidapi package, which is not "
            "installed; pip install hidapi (and plug the SpaceMouse in), or use --device keyboard."
        ) from err
    import robosuite.macros as macros

    found = [d for d in hid.enumerate() if (d["vendor_id"], d["product_id"]) ==
             (macros.SPACEMOUSE_VENDOR_ID, macros.SPACEMOUSE_PRODUCT_ID)]
    if not found:
        raise UserError(
            f"No 3Dconnexion SpaceMouse (USB {macros.SPACEMOUSE_VENDOR_ID:04x}:{macros.SPACEMOUSE_PRODUCT_ID:04x}) "
            "is visible to hidapi; plug it in and give this user access to its hidraw device, set robosuite's "
            "SPACEMOUSE_VENDOR_ID/PRODUCT_ID macros for another model, or use --device keyboard."
        )


def _check_mjgui_controller(spec: EnvSpec) -> None:
    """robosuite's MJGUI sends the absolute world-frame pose of the target the operator drags
    in the viewer; a controller that takes deltas would read it as a huge step."""
    from robosuite.controllers import load_composite_controller_config

    config = load_composite_controller_config(controller=spec.controller, robot=spec.robots[0])
    if str(config.get("type", "")).startswith("WHOLE_BODY"):
        ik = config.get("composite_controller_specific_configs", {})
        absolute = ik.get("ik_input_type", "absolute") == "absolute"
    else:
        arms = [part for name, part in config.get("body_parts", {}).items() if name in ("right", "left")]
        absolute = bool(arms) and all(
            part.get("input_type") == "absolute" and part.get("input_ref_frame") == "world" for part in arms)
    if not absolute:
        raise UserError(
            f"--device mjgui needs a controller that takes absolute world-frame poses (robosuite's MJGUI sends the "
            f"pose of the target dragged in the viewer), but the {spec.env_name} EnvSpec's {spec.controller} "
            "controller takes delta commands; use --device keyboard or spacemouse."
        )


def _hearing(device_class: type, keys: OperatorKeys) -> type:
    """``device_class`` whose own key listener also feeds ``keys``: one pynput listener per
    process, as a second one started beside robosuite's can leave either deaf."""

    class Device(device_class):
        def on_release(self, key: Any) -> None:
            keys.heard(key)
            super().on_release(key)

    Device.__name__ = device_class.__name__
    return Device


class Teleoperator:
    """A robosuite input device bound to an env, giving env actions as robosuite's
    teleoperation loop makes them, and hearing sir's own ``keys`` (name -> key) beside the
    device's."""

    def __init__(self, name: str, env: Any, keys: dict[str, str], pos_sensitivity: float = 1.0,
                 rot_sensitivity: float = 1.0):
        self.name, self.env = name, env
        self.keys = OperatorKeys(keys)
        # robosuite.devices tries to import its SpaceMouse driver and prints a paragraph about
        # the hid module when it is missing: noise for a keyboard user (check_screen has
        # already refused a SpaceMouse without hidapi).
        with contextlib.redirect_stdout(io.StringIO()):
            import robosuite.devices  # noqa: F401
        sensitivity = {"pos_sensitivity": pos_sensitivity, "rot_sensitivity": rot_sensitivity}
        if name == "keyboard":
            from robosuite.devices import Keyboard

            self.device = _hearing(Keyboard, self.keys)(env=env, **sensitivity)
        elif name == "spacemouse":
            from robosuite.devices.spacemouse import SpaceMouse

            try:
                self.device = _hearing(SpaceMouse, self.keys)(env=env, **sensitivity)
            except OSError as err:
                raise UserError(f"The SpaceMouse could not be opened through hidapi ({err}); close other programs "
                                "using it (3DconnexionHelper) or use --device keyboard.") from err
        else:
            from robosuite.devices.mjgui import MJGUI

            self.device = MJGUI(env=env)
            self.keys.listen()  # MJGUI reads the mouse only: no listener of its own to share
        listener = getattr(self.device, "listener", None)
        if listener is not None:
            listener.wait()  # keys typed before it is up would be lost
        self.held_grippers = self._open_grippers()

    def _open_grippers(self) -> list[dict[str, np.ndarray]]:
        return [{f"{arm}_gripper": np.zeros(robot.gripper[arm].dof) for arm in robot.arms if robot.gripper[arm].dof > 0}
                for robot in self.env.robots]

    def start(self) -> None:
        """Take commands from now on, relative to the robot's current pose (robosuite's
        ``start_control``; it also clears a reset the operator asked for)."""
        self.device.start_control()

    def action(self) -> np.ndarray | None:
        """The env action the operator commands now, or None when they pressed the device's reset."""
        from robosuite.controllers.composite.composite_controller import WholeBody

        device, robots = self.device, self.env.robots
        commands = device.input2action()
        if commands is None:
            return None
        active = robots[device.active_robot]
        action_dict = dict(commands)
        for arm in active.arms:
            if isinstance(active.composite_controller, WholeBody):
                input_type = active.composite_controller.joint_action_policy.input_type
            else:
                input_type = active.part_controllers[arm].input_type
            action_dict[arm] = commands[f"{arm}_delta" if input_type == "delta" else f"{arm}_abs"]
        vectors = [robot.create_action_vector(held) for robot, held in zip(robots, self.held_grippers, strict=True)]
        vectors[device.active_robot] = active.create_action_vector(action_dict)
        for key in self.held_grippers[device.active_robot]:
            self.held_grippers[device.active_robot][key] = action_dict[key]
        return np.concatenate(vectors).astype(np.float32)

    def hold_grippers_of(self, action: np.ndarray) -> None:
        """Keep the grippers as ``action`` (someone else's last command) has them, so that taking
        over does not drop what the robot holds."""
        offset = 0
        for i, robot in enumerate(self.env.robots):
            for arm_index, arm in enumerate(robot.arms):
                key = f"{arm}_gripper"
                if key not in self.held_grippers[i]:
                    continue
                start, end = robot._action_split_indexes[key]
                command = np.asarray(action[offset + start:offset + end], dtype=np.float64)
                self.held_grippers[i][key] = command
                # The keyboard toggles each gripper between open (-1) and closed (+1).
                self.device.grasp_states[i][arm_index] = bool(command.mean() > 0)
            offset += robot.action_dim

    def close(self) -> None:
        listener = getattr(self.device, "listener", None)
        if listener is not None:
            listener.stop()
        self.keys.close()


class OperatorKeys:
    """sir's own keys beside the device's, heard through pynput wherever the focus is: each
    release of a watched key is counted until ``take`` consumes it."""

    def __init__(self, keys: dict[str, str]):
        from pynput.keyboard import Key

        # name -> pynput key: a special key (Key.enter) or a character
        self._keys = {name: getattr(Key, key, key) for name, key in keys.items()}
        self._pending = {name: 0 for name in keys}
        self._listener: Any = None

    @property
    def names(self) -> list[str]:
        return list(self._keys)

    def listen(self) -> None:
        """Hear the keys with a listener of our own (when no device listener feeds ``heard``)."""
        from pynput.keyboard import Listener

        self._listener = Listener(on_release=self.heard)
        self._listener.start()
        self._listener.wait()

    def heard(self, key: Any) -> None:
        char = getattr(key, "char", None)
        for name, watched in self._keys.items():
            if key == watched or (char is not None and char == watched):
                self._pending[name] += 1

    def take(self, name: str) -> bool:
        """Whether ``name``'s key was pressed since the last ``take`` of it (one press, one True)."""
        if self._pending[name]:
            self._pending[name] -= 1
            return True
        return False

    def clear(self) -> None:
        for name in self._pending:
            self._pending[name] = 0

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
