"""Issue 15 part 3: camera frames decoded once (memory, then disk) give LeRobotDataset's samples."""

import pickle

import numpy as np
import pytest
import torch

from sir.data import make_mixture
from sir.data.mixture.config import DataConfig
from sir.data.video import video_backend

CAMERA = "observation.images.agentview"
# Windows that run past both ends of every episode (episodes of 4 to 7 frames at 20 fps):
# camera history before the start, an action chunk past the end.
WINDOWS = {
    CAMERA: [-0.15, -0.05, 0.0],
    "observation.state": [-0.15, -0.05, 0.0],
    "action": [i / 20 for i in range(8)],
}


def lerobot(data_root, repo_id, delta_timestamps, image_transforms=None):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=data_root / repo_id, delta_timestamps=delta_timestamps,
                          image_transforms=image_transforms, video_backend=video_backend())


def assert_same_samples(mix, dataset):
    """Every index: the same keys, dtypes, shapes and values, camera frames included, exactly.

    Exact, not within 1/255: lerobot returns uint8 / 255 as float32, the cache keeps that
    uint8 (recovered by rounding x * 255, which is exact) and divides it the same way.
    """
    assert len(mix) == len(dataset)
    for i in range(len(mix)):
        ours, theirs = mix[i], dataset[i]
        ours.pop("dataset_index")
        assert ours.keys() == theirs.keys(), ours.keys() ^ theirs.keys()
        for key, value in theirs.items():
            if isinstance(value, torch.Tensor):
                assert ours[key].dtype == value.dtype and ours[key].shape == value.shape, (i, key)
                assert torch.equal(ours[key], value), (i, key)
            else:
                assert ours[key] == value, (i, key)


def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded a video that should have been cached")

    monkeypatch.setattr("lerobot.datasets.video_utils.decode_video_frames", refuse)


def test_frames_in_memory_give_lerobot_samples_at_every_index(data_root, data_camera_b, tmp_path, monkeypatch):
    mix = make_mixture(DataConfig(repo_ids=data_camera_b, root=data_root), delta_timestamps=WINDOWS, verbose=False)
    report = mix.cache_frames(budget_gb=1, cache_dir=tmp_path)
    assert (report.episodes, report.decoded, report.on_disk) == (3, 3, 0)
    assert report.in_memory == 16 * 3 * 32 * 32  # 16 frames of a 32x32 RGB camera, as uint8
    assert not any(tmp_path.iterdir())  # nothing written within the budget
    dataset = lerobot(data_root, data_camera_b, WINDOWS)
    no_decoding(monkeypatch)
    assert_same_samples(mix, dataset)
    assert mix[0][f"{CAMERA}_is_pad"].tolist() == [True, True, False]


def test_the_disk_cache_gives_the_same_samples_and_is_reused(data_root, data_camera_b, tmp_path, monkeypatch):
    mix = make_mixture(DataConfig(repo_ids=data_camera_b, root=data_root), delta_timestamps=WINDOWS, verbose=False)
    report = mix.cache_frames(budget_gb=0, cache_dir=tmp_path)
    assert (report.in_memory, report.on_disk, report.decoded) == (0, 16 * 3 * 32 * 32, 3)
    files = sorted((tmp_path / data_camera_b / CAMERA).glob("*.npy"))
    assert [f.name[:8] for f in files] == ["ep000000", "ep000001", "ep000002"]
    assert not list((tmp_path / data_camera_b / CAMERA).glob(".*"))  # no temporary file left
    dataset = lerobot(data_root, data_camera_b, WINDOWS)
    assert_same_samples(mix, dataset)

    # A second run reads the files and decodes nothing, whether they fit in memory or not.
    no_decoding(monkeypatch)
    for budget in (0, 1):
        again = make_mixture(DataConfig(repo_ids=data_camera_b, root=data_root), delta_timestamps=WINDOWS,
                             verbose=False)
        report = again.cache_frames(budget_gb=budget, cache_dir=tmp_path)
        assert report.decoded == 0
        assert_same_samples(again, dataset)


def test_a_budget_splits_episodes_between_memory_and_disk(data_root, data_camera_b, tmp_path):
    # Room for 7 frames: episode 0 (5 frames) stays in memory; 7 and 4 more frames would not fit.
    one_episode = 7 * 3 * 32 * 32 / (1 << 30)
    mix = make_mixture(DataConfig(repo_ids=data_camera_b, root=data_root), delta_timestamps=WINDOWS, verbose=False)
    report = mix.cache_frames(budget_gb=one_episode, cache_dir=tmp_path)
    assert report.in_memory == 5 * 3 * 32 * 32 and report.on_disk == 11 * 3 * 32 * 32
    assert_same_samples(mix, lerobot(data_root, data_camera_b, WINDOWS))


def test_a_changed_dataset_under_the_same_name_gets_its_own_frames(tmp_path, monkeypatch):
    from sir.data.record.synthetic import make_synthetic_dataset

    cache = tmp_path / "cache"
    for seed in (1, 2):  # same name, same episode lengths, other pixels
        root = tmp_path / f"root{seed}"
        make_synthetic_dataset(root, "cam", [4, 3], cameras=["agentview"], image_size=16, seed=seed)
        mix = make_mixture(DataConfig(repo_ids="cam", root=root), delta_timestamps=WINDOWS, verbose=False)
        assert mix.cache_frames(budget_gb=0, cache_dir=cache).decoded == 2
        assert_same_samples(mix, lerobot(root, "cam", WINDOWS))
    # The first dataset's files were replaced, not kept beside the new ones.
    assert len(list((cache / "cam" / CAMERA).glob("*.npy"))) == 2


def test_samples_without_a_camera_window_and_with_image_transforms(data_root, data_camera, tmp_path):
    def transform(image):
        return image.flip(-1) * 0.5

    mix = make_mixture(DataConfig(repo_ids=data_camera, root=data_root), image_transforms=transform, verbose=False)
    mix.cache_frames(budget_gb=1, cache_dir=tmp_path)
    assert mix[0][CAMERA].shape == (3, 32, 32)
    assert_same_samples(mix, lerobot(data_root, data_camera, None, image_transforms=transform))


def test_mapped_frames_reach_worker_processes_as_file_names(data_root, data_camera_b, tmp_path):
    mix = make_mixture(DataConfig(repo_ids=data_camera_b, root=data_root), delta_timestamps=WINDOWS, verbose=False)
    mix.cache_frames(budget_gb=0, cache_dir=tmp_path)
    first_of_episode_1 = mix[5][CAMERA][-1]
    state = pickle.dumps(mix.stores[0].frames)
    assert len(state) < 2000  # file names travel, not frames
    assert torch.equal(pickle.loads(state).get(CAMERA, 1, np.array([0]))[0], first_of_episode_1)
    order = list(range(len(mix)))
    single = list(torch.utils.data.DataLoader(mix, batch_size=5, sampler=order))
    workers = list(torch.utils.data.DataLoader(mix, batch_size=5, sampler=order, num_workers=2))
    for a, b in zip(single, workers, strict=True):
        assert torch.equal(a[CAMERA], b[CAMERA])


def test_a_video_that_lacks_a_frame_is_refused_in_a_sentence(data_root, data_camera, tmp_path):
    from sir.errors import UserError

    mix = make_mixture(DataConfig(repo_ids=data_camera, root=data_root), verbose=False)
    store = mix.stores[0]
    store._timestamps = store._timestamps + np.float32(0.02)  # between frames: no frame within tolerance
    with pytest.raises(UserError, match="no frame within"):
        mix.cache_frames(budget_gb=1, cache_dir=tmp_path)

