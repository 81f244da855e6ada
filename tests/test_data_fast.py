"""Part 7: the in-memory fast path returns what LeRobotDataset returns."""

import numpy as np
import pytest
import torch

from sir.data import make_dataloader, make_mixture
from sir.data.mixture.config import DataConfig
from sir.data.video import video_backend

CAMERA = "observation.images.agentview"


def assert_same_samples(mix, lerobot_dataset, indices):
    for i in indices:
        ours, theirs = mix[i], lerobot_dataset[i]
        assert int(ours.pop("dataset_index")) == 0
        assert ours.keys() == theirs.keys(), ours.keys() ^ theirs.keys()
        for key, value in theirs.items():
            if isinstance(value, torch.Tensor):
                assert ours[key].dtype == value.dtype and ours[key].shape == value.shape, key
                assert torch.equal(ours[key], value), (i, key)
            else:
                assert ours[key] == value, (i, key)


def lerobot(data_root, repo_id, delta_timestamps):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=data_root / repo_id, delta_timestamps=delta_timestamps,
                          video_backend=video_backend())


@pytest.mark.parametrize(
    "delta_timestamps",
    [
        None,
        # ACT-like: an action chunk running past the episode's end.
        {"action": [i / 20 for i in range(30)]},
        # Diffusion-like: observation history before the episode's start, shared offsets.
        {"observation.state": [-0.1, -0.05, 0.0], "observation.environment_state": [-0.1, -0.05, 0.0],
         "action": [-0.05, 0.0, 0.05, 0.1], "next.reward": [0.0, 0.05]},
    ],
)
def test_state_samples_equal_lerobot_dataset(data_root, data_demos, delta_timestamps):
    mix = make_mixture(DataConfig(repo_ids=data_demos, root=data_root), delta_timestamps=delta_timestamps,
                       verbose=False)
    assert_same_samples(mix, lerobot(data_root, data_demos, delta_timestamps), range(len(mix)))


def test_dagger_samples_equal_lerobot_dataset_unfiltered(data_root, data_dagger):
    dt = {"action": [i / 20 for i in range(12)]}
    mix = make_mixture(DataConfig(repo_ids=data_dagger, root=data_root, no_dagger_filter=True), delta_timestamps=dt,
                       verbose=False)
    assert_same_samples(mix, lerobot(data_root, data_dagger, dt), range(len(mix)))


def test_video_samples_equal_lerobot_dataset(data_root, data_camera):
    dt = {CAMERA: [-0.05, 0.0], "observation.state": [-0.05, 0.0], "action": [i / 20 for i in range(5)]}
    mix = make_mixture(DataConfig(repo_ids=data_camera, root=data_root), delta_timestamps=dt, verbose=False)
    assert_same_samples(mix, lerobot(data_root, data_camera, dt), [0, 1, 7, 8, 13])
    plain = make_mixture(DataConfig(repo_ids=data_camera, root=data_root), verbose=False)
    assert_same_samples(plain, lerobot(data_root, data_camera, None), [0, 9])
    assert plain[0][CAMERA].shape == (3, 32, 32)


def test_png_image_samples_equal_lerobot_dataset(data_root, data_camera_png):
    dt = {CAMERA: [-0.05, 0.0], "action": [0.0, 0.05]}
    mix = make_mixture(DataConfig(repo_ids=data_camera_png, root=data_root), delta_timestamps=dt, verbose=False)
    assert_same_samples(mix, lerobot(data_root, data_camera_png, dt), range(len(mix)))


def test_padding_follows_the_episode_bounds(data_root, data_demos):
    mix = make_mixture(DataConfig(repo_ids=data_demos, root=data_root),
                       delta_timestamps={"action": [-0.05, 0.0, 0.05]}, verbose=False)
    last_of_first_episode = mix[19]
    assert last_of_first_episode["action_is_pad"].tolist() == [False, False, True]
    actions = mix.stores[0].columns["action"]
    assert torch.equal(last_of_first_episode["action"], actions[[18, 19, 19]])
    assert mix[20]["action_is_pad"].tolist() == [True, False, False]


def test_loader_workers_get_the_same_batches(data_root, data_camera):
    mix = make_mixture(DataConfig(repo_ids=data_camera, root=data_root), delta_timestamps={CAMERA: [-0.05, 0.0]},
                       verbose=False)
    order = list(range(len(mix)))
    single = list(torch.utils.data.DataLoader(mix, batch_size=7, sampler=order))
    workers = list(torch.utils.data.DataLoader(mix, batch_size=7, sampler=order, num_workers=2))
    for a, b in zip(single, workers, strict=True):
        for key, value in a.items():
            assert torch.equal(value, b[key]) if isinstance(value, torch.Tensor) else value == b[key]


def test_a_training_pass_visits_every_frame_once_by_default(data_root, data_demos, data_demos_b):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root), verbose=False)
    seen = np.concatenate([
        (b["dataset_index"] * 1000 + b["index"]).numpy() for b in make_dataloader(mix, batch_size=10, drop_last=False)
    ])
    assert len(seen) == len(np.unique(seen)) == len(mix)


def test_image_transforms_apply_to_camera_frames(data_root, data_camera):
    mix = make_mixture(DataConfig(repo_ids=data_camera, root=data_root),
                       image_transforms=lambda image: image * 0 + 0.5, verbose=False)
    sample = mix[3]
    assert torch.all(sample[CAMERA] == 0.5) and not torch.all(sample["observation.state"] == 0.5)
