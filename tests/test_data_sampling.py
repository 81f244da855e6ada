"""Part 6: how samples are drawn from the mixture."""

import numpy as np
import pytest

from sir.data import make_mixture
from sir.data.sampling import MixtureSampler
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
    mix = make_mixture([data_demos, data_demos_b], root=data_root, verbose=False)
    assert mix.sampler is None
    np.testing.assert_allclose(mix.requested_shares, [115 / 182, 67 / 182])


@pytest.mark.parametrize("weights", ["1,2", [3.0, 1.0], "1, 0"])
def test_weights_set_the_share_of_samples_from_each_dataset(data_root, data_demos, data_demos_b, weights):
    mix = make_mixture([data_demos, data_demos_b], root=data_root, weights=weights, verbose=False)
    values = np.array([float(w) for w in (weights.split(",") if isinstance(weights, str) else weights)])
    requested = values / values.sum()
    np.testing.assert_allclose(mix.requested_shares, requested)
    assert isinstance(mix.sampler, MixtureSampler) and len(mix.sampler) == len(mix)
    np.testing.assert_allclose(shares(mix, drawn(mix)), requested, atol=0.015)


def test_balance_datasets_gives_equal_shares(data_root, data_demos, data_demos_b, data_dagger):
    mix = make_mixture([data_demos, data_demos_b, data_dagger], root=data_root, balance_datasets=True, verbose=False)
    np.testing.assert_allclose(shares(mix, drawn(mix)), [1 / 3] * 3, atol=0.015)


def test_balance_episodes_makes_every_trajectory_equally_likely(data_root, data_demos, data_demos_b):
    mix = make_mixture([data_demos, data_demos_b], root=data_root, balance_episodes=True, verbose=False)
    counts = np.bincount(mix.episode_of(drawn(mix)), minlength=8)
    np.testing.assert_allclose(counts / DRAWS, [1 / 8] * 8, atol=0.012)
    # Frames of a short episode are drawn more often than those of a long one.
    np.testing.assert_allclose(mix.requested_shares, [5 / 8, 3 / 8])


def test_balance_episodes_within_weighted_datasets(data_root, data_demos, data_demos_b):
    mix = make_mixture([data_demos, data_demos_b], root=data_root, weights="1,1", balance_episodes=True, verbose=False)
    counts = np.bincount(mix.episode_of(drawn(mix)), minlength=8) / DRAWS
    np.testing.assert_allclose(counts, [0.5 / 5] * 5 + [0.5 / 3] * 3, atol=0.012)


def test_passes_differ_but_a_seed_repeats_them(data_root, data_demos, data_demos_b):
    def passes(seed):
        mix = make_mixture([data_demos, data_demos_b], root=data_root, weights="1,1", seed=seed, verbose=False)
        return list(mix.sampler), list(mix.sampler)

    first, second = passes(0)
    assert first != second
    assert passes(0) == (first, second) and passes(1)[0] != first


def test_weights_of_the_wrong_length_give_the_guides_error(data_root, data_demos, data_demos_b):
    with pytest.raises(UserError) as err:
        make_mixture([data_demos, data_demos_b], root=data_root, weights="1,2,3", verbose=False)
    assert str(err.value).startswith("dataset_weights length must match repo_ids length: ")
    assert str(err.value).endswith(".")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"weights": "1,-1"}, "non-negative"),
        ({"weights": "0,0"}, "not all zero"),
        ({"weights": "a,b"}, "numbers separated by commas"),
        ({"weights": "1,1", "balance_datasets": True}, "give only one"),
    ],
)
def test_bad_sampling_options_are_errors(data_root, data_demos, data_demos_b, kwargs, words):
    with pytest.raises(UserError, match=words):
        make_mixture([data_demos, data_demos_b], root=data_root, verbose=False, **kwargs)
