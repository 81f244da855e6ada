"""sir.results.run: tasks done once, a stopped training resumed, the page's own text kept."""

import json
import types

import pytest

from sir.results import run as results

TINY = ["--tasks", "Lift", "--demos", "2", "--eval-episodes", "2",
        "--train-args", "--preset tiny --training-steps 4 --eval-freq 2 --eval-episodes 1 --max-steps 10 --save-freq 2"]


def argv(tmp_path):
    return [*TINY, "--root", str(tmp_path / "data"), "--out", str(tmp_path / "runs"),
            "--report", str(tmp_path / "results.md"), "--summaries", str(tmp_path / "summaries")]


@pytest.mark.slow
def test_results_run_trains_each_seed_skips_done_ones_resumes_stopped_ones_and_keeps_the_pages_text(
        tmp_path, capsys, logged, one_line_per_interval):
    report = tmp_path / "results.md"
    report.write_text(f"# Results\n\nOur analysis.\n\n{results_report_markers()}\nAfter the table.\n")
    # Output to a file, as in a batch job: plain lines of the recording, training and evaluation.
    rows, text = logged(results.main, [*argv(tmp_path), "--training-seeds", "0,1"])
    one_line_per_interval(text, "Recording Lift", 2)
    assert [line.split(" | ")[0] for line in text.splitlines() if line.startswith("step ")] == ["step 1/4"] * 2
    saved = json.loads((tmp_path / "summaries" / "Lift.json").read_text())
    assert rows[0] == saved
    assert saved["training_seeds"] == [0, 1] and [r["seed"] for r in saved["runs"]] == [0, 1]
    assert saved["test_seed"] == 1_000_000 and saved["test_episodes"] == 2  # the test range (sir.seeds)
    assert saved["success_per_seed"] == [r["success_rate"] for r in saved["runs"]]
    assert saved["success_mean"] == pytest.approx(sum(saved["success_per_seed"]) / 2)
    for seed, run in zip((0, 1), saved["runs"], strict=True):
        task_dir = tmp_path / "runs" / f"Lift_s{seed}"
        assert run == json.loads((task_dir / "result.json").read_text())
        assert json.loads((task_dir / "train_config.json").read_text())["seed"] == seed
        assert len(run["sir"]["commit"]) == 40  # this checkout's commit
        assert run["selection"]["chosen_step"] == run["best_step"]
        assert [p["step"] for p in run["curve"]] == [2, 4]
        assert run["last_k_success"] == pytest.approx(sum(p["success_rate"] for p in run["curve"]) / 2)
        assert f"--seed {seed}" in run["commands"][1] and "--eval-seed 1000000" in run["commands"][2]
    assert saved["demos"] == 2 and saved["training_steps"] == 4
    page = report.read_text()
    assert page.startswith("# Results\n\nOur analysis.") and page.rstrip().endswith("After the table.")
    assert "| Lift | act `tiny` | 2 (" in page and "--repo-ids lift_2" in page and "--training-seeds 0,1" in page

    # Done: nothing is trained or evaluated again.
    task_dir = tmp_path / "runs" / "Lift_s1"
    metrics_before = (task_dir / "metrics.jsonl").stat().st_mtime_ns
    results.main([*argv(tmp_path), "--training-seeds", "0,1"])
    assert "done before" in capsys.readouterr().out
    assert (task_dir / "metrics.jsonl").stat().st_mtime_ns == metrics_before

    # Seed 1 stopped after checkpoint_2, its row not in the summary: seed 0 is kept, seed 1 continues.
    import shutil

    records = [json.loads(line) for line in (task_dir / "metrics.jsonl").read_text().splitlines()]
    first_process = max(r["train/elapsed_s"] for r in records if r["step"] <= 2 and "train/elapsed_s" in r)
    for path in (task_dir / "final_model", task_dir / "checkpoint_4", task_dir / "result.json"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    summary = tmp_path / "summaries" / "Lift.json"
    summary.write_text(json.dumps({**saved, "runs": saved["runs"][:1]}))
    # The run was saved before sir had its newest option: left at its default, it changes nothing.
    config = json.loads((task_dir / "train_config.json").read_text())
    assert config.pop("image_transforms") is None
    (task_dir / "train_config.json").write_text(json.dumps(config))
    seed0 = (tmp_path / "runs" / "Lift_s0" / "metrics.jsonl").stat().st_mtime_ns
    results.main([*argv(tmp_path), "--training-seeds", "0,1"])
    out = capsys.readouterr().out
    assert "Lift, training seed 0: kept" in out and "Resuming Lift_s1 from checkpoint_2" in out
    assert (tmp_path / "runs" / "Lift_s0" / "metrics.jsonl").stat().st_mtime_ns == seed0
    steps = [json.loads(line)["step"] for line in (task_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 4
    resumed = json.loads(summary.read_text())
    assert resumed["training_seeds"] == [0, 1] and resumed["runs"][0] == saved["runs"][0]
    # Its training time counts the stopped process's steps too, read from the trainer's own log.
    run = resumed["runs"][1]
    assert run["train_wall_s"] > first_process
    assert run["eval_wall_s"] == pytest.approx(sum(p["wall_s"] for p in run["curve"]))


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

    # Evaluations beside training (--async-eval): logged when collected, some steps later; the
    # count never held their time, so none of it comes off training's.
    beside = [{"step": 2, "train/elapsed_s": 10.0}, {"step": 3, "train/elapsed_s": 15.0},
              {"step": 2, "eval/success_rate": 0.5, "eval/wall_time_s": 6.0, "eval/beside_training": True},
              {"step": 4, "train/elapsed_s": 20.0},
              {"step": 4, "eval/success_rate": 0.6, "eval/wall_time_s": 6.0, "eval/beside_training": True}]
    path.write_text("".join(json.dumps(r) + "\n" for r in beside))
    assert results.run_times(path) == (pytest.approx(20.0), pytest.approx(12.0))


def test_the_trainer_marks_the_evaluations_that_ran_beside_training(lift_demos, tmp_path):
    """run_times leaves a waited-for evaluation's time out of training's and keeps the time of
    one beside training in it: the trainer's log says which was which."""
    from sir.training import TrainConfig, train

    root, repo_id = lift_demos
    for beside in (False, True):
        run = train(TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=4,
                                training_steps=4, eval_freq=2, eval_episodes=1, max_steps=5, save_freq=4,
                                select_top_k=1, async_eval=beside, checkpoint_dir=str(tmp_path),
                                run_name=f"beside_{beside}"))
        marks = [r["eval/beside_training"] for r in map(json.loads, (run.run_dir / "metrics.jsonl").open())
                 if "eval/wall_time_s" in r]
        assert marks and set(marks) == {beside}


def test_a_new_machine_skips_tasks_whose_summary_matches_their_recipe_and_runs_the_others(tmp_path, capsys,
                                                                                        monkeypatch):
    """A fresh clone has the committed summaries and no run folders: a summary holding every
    seed with the recipe and test episodes of this run is the row (nothing runs), one made
    with other settings is not, and the page is written from the summaries."""
    from sir.results.recipes import TASKS

    summaries = tmp_path / "summaries"
    summaries.mkdir()
    run = {"seed": 0, "best_step": 1000, "frames": 7296, "success_rate": 0.98, "success_ci95": [0.93, 1.0],
           "episodes": 100, "avg_length": 40.0, "choosing_success": 1.0, "last_k_success": 0.95,
           "train_wall_s": 360.0, "eval_wall_s": 10.0, "curve": [{"step": 500, "success_rate": 1.0, "wall_s": 5.0}],
           "commands": ["python -m sir.data.collect --env Lift", "train", "evaluate"],
           "sir": {"commit": "b6fa36c" + "0" * 33},
           "selection": {"chosen_step": 1000, "confirmation": {"episodes": 40, "seed": 300_000},
                         "candidates": [{"step": 500, "confirmation": {"success_rate": 0.9}},
                                        {"step": 1000, "confirmation": {"success_rate": 0.975}}]}}
    base = {"task": "Lift", "repo_id": "lift_200", "settings": TASKS["Lift"].train_settings(), "policy": "act",
            "preset": "cpu", "demos": 200, "training_steps": 2000, "batch_size": 64, "test_seed": 1_000_000,
            "test_episodes": 100, "last_k": 3, "aim": 1.0}
    lift = results.summarize_task(base, [run, {**run, "seed": 1, "success_rate": 0.94, "choosing_success": 0.95}])
    assert lift["success_mean"] == pytest.approx(0.96) and lift["success_per_seed"] == [0.98, 0.94]
    assert lift["optimism_mean"] == pytest.approx((0.02 + 0.01) / 2)
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
    monkeypatch.setattr("sir.data.collect.collect", lambda cfg: types.SimpleNamespace(episode_lengths=[]))
    report = tmp_path / "results.md"
    args = ["--root", str(tmp_path / "data"), "--out", str(tmp_path / "runs"), "--report", str(report),
            "--summaries", str(summaries), "--training-seeds", "0,1"]
    rows = results.main(["--tasks", "Lift", *args])
    assert rows == [lift] and "Lift: done before" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists() and not ran
    page = report.read_text()
    assert "| Lift | act `cpu` | 200 (7296) | 2000 x 64 | 6 min | **96%** (3) | 98, 94 (100 ep. each) |" in page
    assert "Lift: seed 0 `b6fa36c`, seed 1 `b6fa36c`" in page
    # How best_model was chosen among the evaluations during training: the confirmed candidates.
    assert ("- **Lift**, seed 0 (20 episodes each): 500: 100%; the 2 best confirmed on 40 other episodes "
            "(500: 90.0%, 1000: 97.5%), best_model step 1000; test 98%") in page
    with pytest.raises(Trained):
        results.main(["--tasks", "Lift,Stack", *args])
    assert ran == ["Stack_s0"]  # its recipe is not the one its summary was made with
    with pytest.raises(Trained):  # a third seed runs; the two done are kept
        results.main(["--tasks", "Lift", *args[:-1], "0,1,2"])
    assert ran == ["Stack_s0", "Lift_s2"]


def test_a_seed_records_the_command_that_ran_and_the_demos_it_trained_on(tmp_path, monkeypatch):
    """The summary keeps what ran: sir.results.run's own command line and the commands it amounts
    to, with this run's folders and --train-args; the demos are those trained on, not those
    recorded. A form rewritten by hand goes elsewhere (the validation summaries' "reproduce")."""
    import shlex
    from pathlib import Path

    run = types.SimpleNamespace(best_model=tmp_path / "runs" / "Lift_s0" / "best_model", best_step=2,
                                frames_per_dataset={"lift_200": 3600}, selection=None, last_k=None,
                                datasets=[{"repo_id": "lift_200", "episodes": list(range(100)), "frames": 3600}])
    run.best_model.mkdir(parents=True)
    monkeypatch.setattr(results, "train_resuming", lambda cfg, task_dir: run)
    monkeypatch.setattr(results, "run_times", lambda path: (60.0, 5.0))
    monkeypatch.setattr(results, "learning_curve", lambda path: [])
    monkeypatch.setattr(results, "_final_eval", lambda cfg, model, max_steps: {
        "success_rate": 1.0, "success_ci95": [0.9, 1.0], "episodes": 100, "avg_length": 40.0})
    monkeypatch.setattr("sir.data.collect.collect", lambda cfg: types.SimpleNamespace(episode_lengths=[40] * 200))
    argv = ["--tasks", "Lift", "--training-seeds", "0", "--root", str(tmp_path / "data"), "--out",
            str(tmp_path / "runs"), "--summaries", str(tmp_path / "summaries"), "--report", str(tmp_path / "r.md"),
            "--last-k", "2", "--train-args", "--episodes lift_200=0:100"]
    results.main(argv)
    summary = json.loads((tmp_path / "summaries" / "Lift.json").read_text())
    seed = summary["runs"][0]
    assert seed["command"] == "python -m sir.results.run " + shlex.join(argv)
    assert seed["commands"][1].endswith(f"--checkpoint-dir {tmp_path / 'runs'} --seed 0 --last-k 2 "
                                        "--episodes lift_200=0:100")
    assert seed["demos"] == summary["demos"] == 100  # of the 200 recorded
    # From Python, the command is the config's own flags.
    Path(tmp_path / "summaries" / "Lift.json").unlink()
    results.run_results(results.parse_config(argv))
    again = json.loads((tmp_path / "summaries" / "Lift.json").read_text())["runs"][0]["command"]
    assert again.startswith("python -m sir.results.run --tasks Lift --root ") and "--last-k 2" in again


def test_the_committed_summaries_are_the_pages_rows():
    """docs/results/<Task>.json hold the measured rows; the page's table is written from them."""
    from pathlib import Path

    from sir.results.recipes import TASKS
    from sir.results.report import BEGIN, END, collect_results, table

    docs = Path(__file__).resolve().parents[1] / "docs"
    rows = collect_results(docs / "results")
    for r in rows:  # each matches its recipe as it is now, so make results keeps its seeds
        assert results.matches(r, TASKS[r["task"]].train_settings(), f"{r['task'].lower()}_200",
                               results.ResultsConfig())
        assert r["test_seed"] == 1_000_000 and r["test_episodes"] >= 100
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


def test_the_commit_a_result_records_is_dirty_for_code_changes_not_for_the_results_it_wrote(tmp_path):
    """sir.results writes its summaries and page into docs/ of its own checkout: that must not
    mark the runs after the first as made by changed code."""
    import subprocess

    from sir.runtime import sir_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("table\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    assert sir_commit(tmp_path)["dirty"] is False
    (tmp_path / "docs" / "results.md").write_text("table, one more row\n")
    (tmp_path / "docs" / "new.json").write_text("{}")
    assert sir_commit(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert sir_commit(tmp_path) == {"commit": sir_commit(tmp_path)["commit"], "dirty": True}


def test_the_optimism_of_each_step_of_the_choice_is_paired_per_run():
    """The page's optimism table: per run, the score that chose best_model minus its test
    score, for the evaluation during training and for the confirmation of the chosen step."""
    from sir.results.report import confirming_success, optimism

    def run(choosing, confirmed, test):
        return {"choosing_success": choosing, "success_rate": test,
                "selection": {"chosen_step": 20, "candidates": [
                    {"step": 10, "confirmation": {"success_rate": 0.0}},
                    {"step": 20, "confirmation": {"success_rate": confirmed}}]}}

    rows = [{"runs": [run(0.8, 0.9, 0.7), run(0.9, 0.9, 0.9)]}, {"runs": [run(1.0, 0.75, 0.9)]}]
    assert confirming_success(rows[1]["runs"][0]) == 0.75
    text = optimism(rows)
    during, confirming = text.splitlines()[-2:]
    assert "| 3 | +6.7 points |" in during and "| 2 / 1 / 0 |" in during
    assert "| 3 | +1.7 points |" in confirming and "| 1 / 1 / 1 |" in confirming  # +20, 0, -15
    summary = results.summarize_task({}, [{**r, "seed": i, "episodes": 10, "frames": 1, "train_wall_s": 1.0}
                                          for i, r in enumerate(rows[0]["runs"] + rows[1]["runs"])])
    assert round(summary["optimism_mean"], 4) == round((0.1 + 0 + 0.1) / 3, 4)
    assert round(summary["confirming_optimism_mean"], 4) == round((0.2 + 0 - 0.15) / 3, 4)


def test_the_validation_optimism_tables_means_are_sir_eval_paireds():
    """The earlier optimism table of docs/results.md (14 runs on the validation seeds) is
    written by hand; the means, intervals and sign counts its text gives are compare_arms's
    on the table's own figures."""
    import re
    from pathlib import Path

    from sir.eval.paired import compare_arms

    page = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    rows = page.partition("| run | before: the best 20-episode")[2].partition("Where the two rules")[0]
    before, after = [], []
    for line in rows.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 3 or "not run" in cells[2]:
            continue
        for column, pairs in ((1, before), (2, after)):
            chose, held_out = re.search(r"step \d+, ([\d.]+) / ([\d.]+)", cells[column]).groups()
            pairs.append((float(held_out) / 100, float(chose) / 100))
    assert len(before) == len(after) == 14
    for name, pairs in (("after", after), ("before", before)):
        cmp = compare_arms(*zip(*pairs, strict=True))
        lo, hi = (100 * v for v in cmp["mean_ci95"])
        counts = f"{cmp['b_better']}, {cmp['equal']}, {cmp['a_better']}"
        stated = {"after": f"+{100 * cmp['mean_difference']:.1f} points after (95% t-interval {lo:+.1f} to {hi:+.1f}",
                  "before": f"+{100 * cmp['mean_difference']:.1f} before ({lo:.1f} to {hi:+.1f}; {counts})"}[name]
        assert stated in " ".join(page.split()), stated
