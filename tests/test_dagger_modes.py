"""--dagger-mode: which frames of a DAgger dataset are samples, and how often each class is drawn."""

import numpy as np
import pytest
import torch

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
# The last frame of each frame's episode.
EPISODE_END = np.repeat(np.cumsum([len(s) for s, _ in EPISODES]) - 1, [len(s) for s, _ in EPISODES])
SAMPLES = {
    "successful-corrections": HUMAN_OF_SUCCESSFUL,
    "hg-dagger": HUMAN,
    "iwr": frames((0, 124)),
    "sirius": frames((0, 29), (45, 94)),  # the successful episodes, pre-intervention frames included
    "all": frames((0, 124)),
}
# Intended shares of (demo, policy, pre-intervention, intervention) over the dataset: IWR's
# interventions half of all samples; Sirius's 0.5 for interventions, 0.002 for pre-intervention,
# the rest to policy frames (no demos here).
SHARES = {
    "successful-corrections": [0, 0, 0, 1],
    "hg-dagger": [0, 0, 0, 1],
    "iwr": [0, 0.5 * 50 / 89, 0.5 * 39 / 89, 0.5],
    "sirius": [0, 0.498, 0.002, 0.5],
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


def pooled_shares(mode, demo_frames):
    """(demo, policy, pre-intervention, intervention) shares over demos + modes_data by the
    sources' formulas, written out from the class counts."""
    if mode == "iwr":  # IWRDataset: interventions weigh (N - n_int) / n_int, the rest 1
        others = demo_frames + 50 + 39
        return [0.5 * demo_frames / others, 0.5 * 50 / others, 0.5 * 39 / others, 0.5]
    n = demo_frames + 20 + 34 + 26  # sirius: the successful episodes only
    return [demo_frames / n, 1 - 0.5 - 0.002 - demo_frames / n, 0.002, 0.5]


@pytest.mark.parametrize("mode", ["iwr", "sirius"])
@pytest.mark.parametrize("balance_episodes", [False, True])
def test_pooled_modes_give_each_class_its_sources_share_of_the_whole_mixture(
        data_root, data_demos, modes_data, mode, balance_episodes):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, episodes=f"{data_demos}=0",
                                  dagger_mode=mode, balance_episodes=balance_episodes, seed=2), verbose=False)
    shares = pooled_shares(mode, mix.infos[0].frames)
    assert 0 < shares[1]  # demos under half: Sirius's formula holds as written
    np.testing.assert_allclose(mix.class_shares(), shares, atol=1e-12)
    indices = drawn(mix)
    # Within one point of the formula, over all samples drawn.
    np.testing.assert_allclose(class_shares(mix, indices), shares, atol=0.01)
    if balance_episodes:
        # Within a class, every episode holding it is equally likely.
        classes, episodes = mix.class_of(indices), mix.episode_of(indices)
        per_episode = np.unique(episodes[classes == INTERVENTION], return_counts=True)[1] / DRAWS
        np.testing.assert_allclose(per_episode, shares[INTERVENTION] / len(per_episode), atol=TOLERANCE)


def test_sirius_gives_policy_frames_nothing_where_demos_are_over_half_the_data(data_root, data_demos, modes_data):
    # 115 demo frames of 195: Sirius's remainder for policy frames, 1 - 0.5 - 0.002 - 0.59, is negative.
    mix = make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, dagger_mode="sirius"),
                       verbose=False)
    shares = mix.class_shares()
    assert shares[ROBOT] == 0 and shares.sum() == pytest.approx(1)
    demo, pre, intervention = 115 / 195, 0.002, 0.5
    np.testing.assert_allclose(shares[[0, 2, 3]], np.array([demo, pre, intervention]) / (demo + pre + intervention))


@pytest.mark.parametrize("mode", ["iwr", "sirius"])
def test_dataset_shares_are_refused_beside_a_pooled_mode(data_root, data_demos, modes_data, mode):
    with pytest.raises(UserError, match=f"--dagger-mode {mode} sets every sample's share.*--dataset-weights"):
        make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, dataset_weights="1,3",
                                dagger_mode=mode), verbose=False)
    with pytest.raises(UserError, match="--balance-datasets would change them"):
        make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, balance_datasets=True,
                                dagger_mode=mode), verbose=False)


def test_hg_dagger_keeps_the_requested_dataset_shares(data_root, data_demos, modes_data):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, dataset_weights="1,3",
                                  dagger_mode="hg-dagger", seed=2), verbose=False)
    indices = drawn(mix)
    np.testing.assert_allclose(np.bincount(mix.dataset_of(indices)) / DRAWS, [0.25, 0.75], atol=TOLERANCE)


def test_the_default_mode_is_todays_filter_and_sampler(data_root, data_demos, modes_data, capsys):
    for kwargs in ({}, {"dagger_mode": "successful-corrections"}):
        mix = make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, **kwargs))
        assert mix.sampler is None and sample_frames(mix, 1) == HUMAN_OF_SUCCESSFUL
        assert (f"{modes_data}: Filtered 6 episodes → 3 successful human corrections (26 frames)"
                in capsys.readouterr().out)
        assert mix.infos[1].dagger == {"episodes": 6, "policy_frames": 89, "human_frames": 36,
                                       "successful_episodes": 4, "kept_episodes": 3, "kept_frames": 26,
                                       "takeovers": 4, "autonomous_successes": 1}
    # With shares the sampler is the dataset-bucket sampler it always was, drawing the same indices.
    mix = make_mixture(DataConfig(repo_ids=[data_demos, modes_data], root=data_root, dataset_weights="1,3", seed=5),
                       verbose=False)
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
        make_mixture(DataConfig(repo_ids=modes_data, root=data_root, episodes=f"{modes_data}=5", dagger_mode=mode),
                     verbose=False)


def test_the_trainer_printout_says_what_the_mode_kept(data_root, modes_data, capsys):
    for mode in ("hg-dagger", "iwr", "sirius"):
        make_mixture(DataConfig(repo_ids=modes_data, root=data_root, dagger_mode=mode))
    out = capsys.readouterr().out
    assert f"{modes_data}: hg-dagger: 6 episodes → 4 (36 frames), every human frame" in out
    assert (f"{modes_data}: iwr: 6 episodes → 6 (125 frames): 50 policy, 39 pre-intervention, 36 intervention; "
            "interventions half of the mixture's samples, demos and policy frames the other half (IWR)") in out
    assert (f"{modes_data}: sirius: 6 episodes → 4 (80 frames): 20 policy, 34 pre-intervention, 26 intervention; "
            "interventions 50% of the mixture's samples, pre-intervention 0.2% (the up to 15 policy frames before "
            "each takeover, their actions left out of other samples' chunks), demos at their natural share, policy "
            "frames the rest (Sirius); removed 2 failed episodes (45 frames)") in out


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

    assert verify(["--repo-ids", f"{data_demos},{modes_data}", "--root", str(data_root), "--dagger-mode", "iwr",
                   "--episodes", f"{data_demos}=0", "--num-samples", "4000"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[out.splitlines().index(
        next(line for line in out.splitlines() if line.startswith("Classes of samples"))) + 3:][:4]}
    demo = int(rows["demo"][1])
    expected = pooled_shares("iwr", demo)
    for name, share in zip(("demo", "policy", "pre-intervention", "intervention"), expected, strict=True):
        # samples, source's rule, intended, realized (4000 draws: within 2.5 points)
        assert rows[name][2:4] == [f"{100 * share:.1f}%"] * 2
        assert abs(float(rows[name][4].rstrip("%")) - 100 * share) < 2.5
    assert "(intervention ratio 0.29), 0.67 takeovers per episode, 4/6 episodes successful (1 without help)" in out

# -- what a sample's action chunk trains on ---------------------------------------------------

SOURCES = np.concatenate([s for s, _ in EPISODES])
NOTHING = np.zeros(len(SOURCES), bool)
# The frames whose actions no chunk trains on: the policy's where a mode learns only from
# human actions, pre-intervention ones under sirius, none under iwr and all.
UNTRAINED = {
    "successful-corrections": SOURCES == 0,
    "hg-dagger": SOURCES == 0,
    "sirius": np.isin(np.arange(len(SOURCES)), PRE_FRAMES),
    "iwr": NOTHING,
    "all": NOTHING,
}


@pytest.mark.parametrize("mode", list(SAMPLES))
def test_each_mode_leaves_its_untrained_actions_out_of_every_chunk(data_root, modes_data, mode):
    mix = make_mixture(DataConfig(repo_ids=modes_data, root=data_root, dagger_mode=mode), verbose=False,
                       delta_timestamps={"action": [i / 20 for i in range(8)]})
    assert mix.masks_action_frames == UNTRAINED[mode].any()
    for i in range(len(mix)):
        index = int(mix[i]["index"])
        steps = index + np.arange(8)
        beyond = steps > EPISODE_END[index]
        expected = beyond | UNTRAINED[mode][np.minimum(steps, EPISODE_END[index])]
        assert mix[i]["action_is_pad"].tolist() == expected.tolist(), index


@pytest.mark.parametrize("mode", ["successful-corrections", "hg-dagger"])
def test_demos_are_never_masked(data_root, data_demos, mode):
    from sir.data.record.synthetic import make_synthetic_dataset

    # sir labels its demos: every frame source 1.
    if not (data_root / "labelled_demos" / "meta" / "info.json").is_file():
        make_synthetic_dataset(data_root, "labelled_demos", [12, 15], dagger=[([1] * 12, 1), ([1] * 15, 0)], seed=12)
    mix = make_mixture(DataConfig(repo_ids=[data_demos, "labelled_demos"], root=data_root, dagger_mode=mode),
                       verbose=False, delta_timestamps={"action": [i / 20 for i in range(8)]})
    assert not mix.masks_action_frames
    for i in range(len(mix)):
        sample = mix[i]
        store, index = mix.stores[int(sample["dataset_index"])], int(sample["index"])
        end = store.ep_to[store.frame_episode[index]] - 1
        assert sample["action_is_pad"].tolist() == (index + np.arange(8) > end).tolist()


def test_a_handed_back_correction_of_12_steps_gave_the_policy_two_thirds_of_its_chunk_targets(data_root):
    """docs/dagger.md's figure (benchmarks/chunk_targets.py): at ACT's chunk of 20, the
    policy's actions after the hand-back were 67.5% of the targets of a 12-step correction's
    samples; they are the padding now."""
    from sir.data.record.synthetic import make_synthetic_dataset

    episodes = [dagger_episode((0, 25), (1, 12), (0, 30), success=True)]
    if not (data_root / "handed_back" / "meta" / "info.json").is_file():
        make_synthetic_dataset(data_root, "handed_back", [67], dagger=episodes, seed=13)
    mix = make_mixture(DataConfig(repo_ids="handed_back", root=data_root), verbose=False,
                       delta_timestamps={"action": [i / 20 for i in range(20)]})
    pads = torch.stack([mix[i]["action_is_pad"] for i in range(len(mix))])
    assert len(mix) == 12 and not pads[:, 0].any()
    assert float(pads.float().mean()) == pytest.approx((2 * 20 - 12 - 1) / (2 * 20)) == pytest.approx(0.675)


def tiny_act(mix):
    """A tiny ACT for ``mix``, its VAE on, as training builds it, and its preprocessor."""
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from sir.policies import build_config

    feats = dataset_to_policy_features(mix.features)
    out = {k: f for k, f in feats.items() if f.type is FeatureType.ACTION}
    cfg = build_config("act", "tiny", {k: f for k, f in feats.items() if k not in out}, out, "cpu")
    mix.fit_policy(cfg)
    torch.manual_seed(0)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=mix.stats)
    return make_policy(cfg, ds_meta=mix).train(), pre


@pytest.mark.parametrize("mode, start, trained", [
    # Human 69-71, then the policy's 72-78 after the hand-back: only human actions train.
    ("successful-corrections", 69, 3),
    ("hg-dagger", 69, 3),
    # Policy frames 0-4, then the pre-intervention window 5-19.
    ("sirius", 0, 5),
    # Every step of the chunk trains.
    ("iwr", 69, 10),
])
def test_a_masked_action_changes_no_act_loss(data_root, modes_data, mode, start, trained):
    mix = make_mixture(DataConfig(repo_ids=modes_data, root=data_root, dagger_mode=mode), verbose=False)
    policy, pre = tiny_act(mix)
    batch = torch.utils.data.default_collate([mix[sample_frames(mix).index(start)]])
    assert batch["action_is_pad"][0].tolist() == [False] * trained + [True] * (10 - trained)

    def loss(actions):
        torch.manual_seed(1)  # the same dropout and VAE draw for every call
        return float(policy.forward(pre({**batch, "action": actions}))[0])

    base = loss(batch["action"])
    for draw in range(2):  # the masked steps, random values twice: the same loss
        masked = batch["action"].clone()
        masked[0, trained:] = torch.randn(10 - trained, masked.shape[-1], generator=torch.Generator().manual_seed(draw))
        assert loss(masked) == base
    kept = batch["action"].clone()
    kept[0, trained - 1] += 10.0  # the last trained step
    assert loss(kept) != pytest.approx(base, rel=1e-3)


@pytest.mark.parametrize("mode", ["successful-corrections", "sirius", "iwr"])
def test_diffusion_is_asked_to_skip_padding_wherever_a_mode_masks_actions(data_root, modes_data, mode):
    from sir.training.config import TrainConfig
    from sir.training.model import StartingPoint, make_model

    mix = make_mixture(DataConfig(repo_ids=modes_data, root=data_root, dagger_mode=mode), verbose=False)
    said = []
    start = StartingPoint(None, None, "diffusion", False)
    model = make_model(TrainConfig(policy="diffusion", preset="tiny"), mix, start, "cpu", say=said.append)
    masks = mode != "iwr"
    assert model.config.do_mask_loss_for_padding is masks
    untrained = {"successful-corrections": "policy and pre-intervention", "sirius": "pre-intervention"}
    assert said == ([f"--dagger-mode {mode}: do_mask_loss_for_padding set, so {untrained[mode]} actions in a chunk "
                     "are not trained on"] if masks else [])


# -- lerobot 0.6's DAgger format: `intervention`, and the outcome under another name -----------


@pytest.mark.parametrize("outcome", ["next.success", "next.reward"])
@pytest.mark.parametrize("mode", list(SAMPLES))
def test_lerobots_intervention_datasets_sample_as_sirs_labels_in_every_mode(data_root, lerobot_dagger_dataset,
                                                                         outcome, mode):
    """The same episodes as sir labels them (``modes_data``), written by lerobot's writer with
    ``intervention`` and the outcome as next.success or as the final next.reward."""
    repo = lerobot_dagger_dataset(f"lerobot_modes_{outcome}", EPISODES, outcome)
    mix = make_mixture(DataConfig(repo_ids=repo, root=data_root, dagger_mode=mode, seed=1), verbose=False)
    assert sample_frames(mix) == SAMPLES[mode]
    probs = np.full(len(mix), 1 / len(mix)) if mix.sampler is None else mix.sampler.probabilities()
    intended = np.bincount(mix.class_of(np.arange(len(mix))), weights=probs, minlength=len(CLASS_NAMES))
    np.testing.assert_allclose(intended, SHARES[mode], atol=1e-12)
    assert mix.infos[0].labels.source == "intervention" and mix.infos[0].labels.success == outcome


@pytest.mark.parametrize("mode", list(SAMPLES))
def test_without_an_outcome_only_the_modes_that_need_none_train(data_root, lerobot_dagger_dataset, mode):
    repo = lerobot_dagger_dataset("lerobot_modes_no_outcome", EPISODES, None)
    config = DataConfig(repo_ids=repo, root=data_root, dagger_mode=mode, seed=1)
    if mode in ("successful-corrections", "sirius"):
        with pytest.raises(UserError) as exc:
            make_mixture(config, verbose=False)
        message = str(exc.value)
        assert f"--dagger-mode {mode} needs" in message and "'next.success'" in message and "'intervention'" in message
        assert "\n" not in message and "hg-dagger, iwr or all" in message
    else:
        assert sample_frames(make_mixture(config, verbose=False)) == SAMPLES[mode]
