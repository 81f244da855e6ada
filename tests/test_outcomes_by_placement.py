"""scripts/outcomes_by_placement.py: per-episode outcomes kept in sir's summaries grouped by where
the object starts, the positions from PickPlaceCan's own resets."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "outcomes_by_placement.py"


def load_script():
    spec = importlib.util.spec_from_file_location("outcomes_by_placement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_outcomes_are_grouped_by_each_episodes_own_position():
    script = load_script()
    position = {10: 0.0, 11: 0.1, 12: 0.9, 13: 1.0}
    models = [("a", 10, "1100"), ("b", 10, "1110")]
    low, high = script.by_bins(models, position, 2)
    assert (low["episodes"], low["success"], low["per_model"]) == (2, 1.0, {"a": (2, 2), "b": (2, 2)})
    assert (high["episodes"], high["success"], high["per_model"]) == (2, 0.25, {"a": (0, 2), "b": (1, 2)})
    # the largest position falls in the last bin, not past it
    assert [r["episodes"] for r in script.by_bins([("a", 12, "11")], {12: 0.0, 13: 1.0}, 3)] == [1, 0, 1]


def test_both_summary_shapes_are_read_and_only_the_tasks_models(tmp_path):
    script = load_script()
    results = tmp_path / "PickPlaceCan.json"
    results.write_text(json.dumps({"task": "PickPlaceCan", "test_seed": 5, "runs": [
        {"seed": 0, "test_outcomes": "10"}, {"seed": 1, "test_outcomes": "01"}]}))
    several = tmp_path / "models.json"
    several.write_text(json.dumps({"eval_seed": 7, "models": [
        {"task": "Stack", "training_seed": 0, "outcomes": "1"},
        {"task": "PickPlaceCan", "training_seed": 2, "outcomes": "11"}]}))
    assert [m[1:] for m in script.model_outcomes(results, "PickPlaceCan")] == [(5, "10"), (5, "01")]
    assert script.model_outcomes(results, "Stack") == []
    assert [m[1:] for m in script.model_outcomes(several, "PickPlaceCan")] == [(7, "11")]


def test_pick_place_can_positions_come_from_its_resets_and_bad_input_ends_in_one_sentence(tmp_path, capsys):
    script = load_script()
    summary = tmp_path / "PickPlaceCan.json"
    summary.write_text(json.dumps({"task": "PickPlaceCan", "test_seed": 200000, "runs": [
        {"seed": 0, "test_outcomes": "1010"}]}))
    rows = script.main(["--task", "PickPlaceCan", "--object", "Can", "--axis", "y", "--bins", "2", str(summary)])
    assert sum(r["episodes"] for r in rows) == 4
    assert sum(ok for r in rows for ok, _ in r["per_model"].values()) == 2
    positions = script.initial_positions("PickPlaceCan", "Can", 1, [200000, 200001])
    assert positions == script.initial_positions("PickPlaceCan", "Can", 1, [200001, 200000])  # the seed fixes it
    assert len(set(positions.values())) == 2
    capsys.readouterr()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"task": "PickPlaceCan", "test_seed": 200000, "runs": [{"seed": 0}]}))
    for argv in (["--task", "PickPlaceCan", "--object", "Bread", str(summary)],
                 ["--task", "Stack", "--object", "Can", str(summary)],
                 ["--task", "PickPlaceCan", "--object", "Can", str(tmp_path / "missing.json")],
                 ["--task", "PickPlaceCan", "--object", "Can", str(broken)],
                 ["--task", "PickPlaceCan", "--object", "Can", str(old)],
                 ["--task", "PickPlaceCan", "--object", "Can", str(summary), str(summary)]):
        with pytest.raises(SystemExit) as exit_info:
            script.main(argv)
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
