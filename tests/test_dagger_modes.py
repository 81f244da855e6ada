"""--dagger-mode: which frames of a DAgger dataset are samples, and how often each class is drawn."""

import numpy as np
import pytest

from sir.data import make_mixture
from sir.data.mixture.config import DataConfig
from sir.data.mixture.sampling import MixtureSampler
from sir.data.mixture.weights import (
    CLASS_NAMES,
    INTERVENTION,
    PRE_INTERVENTION,
    ROBOT,
    SIRIUS_PRE_INTERVENTION_STEPS,
    resolve_mode,
    sample_classes,
)
from sir.data.record.synthetic import dagger_episode
from sir.errors import UserError

DRAWS = 40_000
TOLERANCE = 0.012  # a share's standard error at 40,000 draws is at most 0.0025

# Frame ranges are global frame indices of the dataset below.
EPISODES = [
    dagger_episode((0, 20), (1, 10), success=True),  # 0-29: policy 0-4, pre-intervention 5-19, human 20-29
    dagger_episode((0, 5), (1, 10), success=False),  # 30-44: pre-intervention 30-34, human 35-44, failed
    dagger_episode((1, 8), success=True),  # 45-52: human from the first frame: no window before it
    dagger_episode((0, 12), success=True),  # 53-64: the policy succeeded alone
    # 65-94: pre-intervention 65-68, human 69-71, policy 72-74, pre-intervention 75-89, human 90-94
    dagger_episode((0, 4), (1, 3), (0, 18), (1, 5), success=True),
    dagger_episode((0, 30), success=False),  # 95-124: the policy failed alone
]


def frames(*ranges):
    return [i for lo, hi in ranges for i in range(lo, hi + 1)]


HUMAN_OF_SUCCESSFUL = frames((20, 29), (45, 52), (69, 71), (90, 94))
HUMAN = sorted(HUMAN_OF_SUCCESSFUL + frames((35, 44)))
ROBOT_FRAMES = frames((0, 4), (53, 64), (72, 74), (95, 124))
PRE_FRAMES = frames((5, 19), (30, 34), (65, 68), (75, 89))
SAMPLES = {
    "successful-corrections": HUMAN_OF_SUCCESSFUL,
    "hg-dagger": HUMAN,
    "iwr": frames((0, 124)),
    "sirius": sorted(HUMAN_OF_SUCCESSFUL + frames((0, 4), (53, 64), (72, 74))),
    "all": frames((0, 124)),
}
# Intended shares of (demo, policy, pre-intervention, intervention) within the dataset.
SHARES = {
    "successful-corrections": [0, 0, 0, 1],
    "hg-dagger": [0, 0, 0, 1],
    "iwr": [0, 0.5 * 50 / 89, 0.5 * 39 / 89, 0.5],
    "sirius": [0, 0.5, 0, 0.5],
    "all": [0, 50 / 125, 39 / 125, 36 / 125],
}


@pytest.fixture(scope="module")
def modes_data(data_root) -> str:
    from sir.data.record.synthetic import make_synthetic_dataset

    if not (data_root / "dagger_modes" / "meta" / "info.json").is_file():
        make_synthetic_dataset(data_root, "dagger_modes", [len(s) for s, _ in EPISODES], dagger=EPISODES, seed=11)
    return "dagger_modes"


def drawn(mix, n=DRAWS):
    indices = []
    while len(indices) < n:
        indices.extend(iter(mix.sampler))
    return np.asarray(indices[:n])


def class_shares(mix, indices):
    return np.bincount(mix.class_of(indices), minlength=len(CLASS_NAMES)) / len(indices)


def sample_frames(mix, dataset=0):
    return [int(mix[i]["index"]) for i in np.flatnonzero(mix.dataset_of(np.arange(len(mix))) == dataset)]


def test_classes_mark_the_policy_frames_just_before_each_takeover():
    episode = np.repeat(np.arange(len(EPISODES)), [len(s) for s, _ in EPISODES])
    classes = sample_classes(episode, np.concatenate([s for s, _ in EPISODES]))
    assert SIRIUS_PRE_INTERVENTION_STEPS == 15
    assert np.flatnonzero(classes == INTERVENTION).tolist() == HUMAN
    assert np.flatnonzero(classes == PRE_INTERVENTION).tolist() == PRE_FRAMES
    assert np.flatnonzero(classes == ROBOT).tolist() == ROBOT_FRAMES


@pytest.mark.parametrize("mode", list(SAMPLES))
def test_each_mode_samples_exactly_its_frames_in_its_class_shares(data_root, modes_data, mode):
    mix = make_mixture(DataConfig(repo_ids=modes_data, root=data_root, dagger_mode=mode, seed=1), verbose=False)
    assert sample_frames(mix) == SAMPLES[mode]
    probs = np.full(len(mix), 1 / len(mix)) if mix.sampler is None else mix.sampler.probabilities()
    intended = np.bincount(mix.class_of(np.arange(len(mix))), weights=probs, minlength=len(CLASS_NAMES))
    np.testing.assert_allclose(intended, SHARES[mode], atol=1e-12)
    if mix.sampler is not None:
        np.testing.assert_allclose(class_shares(mix, drawn(mix)), SHARES[mode], atol=TOLERANCE)
        # Within a class every frame is equally likely.
        for c in range(len(CLASS_NAMES)):
            assert len(np.unique(probs[mix.class_of(np.arange(len(mix))) == c])) <= 1


@pytest.mark.parametrize("mode", ["iwr", "sirius", "hg-dagger"])
@pytest.mark.parametrize("balance_episodes", [False, True])
def test_frame_weights_leave_the_dataset_shares_as_requested(data_root, data_demos, modes_data, mode, balance_episodes):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, dataset_weights="1,3", dagger_mode=mode, balance_episodes=balance_episodes, seed=2), verbose=False)
    np.testing.assert_allclose(mix.requested_shares, [0.25, 0.75])
    indices = drawn(mix)
    np.testing.assert_allclose(np.bincount(mix.dataset_of(indices)) / DRAWS, [0.25, 0.75], atol=TOLERANCE)
    if not balance_episodes:
        np.testing.assert_allclose(class_shares(mix, indices), [0.25, *(0.75 * np.array(SHARES[mode][1:]))],
                                   atol=TOLERANCE)
    else:
        # Every episode stays equally likely within its dataset's share; the weights act within episodes.
        per_episode = np.bincount(mix.episode_of(indices)) / DRAWS
        used = np.flatnonzero(per_episode)
        demo_episodes, dagger_episodes = used[used < 5], used[used >= 5]
        np.testing.assert_allclose(per_episode[demo_episodes], 0.25 / len(demo_episodes), atol=TOLERANCE)
        np.testing.assert_allclose(per_episode[dagger_episodes], 0.75 / len(dagger_episodes), atol=TOLERANCE)


def test_the_default_mode_is_todays_filter_and_sampler(data_root, data_demos, modes_data, capsys):
    for kwargs in ({}, {"dagger_mode": "successful-corrections"}):
        mix = make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, **kwargs))
        assert mix.sampler is None and sample_frames(mix, 1) == HUMAN_OF_SUCCESSFUL
        assert f"{modes_data}: Filtered 6 episodes → 3 successful human corrections (26 frames)" in capsys.readouterr().out
        assert mix.infos[1].dagger == {"episodes": 6, "policy_frames": 89, "human_frames": 36,
                                       "successful_episodes": 4, "kept_episodes": 3, "kept_frames": 26}
    # With shares the sampler is the dataset-bucket sampler it always was, drawing the same indices.
    mix = make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, dataset_weights="1,3", seed=5), verbose=False)
    today = MixtureSampler([0, 115], [115, 26], [0.25, 0.75], 141, seed=5)
    assert list(mix.sampler) == list(today) and list(mix.sampler) == list(today)


def test_weights_follow_the_samples_left_after_skipping_episode_ends(data_root, modes_data):
    mix = make_mixture(DataConfig(repo_ids=modes_data, root=data_root, dagger_mode="iwr"), verbose=False)
    mix.fit(skip_first=2, skip_last=6)
    probs = mix.sampler.probabilities()
    assert len(probs) == len(mix) == 125 - 6 * 8
    every = mix.class_of(np.arange(len(mix)))
    assert probs[every == INTERVENTION].sum() == pytest.approx(0.5)


@pytest.mark.parametrize("mode", ["successful-corrections", "hg-dagger", "sirius"])
def test_a_mode_that_leaves_nothing_is_an_error_naming_the_dataset(data_root, modes_data, mode):
    with pytest.raises(UserError, match=f"Dataset '{modes_data}' has no"):
        make_mixture(DataConfig(repo_ids=modes_data, root=data_root, episodes=f"{modes_data}=5", dagger_mode=mode), verbose=False)


def test_the_trainer_printout_says_what_the_mode_kept(data_root, modes_data, capsys):
    for mode in ("hg-dagger", "iwr", "sirius"):
        make_mixture(DataConfig(repo_ids=modes_data, root=data_root, dagger_mode=mode))
    out = capsys.readouterr().out
    assert f"{modes_data}: hg-dagger: 6 episodes → 4 (36 frames), every human frame" in out
    assert f"{modes_data}: iwr: 6 episodes → 6 (125 frames), 36 intervention frames weighted to 50% of the dataset's " \
           "samples, 89 policy frames to 50%" in out
    assert f"{modes_data}: sirius: 6 episodes → 4 (46 frames), 26 intervention frames weighted to 50% of the " \
           "dataset's samples, 20 policy frames to 50%; removed the up to 15 policy frames before each takeover and " \
           "2 failed episodes (79 frames)" in out


def test_no_dagger_filter_is_the_mode_all_and_refuses_another_mode(data_root, modes_data):
    assert resolve_mode("successful-corrections", dagger_filter=False) == resolve_mode("all") == "all"
    mix = make_mixture(DataConfig(repo_ids=modes_data, root=data_root, no_dagger_filter=True), verbose=False)
    assert sample_frames(mix) == SAMPLES["all"] and mix.infos[0].dagger is None
    with pytest.raises(UserError, match="--no-dagger-filter .* cannot be combined with --dagger-mode iwr"):
        make_mixture(DataConfig(repo_ids="not_read", root=data_root, no_dagger_filter=True, dagger_mode="iwr"))
    with pytest.raises(UserError, match="--dagger-mode must be one of"):
        make_mixture(DataConfig(repo_ids="not_read", root=data_root, dagger_mode="dagger"))


def test_the_flag_reaches_the_mixture_through_each_commands_parser():
    from sir.data.verify import parse_config as verify_config
    from sir.training.config import parse_config as train_config

    for parse in (verify_config, lambda argv: train_config(argv)[0]):
        assert parse(["--repo-ids", "a", "--dagger-mode", "sirius"]).dagger_mode == "sirius"
        assert parse(["--repo-ids", "a"]).dagger_mode == "successful-corrections"
        with pytest.raises(SystemExit):
            parse(["--repo-ids", "a", "--dagger-mode", "dagger"])


def test_verify_shows_intended_and_realized_class_shares(data_root, data_demos, modes_data, capsys):
    from sir.data.verify import main as verify

    assert verify(["--repo-ids", f"{data_demos},{modes_data}", "--root", str(data_root), "--dagger-mode", "sirius",
                   "--dataset-weights", "1,1", "--num-samples", "4000"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[out.splitlines().index(
        next(line for line in out.splitlines() if line.startswith("Classes of samples"))) + 3:][:4]}
    assert rows["demo"][1:3] == ["115", "50.0%"] and rows["policy"][1:3] == ["20", "25.0%"]
    assert rows["pre-intervention"][1:4] == ["0", "0.0%", "0.0%"] and rows["intervention"][1:3] == ["26", "25.0%"]
    assert abs(float(rows["intervention"][3].rstrip("%")) - 25.0) < 2.5
