"""lerobot 0.6's own DAgger datasets train in sir: one written by lerobot 0.6.1's writer as
``lerobot-rollout --strategy.type=dagger`` records (tests/fixtures/lerobot_0.6.1/rollout_dagger,
no outcome), and ones written by lerobot's writer here with an outcome (conftest's
``lerobot_dagger_dataset``); sir.data.verify shows how their labels are read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROLLOUT = Path(__file__).parent / "fixtures" / "lerobot_0.6.1" / "rollout_dagger"
# make_fixtures.py's ROLLOUT_EPISODES: (policy, person, policy) frames per episode.
ROLLOUT_HUMAN_FRAMES = 10 + 8
ROLLOUT_FRAMES = 22 + 15 + 18


@pytest.fixture
def rollout_root(tmp_path) -> Path:
    shutil.copytree(ROLLOUT, tmp_path / "data" / "rollout_dagger")
    return tmp_path / "data"


def test_lerobot_0_6_1s_rollout_dataset_reads_intervention_as_source(rollout_root):
    from sir.data import make_mixture
    from sir.data.mixture.config import DataConfig

    for mode, frames in (("hg-dagger", ROLLOUT_HUMAN_FRAMES), ("iwr", ROLLOUT_FRAMES), ("all", ROLLOUT_FRAMES)):
        mix = make_mixture(DataConfig(repo_ids="rollout_dagger", root=rollout_root, dagger_mode=mode), verbose=False)
        assert mix.infos[0].frames == frames, mode
        summary = mix.infos[0].dagger
        if summary is not None:
            assert (summary["human_frames"], summary["takeovers"]) == (ROLLOUT_HUMAN_FRAMES, 2)


def test_verify_shows_how_the_labels_are_read(rollout_root, capsys):
    from sir.data.verify import main

    main(["--repo-ids", "rollout_dagger", "--root", str(rollout_root), "--dagger-mode", "hg-dagger",
          "--num-samples", "50"])
    out = capsys.readouterr().out
    assert "labels of rollout_dagger: source <- intervention (human while true), success not recorded" in out
    assert f"human {ROLLOUT_HUMAN_FRAMES} frames" in out and "outcomes not recorded; hg-dagger" in out


def _train(args: list[str], tmp_path: Path) -> Path:
    from sir.training.train_policy import main as train

    return train([*args, "--policy", "act", "--preset", "tiny", "--batch-size", "4", "--training-steps", "2",
                  "--eval-freq", "0", "--eval-episodes", "1", "--max-steps", "5", "--device", "cpu",
                  "--checkpoint-dir", str(tmp_path / "runs")])


def test_the_rollout_dataset_trains_and_evaluates_with_hg_dagger(rollout_root, tmp_path, capsys):
    run = _train(["--repo-ids", "rollout_dagger", "--root", str(rollout_root), "--env", "Lift",
                  "--dagger-mode", "hg-dagger"], tmp_path)
    out = capsys.readouterr().out
    assert "rollout_dagger: DAgger labels source <- intervention (human while true), success not recorded" in out
    assert "Evaluation Results (step 2)" in out
    assert json.loads((run / "final_model" / "sir_checkpoint.json").read_text())["datasets"][0]["frames"] == \
        ROLLOUT_HUMAN_FRAMES


@pytest.mark.parametrize("mode", ["successful-corrections", "sirius"])
def test_modes_that_need_outcomes_refuse_it_in_one_sentence(rollout_root, tmp_path, capsys, mode):
    with pytest.raises(SystemExit) as exc:
        _train(["--repo-ids", "rollout_dagger", "--root", str(rollout_root), "--env", "Lift", "--dagger-mode", mode],
               tmp_path)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert "'rollout_dagger'" in err and "no outcome" in err and f"--dagger-mode {mode} needs" in err


@pytest.mark.parametrize("outcome", ["next.success", "next.reward"])
def test_a_lerobot_dagger_dataset_with_outcomes_trains_with_sirius(lerobot_dagger_dataset, data_root, tmp_path,
                                                                    capsys, outcome):
    from sir.data.record.synthetic import dagger_episode

    episodes = [dagger_episode((0, 10), (1, 8), success=True), dagger_episode((0, 6), (1, 6), success=False),
                dagger_episode((0, 9), success=True)]
    repo = lerobot_dagger_dataset(f"lerobot_sirius_{outcome}", episodes, outcome)
    run = _train(["--repo-ids", repo, "--root", str(data_root), "--env", "Lift", "--dagger-mode", "sirius"], tmp_path)
    out = capsys.readouterr().out
    assert "removed 1 failed episode (12 frames)" in out
    info = json.loads((run / "final_model" / "sir_checkpoint.json").read_text())
    assert info["datasets"][0]["frames"] == 27  # the two successful episodes, whole
