"""Issue 15 part 3: whole batches gathered at once equal the samples collated one by one."""

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from sir.data import make_dataloader, make_mixture
from sir.data.mixture.config import DataConfig
from sir.data.store.batch import GatheredBatch, collate
from sir.data.video import video_backend

CAMERA = "observation.images.agentview"
ACT = {"action": [i / 20 for i in range(30)]}  # an action chunk running past episode ends
HISTORY = {"observation.state": [-0.1, -0.05, 0.0], "action": [-0.05, 0.0, 0.05, 0.1]}  # and before starts
CAMERA_WINDOWS = {CAMERA: [-0.15, -0.05, 0.0], "observation.state": [-0.15, -0.05, 0.0],
                  "action": [i / 20 for i in range(8)]}


def assert_same(ours, theirs):
    assert list(ours) == list(theirs)  # the same keys, in the same order
    for key, value in theirs.items():
        if isinstance(value, torch.Tensor):
            assert ours[key].dtype == value.dtype and ours[key].shape == value.shape, key
            assert torch.equal(ours[key], value), key
        else:
            assert type(ours[key]) is type(value) and ours[key] == value, key


def ends_and_more(mix, seed=0):
    """Every sample at the first or last frame of an episode, plus random ones, shuffled
    (datasets interleaved), with one negative index."""
    episodes = mix.episode_of(np.arange(len(mix)))
    change = np.flatnonzero(np.diff(episodes)) + 1
    ends = np.unique(np.concatenate([[0, len(mix) - 1], change, change - 1]))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(np.concatenate([ends, rng.integers(0, len(mix), 20)])).tolist()
    return idx[:-1] + [idx[-1] - len(mix)]


def assert_batch_equals_samples(mix, idx):
    """mixture.__getitems__(idx) is default_collate of the samples, through sir's collate and
    through default_collate (a plain DataLoader) alike."""
    expected = default_collate([mix[i] for i in idx])
    gathered = mix.__getitems__(idx)
    assert isinstance(gathered, GatheredBatch) and len(gathered) == len(idx)
    assert_same(collate(gathered), expected)
    assert_same(default_collate(gathered), expected)
    return expected


@pytest.mark.parametrize("delta", [None, ACT, HISTORY], ids=["no-windows", "act", "history"])
def test_a_mixture_of_datasets_batches_like_its_samples(data_root, data_demos, data_demos_b, data_dagger, delta):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b, data_dagger], root=data_root),
                       delta_timestamps=delta, verbose=False)
    idx = ends_and_more(mix)
    batch = assert_batch_equals_samples(mix, idx)
    assert set(batch["dataset_index"].tolist()) == {0, 1, 2}
    if delta is not None:  # padding at both ends of episodes is in the batch
        assert batch["action_is_pad"][:, 0].any() == (delta is HISTORY) and batch["action_is_pad"][:, -1].any()
    # One dataset alone in a batch takes the path without merging.
    first = [i for i in idx if mix.dataset_of([i % len(mix)])[0] == 0]
    assert_batch_equals_samples(mix, first)


def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded a video that should have been cached")

    monkeypatch.setattr("lerobot.datasets.video_utils.decode_video_frames", refuse)


@pytest.mark.parametrize("cache", ["memory", "disk", "none", "part"])
@pytest.mark.parametrize("delta", [None, CAMERA_WINDOWS, {CAMERA: [0.0]}], ids=["no-windows", "windows", "one-frame"])
def test_camera_batches_from_memory_disk_or_video(data_root, data_camera_b, tmp_path, monkeypatch, cache, delta):
    mix = make_mixture(DataConfig(repo_ids=data_camera_b, root=data_root), delta_timestamps=delta, verbose=False)
    if cache == "part":  # episode 1 only: a batch mixes cached and decoded frames
        mix.stores[0].cache_frames([1], 1 << 30, tmp_path)
    elif cache != "none":
        report = mix.cache_frames(budget_gb=1 if cache == "memory" else 0, cache_dir=tmp_path)
        assert (report.in_memory > 0, report.on_disk > 0) == (cache == "memory", cache == "disk")
    idx = ends_and_more(mix)
    expected = default_collate([mix[i] for i in idx])
    if cache in ("memory", "disk"):
        no_decoding(monkeypatch)
    assert_same(collate(mix.__getitems__(idx)), expected)
    frame = (3, 32, 32)
    assert expected[CAMERA].shape == (len(idx), *((3, *frame) if delta is CAMERA_WINDOWS else frame))


def test_one_frame_camera_window_is_a_single_frame_as_in_lerobot(data_root, data_camera_b, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    delta = {CAMERA: [0.0]}
    mix = make_mixture(DataConfig(repo_ids=data_camera_b, root=data_root), delta_timestamps=delta, verbose=False)
    dataset = LeRobotDataset(data_camera_b, root=data_root / data_camera_b, delta_timestamps=delta,
                             video_backend=video_backend())
    decoded = mix[7]
    mix.cache_frames(budget_gb=1, cache_dir=tmp_path)
    assert dataset[7][CAMERA].shape == decoded[CAMERA].shape == mix[7][CAMERA].shape == (3, 32, 32)
    assert torch.equal(mix[7][CAMERA], dataset[7][CAMERA])


@pytest.mark.parametrize("delta", [None, {CAMERA: [-0.05, 0.0], "action": [0.0, 0.05]}])
def test_png_image_batches_like_samples(data_root, data_camera_png, delta):
    mix = make_mixture(DataConfig(repo_ids=data_camera_png, root=data_root), delta_timestamps=delta, verbose=False)
    assert_batch_equals_samples(mix, ends_and_more(mix))


@pytest.mark.parametrize("cache", [True, False])
def test_image_transforms_stay_per_sample_with_the_same_random_draws(data_root, data_camera, tmp_path, cache):
    from sir.data.mixture.config import image_transforms

    mix = make_mixture(DataConfig(repo_ids=data_camera, root=data_root), delta_timestamps={CAMERA: [-0.05, 0.0]},
                       image_transforms=image_transforms(["lerobot"]), verbose=False)
    if cache:
        mix.cache_frames(budget_gb=1, cache_dir=tmp_path)
    idx = ends_and_more(mix)
    torch.manual_seed(5)
    expected = default_collate([mix[i] for i in idx])
    torch.manual_seed(5)
    batch = collate(mix.__getitems__(idx))
    assert_same(batch, expected)
    # Each sample drew its own parameters: two samples of the same frame differ.
    torch.manual_seed(5)
    twice = collate(mix.__getitems__([3, 3]))
    assert not torch.equal(twice[CAMERA][0], twice[CAMERA][1])


class PerSample(torch.utils.data.Dataset):
    """The mixture as it was served before batches: sample by sample, no __getitems__."""

    def __init__(self, mix):
        self.mix = mix

    def take_sampler(self):
        return self.mix.take_sampler()

    def __len__(self):
        return len(self.mix)

    def __getitem__(self, i):
        return self.mix[i]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_the_training_loader_yields_the_batches_it_yielded_sample_by_sample(
        data_root, data_camera, data_camera_b, tmp_path, num_workers):
    mix = make_mixture(DataConfig(repo_ids=[data_camera, data_camera_b], root=data_root),
                       delta_timestamps=CAMERA_WINDOWS, verbose=False)
    mix.cache_frames(budget_gb=1, cache_dir=tmp_path)
    before = list(make_dataloader(PerSample(mix), 8, seed=3, drop_last=False))
    after = list(make_dataloader(mix, 8, seed=3, drop_last=False, num_workers=num_workers))
    assert len(after) == len(before) == 4  # 30 samples: the last batch is short
    for ours, theirs in zip(after, before, strict=True):
        assert_same(ours, theirs)


def test_bad_indices_are_refused(data_root, data_demos):
    mix = make_mixture(DataConfig(repo_ids=data_demos, root=data_root), verbose=False)
    with pytest.raises(IndexError):
        mix.__getitems__([0, len(mix)])
    with pytest.raises(IndexError):
        mix.__getitems__([])


def test_cached_frames_convert_to_float_as_lerobot_does_for_every_uint8_value():
    from sir.data.store.cache import to_float

    values = torch.arange(256, dtype=torch.uint8)
    # lerobot's decoders: frames.type(torch.float32) / 255
    assert torch.equal(to_float(values.numpy()), values.type(torch.float32) / 255)
