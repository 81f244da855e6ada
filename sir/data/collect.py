"""Record demonstrations as a LeRobotDataset v3, from a scripted expert or from a person
driving one of robosuite's input devices (see docs/teleoperation.md).

    python -m sir.data.collect --env Lift --episodes 50 --root data --repo-id lift_demos
    python -m sir.data.collect --env Lift --device keyboard --episodes 10 --root data --repo-id lift_human
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sir import seeds
from sir.config import option, parse, validate
from sir.data.record import runner
from sir.data.record.runner import DatasetTarget, ExpertActor, RecordingResult
from sir.data.record.writer import refuse_if_busy
from sir.data.resolve import dataset_path
from sir.envs.devices import DEVICES
from sir.envs.factory import make_env
from sir.envs.spec import EnvSpec, default_spec
from sir.errors import cli_errors
from sir.experts import RECORDING_NOISE, ExpertNoise, make_expert


@dataclass
class CollectConfig(DatasetTarget):
    env: str = option("Lift", "Robosuite env (with a scripted expert, or any env with --device)")
    robot: str = option("Panda", "robot")
    episodes: int = option(50, "successful episodes to record", minimum=1)
    # Recorded here, "" means no environment state at all (the import takes "" as the default).
    env_state_keys: list[str] | None = option(
        None, "observation keys concatenated into observation.environment_state (default: the env's layout; "
        "\"\" for none: a policy then sees its cameras and the robot's own state only)")
    max_steps: int = option(200, "step limit per episode", minimum=1)
    seed: int = option(seeds.DEMOS.start, "first episode's seed; episode i uses seed+i")
    noise: float = option(RECORDING_NOISE.action_std, "std of Gaussian noise on the expert's arm commands", minimum=0)
    target_jitter: float = option(RECORDING_NOISE.target_jitter, "metres of jitter on the expert's waypoints",
                                  minimum=0)
    keep_failures: bool = option(False, "also record episodes the expert (or operator) failed")
    device: str | None = option(None, "a person drives with this robosuite input device instead of the expert, "
                                "in real time, watching a window (needs a screen)", choices=DEVICES)
    skip_existing: bool = option(False, "do nothing when the dataset already exists")


def existing(target: Path) -> RecordingResult:
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    lengths = [int(n) for n in LeRobotDatasetMetadata(target.name, root=target).episodes["length"]]
    return RecordingResult(path=target, episodes=len(lengths), frames=sum(lengths), episode_lengths=lengths)


def collect(cfg: CollectConfig) -> RecordingResult:
    """Record ``cfg.episodes`` expert (or, with ``device``, human) episodes to
    ``cfg.root/cfg.repo_id`` (the existing dataset, untouched, with ``skip_existing``)."""
    validate(cfg)
    target = dataset_path(cfg.root, cfg.repo_id, "--repo-id")
    if cfg.skip_existing and target.exists():
        print(f"{target} exists; not recording again.")
        return existing(target)
    refuse_if_busy(cfg.root, cfg.repo_id)
    layout = {}
    if cfg.state_keys:
        layout["state_keys"] = cfg.state_keys
    if cfg.env_state_keys is not None:  # [] (--env-state-keys ""): no object state, e.g. for vision policies
        layout["env_state_keys"] = cfg.env_state_keys
    spec = default_spec(cfg.env, cfg.robot, cameras=cfg.cameras, image_size=cfg.image_size, horizon=cfg.max_steps,
                        **layout)
    if cfg.device:
        return _collect_from_operator(cfg, spec)
    expert = make_expert(cfg.env, ExpertNoise(cfg.noise, cfg.target_jitter), seed=cfg.seed)
    env = make_env(spec)
    writer = runner.open_writer(
        env, spec, cfg.root, cfg.repo_id, cfg.seed,
        info={"recorded_by": "sir.data.collect", "expert": type(expert).__name__, "noise": cfg.noise,
              "target_jitter": cfg.target_jitter, "first_seed": cfg.seed},
        resumable=True,
    )
    result = runner.record_episodes(
        writer, env, spec, ExpertActor(expert), cfg.seed, cfg.episodes, cfg.max_steps, until_written=True,
        keep=lambda episode: episode.success or cfg.keep_failures, desc=f"Recording {cfg.env}",
        status=lambda r: {"success": f"{r.successes}/{r.tried}"},
    )
    _report(result, f"expert success {result.successes}/{result.tried}")
    return result


def _collect_from_operator(cfg: CollectConfig, spec: EnvSpec) -> RecordingResult:
    """A person drives every episode through ``cfg.device``, watching robosuite's window."""
    from sir.data.record.teleop import HumanActor
    from sir.envs.devices import check_screen, window_spec

    check_screen(cfg.device, spec)
    env = make_env(window_spec(spec))
    actor = HumanActor(cfg.device, env)
    try:
        writer = runner.open_writer(
            env, spec, cfg.root, cfg.repo_id, cfg.seed,
            info={"recorded_by": "sir.data.collect", "device": cfg.device, "first_seed": cfg.seed},
            resumable=True,
        )
        result = runner.record_episodes(
            writer, env, spec, actor, cfg.seed, cfg.episodes, cfg.max_steps, until_written=True,
            keep=lambda episode: episode.success or cfg.keep_failures, desc=f"Recording {cfg.env} ({cfg.device})",
            status=lambda r: {"kept": r.episodes, "discarded": r.discarded, "success": f"{r.successes}/{r.tried}"},
        )
    finally:
        actor.close()
    _report(result, f"kept {result.episodes}, discarded {result.discarded}, success {result.successes}/{result.tried}")
    return result


def _report(result: RecordingResult, counts: str) -> None:
    if result.path is None:
        print(f"No episode recorded; nothing written [{counts}].")
    else:
        print(f"Wrote {result.episodes} episodes ({result.frames} frames) to {result.path} [{counts}]")


def parse_config(argv: list[str] | None = None) -> CollectConfig:
    return parse(CollectConfig, argv, "python -m sir.data.collect",
                 "Record demonstrations in a Robosuite env, from the scripted expert or from a person with "
                 "--device, as a LeRobotDataset v3 (with the EnvSpec in meta/sir_env.json).")


@cli_errors
def main(argv: list[str] | None = None) -> Path | None:
    return collect(parse_config(argv)).path


if __name__ == "__main__":
    main()
