"""Exact resume (issue 12): a run resumed from checkpoint_N in the middle of a pass over the
data ends bit-identical (CPU) to the run that was never interrupted, and its metrics.jsonl
holds every step once."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from sir.training import TrainConfig, train

BATCH = 16
STEPS, SAVE_AT = 12, 5


def tiny_config(root, repo_ids, checkpoint_dir, **overrides) -> TrainConfig:
    # Tiny ACT keeps lerobot's dropout and VAE: both draw from torch's RNG every step.
    return TrainConfig(**{
        "repo_ids": repo_ids, "root": str(root), "policy": "act", "preset": "tiny", "batch_size": BATCH,
        "training_steps": STEPS, "save_freq": SAVE_AT, "log_freq": 1, "no_eval": True, "num_workers": 0,
        "checkpoint_dir": str(checkpoint_dir), "run_name": "run", **overrides,
    })


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def steps_logged(run_dir) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def interrupted_and_resumed(config: TrainConfig, tmp_path):
    """(the uninterrupted run's final weights, the resumed run's, the run folder): the run
    trains to the end, then is resumed from checkpoint_5 as a run killed after it would be."""
    import dataclasses

    result = train(config)
    run_dir = result.run_dir
    uninterrupted = tmp_path / "uninterrupted"
    shutil.copytree(run_dir / "final_model", uninterrupted)
    # A kill while writing leaves half a line; the resumed run drops it with steps 6..12.
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 13, "train/lo')
    train(dataclasses.replace(config, resume=str(run_dir / f"checkpoint_{SAVE_AT}")))
    return weights(uninterrupted), weights(run_dir / "final_model"), run_dir


def assert_identical(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == got.keys()
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not different, f"{len(different)} of {len(expected)} tensors differ, e.g. {different[:3]}"


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_mid_pass_ends_bit_identical_and_logs_each_step_once(data_root, data_demos, tmp_path, workers):
    from sir.data import make_mixture
    from sir.data.mixture.config import DataConfig

    frames = len(make_mixture(DataConfig(repo_ids=data_demos, root=data_root), verbose=False))
    # checkpoint_5 falls inside the first pass, and the resumed run crosses into the next.
    assert SAVE_AT < frames // BATCH < STEPS
    config = tiny_config(data_root, [data_demos], tmp_path, num_workers=workers)
    expected, got, run_dir = interrupted_and_resumed(config, tmp_path)
    assert_identical(expected, got)
    saved = json.loads((run_dir / f"checkpoint_{SAVE_AT}" / "training_state" / "sir_run_state.json").read_text())
    assert saved["data"] == {"pass": 0, "batch": SAVE_AT, "batch_size": BATCH, "processes": 1, "seed": 0}
    assert steps_logged(run_dir) == list(range(1, STEPS + 1))


def test_resumed_weighted_mixture_ends_bit_identical(data_root, data_demos, data_demos_b, tmp_path):
    config = tiny_config(data_root, [data_demos, data_demos_b], tmp_path, dataset_weights="1,2")
    expected, got, run_dir = interrupted_and_resumed(config, tmp_path)
    assert_identical(expected, got)
    assert steps_logged(run_dir) == list(range(1, STEPS + 1))


def test_batch_stream_continues_a_pass_where_it_stopped(data_root, data_demos):
    """The stream resumed at (pass, batch) hands out the batches the uninterrupted stream
    did from there on, across the end of the pass, for the shuffle and the weighted sampler."""
    from accelerate import Accelerator

    from sir.data import make_dataloader, make_mixture
    from sir.data.mixture.config import DataConfig
    from sir.data.mixture.sampling import BatchStream

    accelerator = Accelerator(cpu=True)
    for weights_ in (None, [1.0]):
        mix = make_mixture(DataConfig(repo_ids=data_demos, root=data_root, dataset_weights=weights_), verbose=False)
        loader = accelerator.prepare(make_dataloader(mix, 32, seed=3))
        per_pass = len(loader)
        stream = BatchStream(loader)
        uninterrupted = [next(stream)["index"] for _ in range(2 * per_pass + 1)]
        resumed = BatchStream(accelerator.prepare(make_dataloader(mix, 32, seed=3)), 1, 1)
        assert stream.position() == {"pass": 2, "batch": 1}
        again = [next(resumed)["index"] for _ in range(per_pass)]
        for a, b in zip(uninterrupted[per_pass + 1:], again, strict=True):
            assert torch.equal(a, b)
        assert not torch.equal(uninterrupted[0], uninterrupted[per_pass])  # passes differ


def test_resume_drops_logged_steps_after_the_checkpoint(tmp_path):
    from sir.training.run_folder import RunFolder
    from sir.training.tracking import RunLogger

    lines = [json.dumps({"step": s, "train/loss": 1.0}) for s in (1, 2, 3, 4)] + ['{"step": 5, "tra']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    logger = RunLogger(RunFolder(tmp_path), {}, resume_step=2)
    logger.log(3, {"train/loss": 0.5})
    assert steps_logged(tmp_path) == [1, 2, 3]
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["train/loss"] == 0.5


@pytest.mark.parametrize(("saved", "expected"), [
    ({"pass": 3, "batch": 7, "batch_size": BATCH, "processes": 1, "seed": 0}, (3, 7)),
    ({"pass": 3, "batch": 7, "batch_size": 8, "processes": 1, "seed": 0}, (4, 0)),
    (None, (0, 0)),
])
def test_data_position_is_kept_only_with_the_same_batches(saved, expected):
    from sir.training.state import data_position

    notes: list[str] = []
    assert data_position({"data": saved} if saved else {}, BATCH, 1, 0, notes.append) == expected
    assert bool(notes) == (expected != (3, 7))
