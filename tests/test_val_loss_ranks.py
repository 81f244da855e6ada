"""benchmarks/val_loss_ranks.py: its rank correlations (per run and pooled over runs by ranks
within run, exact permutation p-values) and, end to end on a tiny run, that the loss it computes
for a checkpoint is the ``val/loss`` training logged at that step."""

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "val_loss_ranks.py"


@pytest.fixture(scope="module")
def ranks():
    spec = importlib.util.spec_from_file_location("val_loss_ranks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_run_is_scipys_spearman_with_the_exact_p_of_its_orderings(ranks):
    perfect = ranks.rank_correlation([[0.5, 0.4, 0.3, 0.2, 0.1]], [[0.6, 0.7, 0.8, 0.85, 0.9]])
    # Lower loss, higher success: rho -1, reached by 2 of the 120 orderings (either sign).
    assert perfect["rho"] == pytest.approx(-1) and perfect["p"] == pytest.approx(2 / 120)
    loss, success = [0.1, 0.2, 0.3, 0.4, 0.5], [0.9, 0.85, 0.8, 0.6, 0.7]
    near = ranks.rank_correlation([loss], [success])
    assert near["rho"] == pytest.approx(spearmanr(loss, success).statistic) == pytest.approx(-0.9)
    assert near["p"] == pytest.approx(10 / 120)  # not scipy's t approximation (0.037): 0.9 misses 0.05
    tied = ranks.rank_correlation([[0.5, 0.4, 0.3, 0.2, 0.1]], [[0.7, 0.7, 0.95, 0.8, 0.7]])
    assert tied["rho"] == pytest.approx(spearmanr([0.5, 0.4, 0.3, 0.2, 0.1], [0.7, 0.7, 0.95, 0.8, 0.7]).statistic)


def test_a_run_with_the_same_success_everywhere_has_no_rho_and_leaves_the_pool(ranks):
    lift = ranks.rank_correlation([[0.3, 0.2, 0.1, 0.05]], [[1.0, 1.0, 1.0, 1.0]])
    assert lift["rho"] is None and lift["p"] is None and "100% at every checkpoint" in lift["note"]
    pooled = ranks.rank_correlation([[0.3, 0.2, 0.1], [3.0, 2.0, 1.0, 0.5]], [[1.0, 1.0, 1.0], [0.5, 0.6, 0.7, 0.9]])
    alone = ranks.rank_correlation([[3.0, 2.0, 1.0, 0.5]], [[0.5, 0.6, 0.7, 0.9]])
    assert (pooled["rho"], pooled["p"], pooled["runs"], pooled["runs_left_out"]) == (alone["rho"], alone["p"], 1, 1)


def test_the_pool_ranks_within_runs_and_its_p_counts_every_within_run_ordering(ranks):
    # Two runs on different loss levels, with ties in success: brute force over 4! x 5! orderings.
    losses = [[2.0, 2.5, 1.0, 3.0], [0.30, 0.10, 0.20, 0.50, 0.40]]
    successes = [[0.7, 0.7, 0.9, 0.6], [0.8, 0.85, 0.85, 0.6, 0.75]]
    got = ranks.rank_correlation(losses, successes)

    def pooled_rho(ls):
        return spearmanr(np.concatenate([rankdata(x) for x in ls]),
                         np.concatenate([rankdata(s) for s in successes])).statistic

    observed = pooled_rho(losses)
    rhos = [pooled_rho([list(a), list(b)]) for a in itertools.permutations(losses[0])
            for b in itertools.permutations(losses[1])]
    assert got["rho"] == pytest.approx(observed) and got["p_method"] == "exact"
    assert got["p"] == pytest.approx(np.mean(np.abs(rhos) >= abs(observed) - 1e-9))
    # Ranks within run: adding a constant to one run's losses changes nothing.
    shifted = ranks.rank_correlation([[v + 100 for v in losses[0]], losses[1]], successes)
    assert (shifted["rho"], shifted["p"]) == (got["rho"], got["p"])


@pytest.mark.slow
def test_a_checkpoints_loss_is_the_val_loss_training_logged_at_its_step(ranks, lift_demos, tmp_path):
    from sir.training import TrainConfig, train

    root, repo_id = lift_demos  # 6 episodes: the last 2 held out
    run = train(TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=8,
                            training_steps=12, eval_freq=4, save_freq=4, no_eval=True, val_episodes=2,
                            checkpoint_dir=str(tmp_path), run_name="run", device="cpu"))
    metrics = run.run_dir / "metrics.jsonl"
    logged = {r["step"]: r["val/loss"] for r in map(json.loads, metrics.read_text().splitlines()) if "val/loss" in r}
    with metrics.open("a") as f:  # as if evaluated: success rising as the step does
        f.writelines(json.dumps({"step": s, "eval/success_rate": s / 20}) + "\n" for s in (4, 8, 12))
    out = tmp_path / "ranks.json"
    result = ranks.main(["--runs", str(run.run_dir), "--root", str(root), "--held-out", repo_id,
                         "--episodes", f"{repo_id}=4:6", "--out", str(out)])
    rows = result["runs"][0]["checkpoints"]
    assert [r["step"] for r in rows] == [4, 8, 12]
    assert [r["val_loss"] for r in rows] == pytest.approx([logged[s] for s in (4, 8, 12)], rel=1e-5)
    assert [r["success_rate"] for r in rows] == [0.2, 0.4, 0.6]
    assert json.loads(out.read_text())["pooled"]["Lift"]["run_names"] == ["run"]
    with pytest.raises(SystemExit, match="trained on episodes"):  # the episodes it trained on are refused
        ranks.main(["--runs", str(run.run_dir), "--root", str(root), "--held-out", repo_id])
