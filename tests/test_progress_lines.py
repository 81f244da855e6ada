"""Progress in a batch job: every command, its output written to a file, prints plain lines,
one per reporting interval, and no carriage-return redraws (sir.progress); a bar in a terminal."""

from __future__ import annotations

import pytest

from sir.progress import Progress


def test_plain_lines_come_once_per_interval_with_the_status_and_at_the_end(capsys):
    progress = Progress(25, "Recording Lift", "ep", interactive=False)
    for i in range(25):
        progress.update(1, successes=i + 1)
    progress.close()
    out, err = capsys.readouterr()
    lines = out.splitlines()
    # A tenth of 25 is 3 episodes: 3, 6, ..., 24, then the last.
    assert [line.split(" | ")[0] for line in lines] == [f"Recording Lift: {n}/25 ep" for n in (*range(3, 25, 3), 25)]
    assert lines[-1].split(" | ")[1] == "successes=25" and " ep/s | ETA " in lines[-1]
    assert err == "" and "\r" not in out


def test_a_loop_that_stops_early_reports_where_it_stopped_and_status_alone_prints_nothing(capsys):
    progress = Progress(100, "DAgger Lift", "ep", initial=40, interactive=False)
    progress.update(0, interventions=1)
    assert capsys.readouterr().out == ""
    for _ in range(7):
        progress.update(1)
    progress.close()
    counts = [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines()]
    assert counts == ["DAgger Lift: 46/100 ep", "DAgger Lift: 47/100 ep"]  # every 6 of the 60 left, then close


def test_in_a_terminal_progress_is_a_bar_on_stderr_and_no_lines(capsys):
    with Progress(3, "Evaluating", "ep", interactive=True) as progress:
        for _ in range(3):
            progress.update(1, ok=1)
    out, err = capsys.readouterr()
    assert out == "" and "Evaluating" in err and "3/3" in err


@pytest.mark.slow
def test_collect_logs_plain_lines(logged, one_line_per_interval, tmp_path):
    from sir.data.collect import main

    _, text = logged(main, ["--env", "Lift", "--episodes", "2", "--root", str(tmp_path), "--repo-id", "d",
                            "--seed", "0"])
    one_line_per_interval(text, "Recording Lift", 2)


@pytest.fixture
def tiny_model(eval_tiny_act, tmp_path):
    from sir.policies.checkpoint import save_checkpoint

    policy, pre, post, spec = eval_tiny_act
    return save_checkpoint(tmp_path / "best_model", policy, pre, post, spec, {"step": 1})


def test_evaluate_logs_plain_lines(logged, one_line_per_interval, tiny_model):
    from sir.eval.evaluate import main

    _, text = logged(main, ["--checkpoint", str(tiny_model), "--episodes", "2", "--max-steps", "4",
                            "--workers", "1", "--device", "cpu"])
    one_line_per_interval(text, "Evaluating", 2)
    assert "Success Rate" in text


def test_dagger_record_logs_plain_lines(logged, one_line_per_interval, tiny_model, tmp_path):
    from sir.dagger.record import main

    _, text = logged(main, ["--checkpoint", str(tiny_model), "--episodes", "2", "--max-steps", "15",
                            "--patience", "3", "--root", str(tmp_path / "data"), "--repo-id", "r", "--device", "cpu"])
    assert one_line_per_interval(text, "DAgger Lift", 2) == [1, 2]
    assert "interventions=" in text
