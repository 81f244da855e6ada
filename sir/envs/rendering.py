"""Headless rendering: MuJoCo through EGL unless the user chose otherwise."""

from __future__ import annotations

import logging
import os

EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"


def configure_headless_rendering() -> None:
    """Select EGL for MuJoCo when the user has not picked a backend.

    Must run before mujoco/robosuite are imported: MuJoCo reads MUJOCO_GL at import.
    PYOPENGL_PLATFORM must agree with it, or PyOpenGL looks for GLX and fails headless.
    """
    # robosuite logs optional-dependency notices (robosuite_models, mink IK, private macros)
    # and every controller load; irrelevant to sir's tasks, they drown the progress bars.
    # A filter on its logger, set before robosuite is imported, drops them at the source.
    logging.getLogger("robosuite_logs").addFilter(lambda record: record.levelno >= logging.ERROR)
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] == "egl":
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def egl_failure_message(err: BaseException) -> str:
    return (
        f"Offscreen rendering with MUJOCO_GL={os.environ.get('MUJOCO_GL')} could not start ({err}); "
        f"install the Debian packages {EGL_PACKAGES} (sudo apt-get install {EGL_PACKAGES}) "
        "or set MUJOCO_GL=osmesa."
    )
