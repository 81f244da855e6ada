"""EnvSpec: what Robosuite env to build and how its observations become LeRobot features.

An EnvSpec travels with every dataset sir records (``meta/sir_env.json``) and with every
checkpoint (``sir_env.json``), so evaluation rebuilds exactly the env and observation
layout the policy was trained on.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sir import atomic
from sir.errors import UserError

SPEC_FILENAME = "sir_env.json"

STATE_FEATURE = "observation.state"
ENV_STATE_FEATURE = "observation.environment_state"
IMAGE_FEATURE_PREFIX = "observation.images."

# Robot proprioception used when a dataset carries no spec: end-effector pose and gripper.
DEFAULT_STATE_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
# robosuite concatenates each task's object observables into "object-state".
DEFAULT_ENV_STATE_KEYS = ("object-state",)

# Language instructions for the tasks sir has experts for; others get the env's name.
TASK_DESCRIPTIONS = {
    "Lift": "lift the cube",
    "PickPlaceCan": "pick up the can and place it in its bin",
    "NutAssemblySquare": "put the square nut on the square peg",
    "Stack": "stack the red cube on the green cube",
}


@dataclass
class EnvSpec:
    """A Robosuite env and the mapping from its observation keys to LeRobot features.

    ``state_keys`` are concatenated, in order, into ``observation.state``;
    ``env_state_keys`` into ``observation.environment_state`` (left out when empty);
    each camera in ``cameras`` feeds ``observation.images.<camera>`` at ``image_size``.
    """

    env_name: str = "Lift"
    robots: list[str] = field(default_factory=lambda: ["Panda"])
    controller: str = "BASIC"
    control_freq: int = 20
    horizon: int = 400
    state_keys: list[str] = field(default_factory=lambda: list(DEFAULT_STATE_KEYS))
    env_state_keys: list[str] = field(default_factory=lambda: list(DEFAULT_ENV_STATE_KEYS))
    cameras: list[str] = field(default_factory=list)
    image_size: int = 84
    task: str = ""
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.robots, str):
            self.robots = [self.robots]
        if not self.task:
            self.task = TASK_DESCRIPTIONS.get(self.env_name, self.env_name)

    @property
    def robot_type(self) -> str:
        return "_".join(r.lower() for r in self.robots)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"EnvSpec has unknown fields {sorted(unknown)}; was it written by a newer sir?")
        return cls(**data)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SPEC_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> EnvSpec | None:
        """The spec saved in ``directory`` (a checkpoint) or its ``meta/`` (a dataset), or None."""
        directory = Path(directory)
        for path in (directory / SPEC_FILENAME, directory / "meta" / SPEC_FILENAME):
            if path.is_file():
                try:
                    data = json.loads(path.read_text())
                    if not isinstance(data, dict):
                        raise UserError("it holds no mapping of fields")
                    return cls.from_dict(data)
                except (ValueError, TypeError, UserError) as err:
                    raise UserError(f"{path} is not a valid EnvSpec ({err}); restore it from a copy, or delete it "
                                    "and name the env with --env and --robot.") from err
        return None


def default_spec(env_name: str = "Lift", robot: str = "Panda", **overrides: Any) -> EnvSpec:
    """The documented default layout, used for datasets recorded without a spec."""
    return EnvSpec(env_name=env_name, robots=[robot], **overrides)
