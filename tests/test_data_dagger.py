"""Part 2: DAgger datasets train on their successful human corrections."""

import numpy as np
import pytest
import torch

from sir.data import make_mixture
from sir.data.mixture.config import DataConfig
from sir.data.mixture.weights import DEFAULT_MODE, check_labels, select_frames
from sir.errors import UserError


def expected_frames(episodes):
    """Frame indices of human frames in successful episodes, computed the plain way."""
    frames, start = [], 0
    for sources, success in episodes:
        frames += [start + t for t, s in enumerate(sources) if s == 1 and success == 1]
        start += len(sources)
    return frames


def test_only_human_frames_of_successful_episodes_are_samples(data_root, data_dagger, data_dagger_episodes, capsys):
    mix = make_mixture(DataConfig(repo_ids=data_dagger, root=data_root))
    out = capsys.readouterr().out
    assert f"{data_dagger}: Filtered 4 episodes → 2 successful human corrections (22 frames)" in out
    frames = [int(mix[i]["index"]) for i in range(len(mix))]
    assert frames == expected_frames(data_dagger_episodes)
    assert all(int(mix[i]["source"]) == 1 and int(mix[i]["success"]) == 1 for i in range(len(mix)))
    info = mix.infos[0]
    assert info.used_episodes == [0, 2] and info.frames == 22
    assert info.dagger == {"episodes": 4, "policy_frames": 25, "human_frames": 32, "successful_episodes": 3,
                           "kept_episodes": 2, "kept_frames": 22, "takeovers": 2, "autonomous_successes": 1}


def test_windows_read_the_policy_frames_before_a_takeover(data_root, data_dagger):
    mix = make_mixture(DataConfig(repo_ids=data_dagger, root=data_root), verbose=False,
                       delta_timestamps={"observation.state": [-0.1, -0.05, 0.0]})
    first = mix[0]  # the first human frame of episode 0, after 8 policy frames
    assert int(first["frame_index"]) == 8
    assert not first["observation.state_is_pad"].any()
    raw = mix.stores[0].columns["observation.state"]
    assert torch.equal(first["observation.state"], raw[6:9])


def test_a_dataset_without_corrections_is_an_error_naming_it(data_root, data_dagger_failed):
    with pytest.raises(UserError, match=f"'{data_dagger_failed}' has no successful human corrections"):
        make_mixture(DataConfig(repo_ids=data_dagger_failed, root=data_root), verbose=False)


def test_the_filter_can_be_turned_off(data_root, data_dagger, capsys):
    mix = make_mixture(DataConfig(repo_ids=data_dagger, root=data_root, no_dagger_filter=True))
    assert len(mix) == 57 and mix.infos[0].dagger is None
    assert "DAgger filter off, using all 4 episodes (57 frames)" in capsys.readouterr().out


def test_plain_datasets_are_announced_as_such(data_root, data_demos, capsys):
    make_mixture(DataConfig(repo_ids=data_demos, root=data_root))
    assert f"{data_demos}: not a DAgger dataset, using all 5 episodes" in capsys.readouterr().out


def test_bool_labels_are_accepted(data_root, data_dagger_bool):
    mix = make_mixture(DataConfig(repo_ids=data_dagger_bool, root=data_root), verbose=False)
    assert [int(mix[i]["index"]) for i in range(len(mix))] == [3, 4, 5, 6, 7]


def test_labels_come_from_the_parquet_columns_without_reading_samples(monkeypatch, data_root, data_dagger):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from sir.data.store.frames import FrameStore

    def forbidden(*args, **kwargs):
        raise AssertionError("per-frame reads while filtering")

    monkeypatch.setattr(LeRobotDataset, "__getitem__", forbidden)
    monkeypatch.setattr(FrameStore, "get", forbidden)
    assert make_mixture(DataConfig(repo_ids=data_dagger, root=data_root), verbose=False).num_frames == 22


def test_success_marked_only_on_the_last_frame_counts_for_the_episode():
    episode = np.array([0, 0, 0, 0, 1, 1])
    source = np.array([0, 1, 1, 1, 1, 1])
    success = np.array([0, 0, 0, 1, 0, 0])
    keep, _, summary = select_frames(DEFAULT_MODE, episode, source, success, np.ones(6, bool))
    assert keep.tolist() == [False, True, True, True, False, False]
    assert summary.kept_episodes == 1 and summary.successful_episodes == 1


def test_labels_other_than_zero_and_one_are_refused():
    assert check_labels("d", "source", np.array([[True], [False]])).tolist() == [1, 0]
    with pytest.raises(UserError, match="'source' values \\[2\\]"):
        check_labels("d", "source", np.array([0, 2, 1]))
