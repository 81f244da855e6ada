"""Part 8: `python -m sir.data.verify` reports a mixture and refuses bad ones with exit code 2."""

import pytest

from sir.data.verify import main as verify


def test_verify_prints_datasets_stats_and_realized_shares(data_root, data_demos, data_dagger, capsys):
    code = verify(["--repo-ids", f"{data_demos},{data_dagger}", "--root", str(data_root),
                   "--dataset-weights", "1,3", "--num-samples", "2000"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Filtered 4 episodes → 2 successful human corrections (22 frames)" in out
    assert "5/5" in out and "2/4" in out and "22/57" in out  # episodes and frames used/total
    assert "policy 25 / human 32 frames" in out
    assert "Normalization statistics over the 137 used frames" in out and "observation.state" in out
    row = next(line for line in out.splitlines() if line.strip().startswith(data_dagger) and "%" in line)
    requested, realized = (float(cell.rstrip("%")) for cell in row.split()[1:3])
    assert requested == 75.0 and abs(realized - 75.0) < 4
    assert "One batch loaded" in out and out.rstrip().endswith("OK: the datasets can be trained on together.")


@pytest.mark.parametrize(
    "datasets, extra, words",
    [
        (["data_demos", "missing"], [], "Dataset 'missing' not found"),
        (["data_demos", "data_fps10"], [], "records at 10 fps"),
        (["data_demos", "data_no_env_state"], [], "lacks the policy input 'observation.environment_state'"),
        (["data_demos", "data_demos_b"], ["--dataset-weights", "1"],
         "dataset_weights length must match repo_ids length"),
        (["data_dagger_failed"], [], "no successful human corrections"),
        (["data_demos"], ["--episodes", "demos=2:2"], "selects no episodes of 'demos'"),
    ],
)
def test_incompatibilities_exit_with_code_2_and_one_sentence(request, data_root, capsys, datasets, extra, words):
    # Names starting with data_ are fixtures (which write the dataset); others are plain ids.
    repo_ids = [request.getfixturevalue(d) if d.startswith("data_") else d for d in datasets]
    with pytest.raises(SystemExit) as exc:
        verify(["--repo-ids", ",".join(repo_ids), "--root", str(data_root), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and words in err
