"""Build Robosuite envs from an EnvSpec and turn their observations into LeRobot features."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from sir.envs.rendering import (
    cheapen_video_context,
    configure_headless_rendering,
    egl_failure_message,
)
from sir.envs.spec import ENV_STATE_FEATURE, IMAGE_FEATURE_PREFIX, STATE_FEATURE, EnvSpec
from sir.errors import UserError

configure_headless_rendering()


def make_env(
    spec: EnvSpec,
    render_camera: str | None = None,
    render_size: int = 256,
    build_seed: int = 0,
) -> Any:
    """A Robosuite env as the spec describes it.

    ``render_camera`` asks for an offscreen renderer even when the policy uses no camera
    (for videos); ``render_frame`` then draws from it, ``render_size`` pixels square.

    robosuite draws parts of the model itself (Lift's cube size, for one) from NumPy's
    global RNG while building, and soft resets keep them; seeding that RNG with a fixed
    ``build_seed`` first makes every env of a spec the same model, in the recorder, the
    evaluator's workers and the DAgger recorder alike, so a reset seed alone fixes a state.
    """
    import robosuite
    from robosuite.controllers import load_composite_controller_config

    if spec.env_name not in robosuite.ALL_ENVIRONMENTS:
        raise UserError(
            f"Unknown Robosuite env '{spec.env_name}'; choose one of {', '.join(sorted(robosuite.ALL_ENVIRONMENTS))}."
        )
    unknown_robots = [r for r in spec.robots if r not in robosuite.ALL_ROBOTS]
    if unknown_robots:
        raise UserError(
            f"Unknown robot {unknown_robots[0]!r}; choose one of {', '.join(sorted(robosuite.ALL_ROBOTS))}."
        )
    controller = load_composite_controller_config(controller=spec.controller, robot=spec.robots[0])
    use_cameras = bool(spec.cameras)
    kwargs = dict(
        robots=spec.robots if len(spec.robots) > 1 else spec.robots[0],
        controller_configs=controller,
        has_renderer=False,
        has_offscreen_renderer=use_cameras or render_camera is not None,
        use_camera_obs=use_cameras,
        camera_names=list(spec.cameras) if use_cameras else "agentview",
        camera_heights=spec.image_size,
        camera_widths=spec.image_size,
        control_freq=spec.control_freq,
        horizon=spec.horizon,
        reward_shaping=True,
        # A soft reset keeps the MuJoCo model, so resets are fast and handles stay valid.
        hard_reset=False,
        # sir's loops end an episode at their own step limit (--max-steps, which defaults to
        # the spec's horizon). Left to robosuite, a limit above the horizon the data was
        # recorded with would be cut to that horizon without a word.
        ignore_done=True,
    )
    kwargs.update(spec.env_kwargs)
    np.random.seed(build_seed)
    try:
        env = robosuite.make(spec.env_name, **kwargs)
    except Exception as err:  # EGL failures surface as assorted GL/ctypes errors
        text = f"{type(err).__name__}: {err}"
        if any(s in text for s in ("EGL", "egl", "OpenGL", "GLError", "gladLoadGL")):
            raise UserError(egl_failure_message(err)) from err
        unknown = _UNKNOWN_CAMERA.search(str(err.__context__))
        if unknown:
            # robosuite checks camera names only while it sets up the observations, and
            # raises that as the cause of a ValueError about an "invalid sensor".
            raise UserError(f"{spec.env_name} has no camera {unknown[1]!r} (named by --cameras or by an "
                            f"observation.images.* feature); choose among {unknown[2].replace(chr(39), '')}.") from err
        raise
    if render_camera is not None and not use_cameras:
        cheapen_video_context(env, render_size)
    return env


# robosuite's words for a camera name its model lacks: logged as an error, then raised.
_UNKNOWN_CAMERA = re.compile(r'No "camera" with name (\S+) exists\. Available "camera" names = \((.*)\)')
# The log line goes: make_env and check_render_camera turn the error into one sentence.
logging.getLogger("robosuite_logs").addFilter(lambda record: not _UNKNOWN_CAMERA.search(record.getMessage()))


def check_render_camera(spec: EnvSpec, camera: str) -> None:
    """Refuse, before any rollout, a video camera the env does not have (robosuite would
    fail only when the first frame is drawn, inside a worker)."""
    env = make_env(spec, render_camera=camera, render_size=16)
    try:
        reset_env(env, 0)  # robosuite builds the simulation, and with it the camera list, on reset
        names = list(env.sim.model.camera_names)
    finally:
        env.close()
    if camera not in names:
        raise UserError(f"{spec.env_name} has no camera {camera!r} to render from (--render-camera); choose among "
                        f"{', '.join(names)}.")


def reset_env(env: Any, seed: int) -> dict[str, np.ndarray]:
    """Reset to the initial state fixed by ``seed``.

    robosuite 1.5.1 draws object placements and robot init noise from NumPy's global RNG
    and takes no seed argument, so seeding that RNG is what makes a seed reproducible.
    """
    np.random.seed(seed)
    return env.reset()


def check_success(env: Any) -> bool:
    return bool(env._check_success())


def flip_image(image: np.ndarray) -> np.ndarray:
    """robosuite renders with OpenGL's origin (bottom-left); LeRobot images are top-left."""
    return np.ascontiguousarray(image[::-1])


def observation_to_features(obs: dict[str, np.ndarray], spec: EnvSpec) -> dict[str, np.ndarray]:
    """robosuite observation → LeRobot features (state float32, images HWC uint8)."""
    missing = [k for k in (*spec.state_keys, *spec.env_state_keys) if k not in obs]
    if missing:
        raise UserError(
            f"The {spec.env_name} env has no observation {missing[0]!r} that the EnvSpec asks for; "
            f"available keys: {', '.join(sorted(obs))}."
        )
    features = {
        STATE_FEATURE: np.concatenate([np.ravel(obs[k]) for k in spec.state_keys]).astype(np.float32)
    }
    if spec.env_state_keys:
        features[ENV_STATE_FEATURE] = np.concatenate(
            [np.ravel(obs[k]) for k in spec.env_state_keys]
        ).astype(np.float32)
    for cam in spec.cameras:
        features[IMAGE_FEATURE_PREFIX + cam] = flip_image(obs[f"{cam}_image"])
    return features


def render_frame(env: Any, camera: str, size: int) -> np.ndarray:
    """An RGB frame (HWC uint8, upright) from ``camera``, for videos."""
    # robosuite makes an env's GL context current only when it builds it; a worker holding
    # several envs must switch to this one's.
    env.sim._render_context_offscreen.gl_ctx.make_current()
    return flip_image(env.sim.render(width=size, height=size, camera_name=camera))


def action_dim(env: Any) -> int:
    return int(env.action_spec[0].shape[0])
