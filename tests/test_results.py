"""sir.results.run: tasks done once, a stopped training resumed, the page's own text kept."""

import json

import pytest

from sir.results import run as results

TINY = ["--tasks", "Lift", "--demos", "2", "--eval-episodes", "2",
        "--train-args", "--preset tiny --training-steps 4 --eval-freq 2 --eval-episodes 1 --max-steps 10 --save-freq 2"]


def argv(tmp_path):
    return [*TINY, "--root", str(tmp_path / "data"), "--out", str(tmp_path / "runs"),
            "--report", str(tmp_path / "results.md"), "--summaries", str(tmp_path / "summaries")]


@pytest.mark.slow
def test_results_run_skips_done_tasks_resumes_stopped_ones_and_keeps_the_pages_text(tmp_path, capsys, logged,
                                                                                    one_line_per_interval):
    report = tmp_path / "results.md"
    report.write_text(f"# Results\n\nOur analysis.\n\n{results_report_markers()}\nAfter the table.\n")
    # Output to a file, as in a batch job: plain lines of the recording, training and evaluation.
    rows, text = logged(results.main, argv(tmp_path))
    one_line_per_interval(text, "Recording Lift", 2)
    one_line_per_interval(text, "Evaluating", 2)
    assert [line.split(" | ")[0] for line in text.splitlines() if line.startswith("step ")] == ["step 1/4"]
    task_dir = tmp_path / "runs" / "Lift"
    saved = json.loads((tmp_path / "summaries" / "Lift.json").read_text())
    assert rows[0] == saved == json.loads((task_dir / "result.json").read_text())
    assert len(saved["sir"]["commit"]) == 40  # this checkout's commit
    assert saved["selection"]["chosen_step"] == saved["best_step"]
    assert saved["demos"] == 2 and saved["training_steps"] == 4 and saved["episodes"] == 2
    assert [p["step"] for p in saved["curve"]] == [2, 4]
    page = report.read_text()
    assert page.startswith("# Results\n\nOur analysis.") and page.rstrip().endswith("After the table.")
    assert "| Lift | act `tiny` | 2 (" in page and "--repo-ids lift_2" in page

    # Done: nothing is trained or evaluated again.
    metrics_before = (task_dir / "metrics.jsonl").stat().st_mtime_ns
    results.main(argv(tmp_path))
    assert "done before" in capsys.readouterr().out
    assert (task_dir / "metrics.jsonl").stat().st_mtime_ns == metrics_before

    # Stopped after checkpoint_2: the next run continues from it instead of starting over.
    import shutil

    records = [json.loads(line) for line in (task_dir / "metrics.jsonl").read_text().splitlines()]
    first_process = max(r["train/elapsed_s"] for r in records if r["step"] <= 2 and "train/elapsed_s" in r)
    for name in ("runs/Lift/final_model", "runs/Lift/checkpoint_4", "runs/Lift/result.json", "summaries/Lift.json"):
        path = tmp_path / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    # The run was saved before sir had its newest option: left at its default, it changes nothing.
    config = json.loads((task_dir / "train_config.json").read_text())
    assert config.pop("image_transforms") is None
    (task_dir / "train_config.json").write_text(json.dumps(config))
    results.main(argv(tmp_path))
    assert "Resuming Lift from checkpoint_2" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (task_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 4
    resumed = json.loads((tmp_path / "summaries" / "Lift.json").read_text())
    assert resumed["training_steps"] == 4
    # Its training time counts the stopped process's steps too, read from the trainer's own log.
    assert resumed["train_wall_s"] > first_process
    assert resumed["eval_wall_s"] == pytest.approx(sum(p["wall_s"] for p in resumed["curve"]))


def test_unknown_task_is_refused_in_one_sentence(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        results.main(["--tasks", "Lift,Door", "--root", str(tmp_path), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no recipe for Door" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_every_recipe_is_a_valid_training_config():
    from sir.results.recipes import TASKS
    from sir.training import TrainConfig
    from sir.training.config import check

    for task in TASKS.values():
        check(TrainConfig(**task.train_settings(), repo_ids=["x"]))


def results_report_markers():
    from sir.results.report import BEGIN, END

    return f"{BEGIN}\n{END}"


def test_run_times_add_up_every_process_that_trained_the_run(tmp_path):
    # As the trainer logs them: the step's training record, then its evaluation. The first
    # process was stopped after checkpoint_4 and its log cut back there; a second resumed it.
    lines = [
        {"step": 1, "train/elapsed_s": 0.5},
        {"step": 2, "train/elapsed_s": 10.0},
        {"step": 2, "eval/success_rate": 0.5, "eval/wall_time_s": 3.0},
        {"step": 4, "train/elapsed_s": 23.0},  # includes the 3 s evaluation at step 2
        {"step": 4, "eval/success_rate": 0.6, "eval/wall_time_s": 4.0},  # after the count: not in it
        {"step": 5, "train/elapsed_s": 0.4, "train/resumed_at": 4},  # the resumed process
        {"step": 6, "train/elapsed_s": 8.0},
        {"step": 6, "eval/success_rate": 0.7, "eval/wall_time_s": 2.0},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 7, "train/el')  # cut by a kill
    train_s, eval_s = results.run_times(path)
    assert train_s == pytest.approx((23.0 - 3.0) + 8.0)
    assert eval_s == pytest.approx(9.0)
    assert results.run_times(tmp_path / "missing.jsonl") == (0.0, 0.0)

    # Sparse logs (a record every 50 steps): the resumed process's first count can exceed the
    # stopped one's last; the mark, not the count going down, says a new process began.
    sparse = [{"step": 1, "train/elapsed_s": 0.1}, {"step": 2, "eval/success_rate": 0.0, "eval/wall_time_s": 5.0},
              {"step": 3, "train/elapsed_s": 0.7, "train/resumed_at": 2}]
    path.write_text("".join(json.dumps(r) + "\n" for r in sparse))
    assert results.run_times(path) == (pytest.approx(0.1 + 0.7), pytest.approx(5.0))


def test_a_new_machine_skips_tasks_whose_summary_matches_their_recipe_and_runs_the_others(tmp_path, capsys,
                                                                                        monkeypatch):
    """A fresh clone has the committed summaries and no run folders: a matching summary is
    the row (nothing runs), one made with other settings is not, and the page is written
    from the summaries."""
    from sir.results.recipes import TASKS

    summaries = tmp_path / "summaries"
    summaries.mkdir()
    lift = {"task": "Lift", "repo_id": "lift_200", "settings": TASKS["Lift"].train_settings(), "policy": "act",
            "preset": "cpu", "demos": 200, "frames": 7296, "training_steps": 2000, "batch_size": 64,
            "best_step": 500, "train_wall_s": 360.0, "success_rate": 1.0, "success_ci95": [0.93, 1.0],
            "episodes": 50, "eval_seed": 200_000, "aim": 1.0, "curve": [{"step": 500, "success_rate": 1.0}],
            "commands": ["python -m sir.data.collect --env Lift"], "sir": {"commit": "b6fa36c" + "0" * 33},
            "selection": {"chosen_step": 1000, "confirmation": {"episodes": 40, "seed": 300_000},
                          "candidates": [{"step": 500, "confirmation": {"success_rate": 0.9}},
                                         {"step": 1000, "confirmation": {"success_rate": 0.975}}]}}
    (summaries / "Lift.json").write_text(json.dumps(lift))
    stack = {**lift, "task": "Stack", "repo_id": "stack_200", "settings": {**TASKS["Stack"].train_settings(),
                                                                           "training_steps": 1}}
    (summaries / "Stack.json").write_text(json.dumps(stack))
    ran = []

    class Trained(Exception):
        pass

    def train(cfg, task_dir):
        ran.append(cfg.run_name)
        raise Trained

    monkeypatch.setattr(results, "train_resuming", train)
    monkeypatch.setattr("sir.data.collect.collect", lambda cfg: None)
    report = tmp_path / "results.md"
    args = ["--root", str(tmp_path / "data"), "--out", str(tmp_path / "runs"), "--report", str(report),
            "--summaries", str(summaries)]
    rows = results.main(["--tasks", "Lift", *args])
    assert rows == [lift] and "Lift: done before" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists() and not ran
    page = report.read_text()
    assert "| Lift | act `cpu` | 200 (7296) | 2000 x 64 | 500 | 6 min | **100%**" in page
    assert "Lift `b6fa36c`" in page
    # How best_model was chosen among the evaluations during training: the confirmed candidates.
    assert ("- **Lift** (20 episodes each): 500: 100%; the 2 best confirmed on 40 other episodes "
            "(500: 90.0%, 1000: 97.5%), best_model step 1000") in page
    with pytest.raises(Trained):
        results.main(["--tasks", "Lift,Stack", *args])
    assert ran == ["Stack"]  # its recipe is not the one its summary was made with


def test_the_committed_summaries_are_the_pages_rows():
    """docs/results/<Task>.json hold the measured rows; the page's table is written from them."""
    from pathlib import Path

    from sir.results.recipes import TASKS
    from sir.results.report import BEGIN, END, collect_results, table

    docs = Path(__file__).resolve().parents[1] / "docs"
    rows = collect_results(docs / "results")
    assert [r["task"] for r in rows] == list(TASKS)
    for r in rows:  # each matches its recipe as it is now, so make results skips it
        assert results.matches(r, TASKS[r["task"]].train_settings(), f"{r['task'].lower()}_200",
                               results.ResultsConfig())
    page = (docs / "results.md").read_text()
    assert table(rows) in page.partition(BEGIN)[2].partition(END)[0]


def test_every_committed_lever_summary_is_quoted_on_the_page():
    """The lever tables of docs/results.md are written by hand: each lever's held-out score and
    interval, as its summary in docs/results/levers/ records them, appear there."""
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    page = (docs / "results.md").read_text()
    levers = sorted((docs / "results" / "levers").glob("*_*.json"))
    summaries = [json.loads(p.read_text()) for p in levers if p.name != "checkpoints_heldout.json"]
    assert len(summaries) >= 10
    for s in summaries:
        lo, hi = (round(100 * x) for x in s["success_ci95"])
        quoted = rf"{100 * s['success_rate']:.0f}%(\*\*)? \({lo}-{hi}%"
        assert re.search(quoted, page), (s["task"], s["settings"], quoted)


def test_a_final_evaluation_on_seeds_that_chose_the_model_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        results.main(["--tasks", "Lift", "--eval-seed", "300010", "--root", str(tmp_path), "--out", str(tmp_path),
                      "--summaries", str(tmp_path / "summaries")])
    assert exit_info.value.code == 2
    assert "reuses seeds of the training's --select-seed (300000 on, 40 episodes)" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
