"""What a Robosuite env costs sir in one process: building it, resetting it (hard and soft),
stepping it, and drawing a video frame with each rendering setting.

    MUJOCO_GL=egl python benchmarks/env_costs.py [--env Lift] [--resets 10] [--steps 100] \\
        [--frames 20] [--size 256] [--small-size 32]

Envs are built as ``sir.envs.factory.make_env`` builds them for sir's evaluations (a soft
reset, ``hard_reset=False``); the hard reset is the same env with ``hard_reset=True`` in its
spec's ``env_kwargs``. Printed, each as CPU time of this process (Mesa's rasteriser threads
included) and wall time:

- the first env built in the process (robosuite's first model build; robosuite imported before,
  as the evaluation's fork server preloads it) and a second one;
- a reset, hard and soft: the mean of ``--resets`` calls of ``reset_env`` with new seeds;
- a step with random actions, from the soft resets' states: the mean over ``--steps`` steps
  (``--steps`` a reset, so the arm is not pressed into the table);
- a frame of ``--size`` pixels from the agentview camera, the mean of ``--frames`` after
  one to warm up, with robosuite's default rendering, without shadows, without 4x
  multisampling, without the floor's reflection, and with neither (sir's video renderer,
  ``sir.envs.rendering.cheapen_video_context``); and the default at ``--small-size`` pixels.

Mesa's llvmpipe splits a frame over ``LP_NUM_THREADS`` threads; sir sets it to 1 unless it is
set, so ``LP_NUM_THREADS=2 python benchmarks/env_costs.py`` gives the other reading.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np


def timed(fn, n: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call of ``fn(i)`` over ``n`` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        fn(i)
    return 1000 * (time.process_time() - cpu) / n, 1000 * (time.perf_counter() - wall) / n


def render_env(spec, variant: str, size: int):
    """A fresh env with an offscreen renderer, drawn the way ``variant`` says."""
    import mujoco

    from sir.envs.factory import make_env, reset_env
    from sir.envs.rendering import cheapen_video_context

    env = make_env(dataclasses.replace(spec, env_kwargs={**spec.env_kwargs, "has_offscreen_renderer": True}))
    reset_env(env, 0)
    if variant == "sir's video renderer":
        cheapen_video_context(env, size)
        return env
    context = env.sim._render_context_offscreen
    if variant == "no multisampling":
        env.sim.model._model.vis.quality.offsamples = 0
        context.gl_ctx.make_current()
        context.con.free()
        context._set_mujoco_context_and_buffers()
    flag = {"no shadows": mujoco.mjtRndFlag.mjRND_SHADOW, "no reflection": mujoco.mjtRndFlag.mjRND_REFLECTION}
    if variant in flag:
        context.scn.flags[flag[variant]] = 0
    return env


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Lift")
    p.add_argument("--resets", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--frames", type=int, default=20, help="frames drawn per rendering setting (0 skips them)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--small-size", type=int, default=32)
    args = p.parse_args(argv)

    from sir.envs.factory import action_dim, make_env, render_frame, reset_env
    from sir.envs.spec import default_spec
    from sir.runtime import quiet_libraries

    quiet_libraries()
    import robosuite  # noqa: F401  (imported before the clock starts, as sir's fork server preloads it)

    spec = default_spec(args.env)
    costs: dict[str, tuple[float, float]] = {}
    envs = []
    costs["first env built in the process"] = timed(lambda i: envs.append(make_env(spec)), 1)
    costs["a further env"] = timed(lambda i: envs.append(make_env(spec)), 1)
    soft = envs[0]
    reset_env(soft, 0)
    hard = make_env(dataclasses.replace(spec, env_kwargs={**spec.env_kwargs, "hard_reset": True}))
    reset_env(hard, 0)
    costs["hard reset (hard_reset=True)"] = timed(lambda i: reset_env(hard, 1 + i), args.resets)
    costs["soft reset (sir's)"] = timed(lambda i: reset_env(soft, 1 + i), args.resets)
    rng = np.random.default_rng(0)
    dim = action_dim(soft)

    def episode(i: int) -> None:
        reset_env(soft, 100 + i)
        for _ in range(args.steps):
            soft.step(rng.uniform(-1, 1, dim))

    cpu, wall = timed(episode, 1)
    costs["step (random actions, after a soft reset)"] = (cpu / args.steps, wall / args.steps)
    for env in (*envs, hard):
        env.close()

    if args.frames:
        variants = ["default", "no shadows", "no multisampling", "no reflection", "sir's video renderer"]
        for variant, size in [(v, args.size) for v in variants] + [("default", args.small_size)]:
            env = render_env(spec, variant, size)
            render_frame(env, "agentview", size)  # the first frame builds the GL buffers
            costs[f"frame, {variant}, {size} px"] = timed(
                lambda i, env=env, size=size: render_frame(env, "agentview", size), args.frames)
            env.close()

    print(f"\n{args.env}, one process, LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS')}, "
          f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}  [load average {os.getloadavg()[0]:.1f}]")
    for name, (cpu, wall) in costs.items():
        print(f"  {name:45s} {cpu:9.1f} ms CPU {wall:9.1f} ms wall")
    return costs


if __name__ == "__main__":
    main()
