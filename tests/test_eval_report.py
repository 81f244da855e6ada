"""Evaluation outputs without rollouts: the Wilson interval, metrics text, video grids, the
training run's CSV/PNG history, and the evaluate CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sir.eval.metrics import summarize
from sir.eval.rollout import format_metrics, wilson_interval
from sir.eval.video import FAILURE_COLOUR, SUCCESS_COLOUR, grid_shape, tile_episodes
from sir.training.run_folder import EVAL_CSV, LOSS_CSV, PLOT, RunFolder


def test_wilson_interval_matches_known_values():
    assert wilson_interval(0, 0) == (0.0, 0.0)
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == 1.0


def _episodes(outcomes):
    return [{"episode": i, "seed": 100 + i, "success": ok, "reward": float(i), "length": 10 + i,
             "failure": failure, "task": "Lift"} for i, (ok, failure) in enumerate(outcomes)]


def test_summary_counts_outcomes_failures_and_speed():
    m = summarize(_episodes([(True, None), (False, None), (False, "non-finite action")]), 2.0, 3.0)
    assert m["success_rate"] == pytest.approx(1 / 3)
    assert m["avg_length"] == 11 and m["env_steps"] == 33 and m["env_steps_per_s"] == 16.5
    assert m["failures"] == {"non-finite action": 1}
    text = format_metrics(m)
    assert "Success Rate: 33.3% (95% CI" in text and "1 non-finite action" in text


def _frames(n, value, size=32):
    return [np.full((size, size, 3), value + t, dtype=np.uint8) for t in range(n)]


def test_video_grid_tiles_episodes_and_labels_each_with_its_outcome():
    results = _episodes([(True, None), (False, None), (False, "unstable simulation")])
    grid = tile_episodes([(results[0], _frames(5, 10)), (results[1], _frames(3, 50)), (results[2], _frames(4, 90))])
    assert grid_shape(3) == (2, 2) and grid_shape(4) == (2, 2) and grid_shape(1) == (1, 1)
    assert len(grid) == 5  # as long as the longest episode
    assert grid[0].shape == (64, 64, 3)  # 2x2 tiles of 32, already a multiple of 16
    last = grid[-1]
    assert tuple(last[31, 0]) == SUCCESS_COLOUR  # left border of tile 0, below its label
    assert tuple(last[31, 32]) == FAILURE_COLOUR and tuple(last[63, 0]) == FAILURE_COLOUR
    # An episode that ended holds its last frame; the empty fourth tile stays black.
    assert last[16, 48, 0] == 50 + 2 and last[48, 16, 0] == 90 + 3
    assert not last[34:62, 34:62].any()
    assert not np.array_equal(grid[0][:8, 2:30], np.full((8, 28, 3), 10)), "the tile has no label"


def test_video_grid_pads_to_a_multiple_of_16():
    results = _episodes([(True, None)] * 2)
    grid = tile_episodes([(r, _frames(2, 0, size=20)) for r in results])
    assert grid[0].shape == (32, 48, 3)


def test_record_evaluation_appends_history_and_redraws_plot(tmp_path):
    first = summarize(_episodes([(True, None), (False, None)]), 1.0, 1.0)
    paths = RunFolder(tmp_path).record_evaluation(100, first, losses=[(10, 2.0), (50, 1.0), (100, 0.5)])
    png = (tmp_path / PLOT).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    second = summarize(_episodes([(True, None), (True, None)]), 1.0, 1.0)
    second["per_task"] = {"lift": second}
    RunFolder(tmp_path).record_evaluation(200, second, losses={150: 0.25, 200: 0.2})
    rows = list(csv.DictReader((tmp_path / EVAL_CSV).open()))
    assert [r["step"] for r in rows] == ["100", "200"]
    assert float(rows[0]["success_rate"]) == 0.5 and float(rows[1]["success_rate"]) == 1.0
    assert (float(rows[0]["train_loss"]) == pytest.approx(3.5 / 3)
            and float(rows[1]["train_loss"]) == pytest.approx(0.225))
    assert float(rows[1]["success_ci_low"]) == pytest.approx(wilson_interval(2, 2)[0])
    assert rows[1]["lift/success_rate"] == "1.0" and rows[0]["lift/success_rate"] == ""
    losses = list(csv.DictReader((tmp_path / LOSS_CSV).open()))
    assert [int(r["step"]) for r in losses] == [10, 50, 100, 150, 200]
    assert (tmp_path / PLOT).read_bytes() != png, "the plot was not redrawn"
    assert paths == {"csv": tmp_path / EVAL_CSV, "losses": tmp_path / LOSS_CSV, "plot": tmp_path / PLOT}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([EVAL_CSV, LOSS_CSV, PLOT]), "temporary files left"
    # The mean of the last k evaluations, row by row and for the run (k=2 here, as --last-k 2).
    third = summarize(_episodes([(False, None), (False, None)]), 1.0, 1.0)
    RunFolder(tmp_path).record_evaluation(300, third, last_k=2)
    rows = list(csv.DictReader((tmp_path / EVAL_CSV).open()))
    assert [float(r["last_k_success"]) for r in rows] == [0.5, 0.75, 0.5]
    assert [r["episode_successes"] for r in rows] == ["1 0", "1 1", "0 0"] and rows[0]["first_seed"] == "100"
    last = RunFolder(tmp_path).last_k(2)
    # Per episode, how many of the last 2 evaluations succeeded in it: what pairs two runs episode by episode.
    assert last == {"k": 2, "steps": [200, 300], "success_mean": 0.5, "ci95": list(wilson_interval(2, 4)),
                    "rates": [1.0, 0.0], "first_seed": 100, "episode_successes": [1, 1]}
    assert RunFolder(tmp_path / "none").last_k(3) is None


@pytest.mark.slow
def test_evaluate_cli_runs_a_checkpoint_in_workers(eval_tiny_act, tmp_path, capsys):
    from sir.eval.evaluate import main
    from sir.policies.checkpoint import save_checkpoint

    policy, pre, post, spec = eval_tiny_act
    chosen = {"choosing": {"episodes": 20, "seed": 100_000}, "confirmation": {"episodes": 40, "seed": 300_000}}
    save_checkpoint(tmp_path / "best_model", policy, pre, post, spec, {"step": 7, "selection": chosen})
    metrics = main(["--checkpoint", str(tmp_path / "best_model"), "--episodes", "2", "--max-steps", "5",
                    "--workers", "2", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "(step 7)" in out and "Success Rate: 0.0%" in out and "Avg Length: 5.0" in out
    # Without --eval-seed: the test range, named, and no note (nothing chose the model on it).
    assert "seeds 1000000-1000001 (test: the published numbers)" in out and "optimistic" not in out
    assert [e["seed"] for e in metrics["per_episode"]] == [1_000_000, 1_000_001]
    # The model folder holds the model only; results go to eval/<model> beside it.
    saved = json.loads((tmp_path / "eval" / "best_model" / "eval_results.json").read_text())
    assert not (tmp_path / "best_model" / "eval_results.json").exists()
    assert saved["episodes"] == 2 and saved["workers"] == 2 and len(saved["per_episode"]) == 2
    assert saved["model_step"] == 7  # which of a run's models was scored
    assert metrics["avg_length"] == 5.0


def test_a_model_scored_on_the_seeds_that_chose_it_is_named_so():
    from sir import seeds
    from sir.eval.evaluate import chosen_on

    info = {"selection": {"choosing": {"episodes": 20, "seed": 100_000},
                          "confirmation": {"episodes": 40, "seed": 300_000}}}
    assert chosen_on(info, 100_010, 50) == "chosen on seeds 100000-100019"
    assert chosen_on(info, 299_990, 11) == "confirmed on seeds 300000-300039"
    assert chosen_on(info, 100_000, 300_000) == "chosen on seeds 100000-100019 and confirmed on seeds 300000-300039"
    assert chosen_on(info, seeds.TEST.start, 100) is None and chosen_on({}, 100_000, 50) is None
    assert seeds.role_of(200_010) == seeds.VALIDATION.role and seeds.role_of(10**9) == "no role"
    # The ranges are apart: no role's seeds are another's.
    for a in seeds.ROLES:
        assert not [b for b in seeds.ROLES if b is not a and seeds.overlap((a.start, a.size), (b.start, b.size))]


@pytest.mark.slow
def test_a_model_without_sirs_envspec_evaluates_with_env_flags_and_a_misfit_is_refused(eval_tiny_act, tmp_path, capsys):
    """A lerobot-trained folder: lerobot's layout without sir_env.json / sir_checkpoint.json."""
    from sir.eval.evaluate import main
    from sir.policies.checkpoint import save_checkpoint

    policy, pre, post, spec = eval_tiny_act
    folder = save_checkpoint(tmp_path / "pretrained_model", policy, pre, post, spec, {"step": 2})
    (folder / "sir_env.json").unlink()
    (folder / "sir_checkpoint.json").unlink()
    args = ["--checkpoint", str(folder), "--episodes", "1", "--max-steps", "3", "--workers", "1", "--device", "cpu"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and "--env" in capsys.readouterr().err
    metrics = main([*args, "--env", spec.env_name])
    assert metrics["episodes"] == 1 and metrics["avg_length"] == 3.0
    # Stack's object state is longer than Lift's: refused before any rollout.
    with pytest.raises(SystemExit) as exc:
        main([*args, "--env", "Stack"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "observation.environment_state" in err and "Traceback" not in err
