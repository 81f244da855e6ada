"""Policy evaluation in Robosuite: rollouts across worker processes, metrics, videos, reports.

- ``rollout``: ``evaluate_policy`` / ``evaluate_tasks``, the public entry points.
- ``engine``: waves of episodes and policy lanes (how a batched policy drives many envs).
- ``pool`` / ``worker``: the worker processes and the env side they run (no torch there).
- ``batch``: observations as policy batches, per-lane policy copies, per-wave RNG streams.
- ``metrics``, ``video``, ``report``: success rate and its interval, grid videos, the CSV/PNG
  history of a training run.
- ``model_env``: a saved model's env (the ``--env`` flags of a model saved without sir's
  EnvSpec) and the refusals of an env that does not fit it, for every command that rolls one out.
- ``evaluate``: the standalone CLI.
- ``compare``: is B better than A, models scored on the same episodes compared pair by pair
  (the statistics in ``paired``, the tables and plot in ``comparison_report``).

Nothing is imported here: worker processes import this package and must stay light.
"""
