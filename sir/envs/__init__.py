"""Robosuite envs described by an EnvSpec, and their observations as LeRobot features."""

from typing import Any

# The gymnasium envs load lazily: every sir process imports this package, most never need gymnasium.
_GYM_EXPORTS = ("make_gym_env", "make_gym_vector_env", "RobosuiteGymEnv")


def __getattr__(name: str) -> Any:
    if name in _GYM_EXPORTS:
        from sir.envs import gym_env

        return getattr(gym_env, name)
    raise AttributeError(f"module 'sir.envs' has no attribute {name!r}")


__all__ = list(_GYM_EXPORTS)
