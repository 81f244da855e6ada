"""Part 6: how samples are drawn from the mixture."""

import numpy as np
import pytest

from sir.data import make_mixture
from sir.data.mixture.config import DataConfig
from sir.data.mixture.sampling import MixtureSampler
from sir.errors import UserError

DRAWS = 20_000


def drawn(mix, n=DRAWS):
    indices = []
    while len(indices) < n:
        indices.extend(iter(mix.sampler))
    return np.asarray(indices[:n])


def shares(mix, indices):
    return np.bincount(mix.dataset_of(indices), minlength=len(mix.repo_ids)) / len(indices)


def test_default_is_a_uniform_shuffle_over_frames(data_root, data_demos, data_demos_b):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root), verbose=False)
    assert mix.sampler is None
    np.testing.assert_allclose(mix.requested_shares, [115 / 182, 67 / 182])


@pytest.mark.parametrize("weights", ["1,2", [3.0, 1.0], "1, 0"])
def test_weights_set_the_share_of_samples_from_each_dataset(data_root, data_demos, data_demos_b, weights):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root, dataset_weights=weights),
                       verbose=False)
    values = np.array([float(w) for w in (weights.split(",") if isinstance(weights, str) else weights)])
    requested = values / values.sum()
    np.testing.assert_allclose(mix.requested_shares, requested)
    assert isinstance(mix.sampler, MixtureSampler) and len(mix.sampler) == len(mix)
    np.testing.assert_allclose(shares(mix, drawn(mix)), requested, atol=0.015)


def test_balance_datasets_gives_equal_shares(data_root, data_demos, data_demos_b, data_dagger):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b, data_dagger], root=data_root,
                                  balance_datasets=True), verbose=False)
    np.testing.assert_allclose(shares(mix, drawn(mix)), [1 / 3] * 3, atol=0.015)


def test_balance_episodes_makes_every_trajectory_equally_likely(data_root, data_demos, data_demos_b):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root, balance_episodes=True),
                       verbose=False)
    counts = np.bincount(mix.episode_of(drawn(mix)), minlength=8)
    np.testing.assert_allclose(counts / DRAWS, [1 / 8] * 8, atol=0.012)
    # Frames of a short episode are drawn more often than those of a long one.
    np.testing.assert_allclose(mix.requested_shares, [5 / 8, 3 / 8])


def test_balance_episodes_within_weighted_datasets(data_root, data_demos, data_demos_b):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root, dataset_weights="1,1",
                                  balance_episodes=True), verbose=False)
    counts = np.bincount(mix.episode_of(drawn(mix)), minlength=8) / DRAWS
    np.testing.assert_allclose(counts, [0.5 / 5] * 5 + [0.5 / 3] * 3, atol=0.012)


def test_passes_differ_but_a_seed_repeats_them(data_root, data_demos, data_demos_b):
    def passes(seed):
        mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root, dataset_weights="1,1",
                                      seed=seed), verbose=False)
        return list(mix.sampler), list(mix.sampler)

    first, second = passes(0)
    assert first != second
    assert passes(0) == (first, second) and passes(1)[0] != first


def test_weights_of_the_wrong_length_give_the_guides_error(data_root, data_demos, data_demos_b):
    with pytest.raises(UserError) as err:
        make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root, dataset_weights="1,2,3"),
                     verbose=False)
    assert str(err.value).startswith("dataset_weights length must match repo_ids length: ")
    assert str(err.value).endswith(".")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"dataset_weights": "1,-1"}, "non-negative"),
        ({"dataset_weights": "0,0"}, "not all zero"),
        ({"dataset_weights": "a,b"}, "numbers separated by commas"),
        ({"dataset_weights": "1,1", "balance_datasets": True}, "give only one"),
    ],
)
def test_bad_sampling_options_are_errors(data_root, data_demos, data_demos_b, kwargs, words):
    with pytest.raises(UserError, match=words):
        make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root, **kwargs), verbose=False)



# Episode lengths of data_demos, data_demos_b and data_dagger, by global episode index.
LENGTHS = [20, 25, 30, 22, 18] + [15, 40, 12] + [20, 15, 10, 12]
SHARES_LEFT = {  # 70, 40 and 6 frames (10 episodes: 5, 3 and 2) start a sample
    "": [70 / 116, 40 / 116, 6 / 116],
    "dataset_weights": [0.25, 0.5, 0.25],
    "balance_episodes": [0.5, 0.3, 0.2],
}


def positions(samples):
    """(global episode, frame index within it) of each sample."""
    return {(int(e), int(f)) for s in samples
            for e, f in zip(s["episode_index"].view(-1), s["frame_index"].view(-1), strict=True)}


@pytest.mark.parametrize("kwargs", [{}, {"dataset_weights": "1,2,1"}, {"balance_episodes": True}])
def test_skipped_episode_ends_start_no_sample(data_root, data_demos, data_demos_b, data_dagger, kwargs):
    from sir.data import make_dataloader

    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b, data_dagger], root=data_root, **kwargs),
                       verbose=False)
    every = positions(mix[i] for i in range(len(mix)))
    stats = mix.stats
    mix.fit(skip_first=2, skip_last=7)

    expected = {(e, f) for e, f in every if 2 <= f < LENGTHS[e] - 7}
    assert positions(mix[i] for i in range(len(mix))) == expected and len(mix) == len(expected) == 116
    assert [i.frames for i in mix.infos] == [70, 40, 6]
    batches = list(make_dataloader(mix, batch_size=16, drop_last=False))
    assert positions(batches) <= expected and sum(len(b["index"]) for b in batches) == len(mix)
    share = SHARES_LEFT[next(iter(kwargs), "")]
    np.testing.assert_allclose(mix.requested_shares, share)
    if mix.sampler is not None:
        indices = drawn(mix)
        assert 0 <= indices.min() and indices.max() < len(mix)
        np.testing.assert_allclose(shares(mix, indices), share, atol=0.015)
    # The statistics still cover every used frame; once a DataLoader took the sampler, the
    # samples cannot change under it.
    assert mix.stats is stats and stats["action"]["count"].tolist() == [115 + 67 + 22]
    with pytest.raises(RuntimeError, match="before make_dataloader"):
        mix.fit()


def test_a_new_fit_starts_again_from_every_used_frame(data_root, data_demos):
    mix = make_mixture(DataConfig(repo_ids=data_demos, root=data_root), verbose=False)
    every = len(mix)
    mix.fit(skip_last=7)
    assert len(mix) < every
    mix.fit()
    assert len(mix) == every and mix.infos[0].frames == every


def test_the_same_frames_as_lerobots_episode_aware_sampler(data_root, data_demos):
    from lerobot.datasets.sampler import EpisodeAwareSampler

    mix = make_mixture(DataConfig(repo_ids=data_demos, root=data_root), verbose=False)
    mix.fit(skip_last=7)
    store = mix.stores[0]
    theirs = EpisodeAwareSampler(store.ep_from.tolist(), store.ep_to.tolist(), drop_n_last_frames=7)
    assert sorted(int(mix[i]["index"]) for i in range(len(mix))) == sorted(theirs)


def test_episodes_too_short_for_the_skipped_ends_are_an_error(data_root, data_demos, data_demos_b):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b], root=data_root), verbose=False)
    mix.fit(skip_last=25)  # demos_b keeps its 40-frame episode
    assert mix.infos[0].frames == 5 and mix.infos[1].frames == 15
    with pytest.raises(UserError, match="Dataset 'demos' has no frame left to train on"):
        mix.fit(skip_last=30)
