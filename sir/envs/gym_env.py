"""sir's Robosuite tasks as gymnasium envs, in lerobot's gym conventions.

Observations are what lerobot's ``preprocess_observation`` reads: ``agent_pos`` (sir's
``observation.state``), ``environment_state`` (``observation.environment_state``, when the
spec has env-state keys) and ``pixels`` (camera name -> HxWx3 uint8, when it has cameras);
``info["is_success"]`` is the task's own check, ``_max_episode_steps`` the spec's horizon.
So lerobot's ``rollout()`` drives them through a ``SyncVectorEnv`` made with
``autoreset_mode=SAME_STEP`` (see ``make_gym_vector_env``), as lerobot's ``make_env`` makes it.

Importing this module registers ``sir/<Task>-v0`` for every task sir has a default spec for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sir.envs.factory import (
    check_success,
    make_env,
    observation_to_features,
    render_frame,
    reset_env,
)
from sir.envs.spec import (
    ENV_STATE_FEATURE,
    IMAGE_FEATURE_PREFIX,
    STATE_FEATURE,
    TASK_DESCRIPTIONS,
    EnvSpec,
    default_spec,
)
from sir.errors import UserError

RENDER_CAMERA = "agentview"


class RobosuiteGymEnv(gym.Env):
    """One Robosuite env an EnvSpec describes, as a ``gymnasium.Env``.

    ``reset(seed=s)`` starts from the state sir's own ``reset_env(env, s)`` gives, in an env
    built as sir's evaluation builds it, so seed s is the same episode start in both.
    ``reset()`` without a seed draws one from the env's ``np_random``.
    An episode terminates on success and is truncated at ``spec.horizon`` steps.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        spec: EnvSpec | dict[str, Any] | None = None,
        env: str | None = None,
        robot: str | None = None,
        cameras: list[str] | None = None,
        image_size: int | None = None,
        render_mode: str | None = "rgb_array",
        render_size: int = 256,
    ):
        if render_mode not in (None, "rgb_array"):
            raise UserError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None.")
        self.sir_spec = resolve_spec(spec, env, robot, cameras, image_size)
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.metadata = {**self.metadata, "render_fps": self.sir_spec.control_freq}
        self._max_episode_steps = self.sir_spec.horizon
        # What lerobot's add_envs_task hands the policy as "task", as sir's evaluation does.
        self.task_description = self.sir_spec.task
        self.task = self.sir_spec.env_name
        # robosuite draws initial states and some model properties from NumPy's global RNG;
        # the env keeps a stream of its own, so envs sharing a process (a SyncVectorEnv) never
        # draw from each other's sequence, and the caller's global state is left as it was.
        self._rng_state = np.random.get_state()
        with self._own_rng():
            self._env = make_env(self.sir_spec, render_camera=RENDER_CAMERA if render_mode else None,
                                 render_size=self.render_size)
            low, high = self._env.action_spec
            # Before its first reset, robosuite's camera observables hold float placeholders.
            first = self._observation(reset_env(self._env, 0))
        self.action_space = spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32)
        self.observation_space = observation_space_of(first)
        self._steps = 0

    @property
    def robosuite_env(self) -> Any:
        """The robosuite env behind this one (its ``sim`` holds the simulation state)."""
        return self._env

    @contextmanager
    def _own_rng(self) -> Iterator[None]:
        caller = np.random.get_state()
        np.random.set_state(self._rng_state)
        try:
            yield
        finally:
            self._rng_state = np.random.get_state()
            np.random.set_state(caller)

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        features = observation_to_features(obs, self.sir_spec)
        out: dict[str, Any] = {"agent_pos": features[STATE_FEATURE]}
        if ENV_STATE_FEATURE in features:
            out["environment_state"] = features[ENV_STATE_FEATURE]
        if self.sir_spec.cameras:
            out["pixels"] = {cam: features[IMAGE_FEATURE_PREFIX + cam] for cam in self.sir_spec.cameras}
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**32))
        with self._own_rng():
            obs = reset_env(self._env, seed)
            success = check_success(self._env)
        self._steps = 0
        return self._observation(obs), {"is_success": success}

    def step(self, action: np.ndarray):
        with self._own_rng():
            obs, reward, _, _ = self._env.step(np.asarray(action, dtype=np.float64))
            success = check_success(self._env)
        self._steps += 1
        truncated = not success and self._steps >= self._max_episode_steps
        return self._observation(obs), float(reward), success, truncated, {"is_success": success}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return render_frame(self._env, RENDER_CAMERA, self.render_size)

    def close(self) -> None:
        env, self._env = getattr(self, "_env", None), None
        if env is not None:
            env.close()


def resolve_spec(
    spec: EnvSpec | dict[str, Any] | None,
    env: str | None,
    robot: str | None,
    cameras: list[str] | None,
    image_size: int | None,
) -> EnvSpec:
    """The spec to build: ``spec`` (an EnvSpec or its dict), else sir's default for ``env``;
    ``robot``, ``cameras`` and ``image_size`` replace the spec's when given."""
    if spec is None:
        resolved = default_spec(env or "Lift", robot or "Panda")
    else:
        resolved = EnvSpec.from_dict(spec.to_dict() if isinstance(spec, EnvSpec) else dict(spec))
        if env is not None and env != resolved.env_name:
            raise UserError(f"The spec is for {resolved.env_name}, not {env}; make sir/{resolved.env_name}-v0 instead.")
    if robot is not None:
        resolved.robots = [robot]
    if cameras is not None:
        resolved.cameras = [cameras] if isinstance(cameras, str) else list(cameras)
    if image_size is not None:
        resolved.image_size = int(image_size)
    return resolved


def observation_space_of(observation: dict[str, Any]) -> spaces.Dict:
    def box(value: np.ndarray) -> spaces.Box:
        if value.dtype == np.uint8:
            return spaces.Box(0, 255, value.shape, np.uint8)
        return spaces.Box(-np.inf, np.inf, value.shape, value.dtype)

    return spaces.Dict({
        key: spaces.Dict({k: box(v) for k, v in value.items()}) if isinstance(value, dict) else box(value)
        for key, value in observation.items()
    })


def make_gym_env(spec: EnvSpec | dict[str, Any] | None = None, **kwargs: Any) -> RobosuiteGymEnv:
    """A gymnasium env for ``spec`` (default: Lift with a Panda); ``kwargs`` as RobosuiteGymEnv takes."""
    return RobosuiteGymEnv(spec, **kwargs)


def make_gym_vector_env(spec: EnvSpec | dict[str, Any] | None = None, n_envs: int = 1,
                        **kwargs: Any) -> gym.vector.SyncVectorEnv:
    """``n_envs`` envs in a SyncVectorEnv as lerobot's ``make_env`` builds one: lerobot's
    ``rollout()`` reads success from ``info["final_info"]``, which only SAME_STEP autoreset writes."""
    spec = resolve_spec(spec, kwargs.pop("env", None), kwargs.pop("robot", None),
                        kwargs.pop("cameras", None), kwargs.pop("image_size", None))
    return gym.vector.SyncVectorEnv([lambda: RobosuiteGymEnv(spec, **kwargs) for _ in range(n_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def gym_id(env_name: str) -> str:
    return f"sir/{env_name}-v0"


def register_envs() -> None:
    for env_name in TASK_DESCRIPTIONS:
        if gym_id(env_name) in gym.registry:
            continue
        # No wrappers: lerobot looks for task_description on the vector env's sub-envs with
        # hasattr, which gymnasium's wrappers do not forward.
        gym.register(gym_id(env_name), entry_point=f"{__name__}:RobosuiteGymEnv", kwargs={"env": env_name},
                     order_enforce=False, disable_env_checker=True)


register_envs()
