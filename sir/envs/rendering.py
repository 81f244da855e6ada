"""Headless rendering: MuJoCo through EGL unless the user chose otherwise."""

from __future__ import annotations

import logging
import os
from typing import Any

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
    # Mesa's software rasteriser (llvmpipe, when there is no GPU) splits a frame across one
    # thread per core; sir already runs one env process per core, and for its small frames
    # the split costs more CPU than it saves (a Lift video frame: 12 ms of CPU on one thread,
    # 15 ms on two, and no sooner; docs/performance.md).
    os.environ.setdefault("LP_NUM_THREADS", "1")


def egl_failure_message(err: BaseException) -> str:
    return (
        f"Offscreen rendering with MUJOCO_GL={os.environ.get('MUJOCO_GL')} could not start ({err}); "
        f"install the Debian packages {EGL_PACKAGES} (sudo apt-get install {EGL_PACKAGES}) "
        "or set MUJOCO_GL=osmesa."
    )


def cheapen_video_context(env: Any, size: int) -> None:
    """Make the env's offscreen renderer draw video frames at a fraction of the default cost.

    On a CPU (Mesa's llvmpipe) a Lift frame costs about 70 ms whatever its size: the robot's
    meshes are drawn once for the floor's reflection and once more, 4x multisampled. The
    reflection is hidden behind the table from the usual cameras, and a video needs no
    anti-aliasing; without both a frame costs about 20 ms. The offscreen buffer is sized to
    the frames. Only for envs whose renderer makes videos alone: camera observations must
    keep the look the datasets were recorded with.
    """
    import mujoco

    context = env.sim._render_context_offscreen
    model = env.sim.model._model
    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = model.vis.global_.offheight = size
    context.gl_ctx.make_current()
    context.con.free()
    context._set_mujoco_context_and_buffers()
    context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
