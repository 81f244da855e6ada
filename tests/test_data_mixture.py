"""Parts 3, 4 and 9: several datasets as one, their compatibility, and their statistics."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sir.data import make_dataloader, make_mixture
from sir.data.mixture.config import DataConfig
from sir.errors import UserError


def test_samples_carry_their_dataset_and_a_global_episode(data_root, data_demos, data_demos_b):
    mix = make_mixture(DataConfig(repo_ids=f"{data_demos}, {data_demos_b}", root=data_root), verbose=False)
    assert mix.repo_ids == [data_demos, data_demos_b]  # a sample's dataset_index indexes these
    assert len(mix) == mix.num_frames == 115 + 67 and mix.num_episodes == 8
    first, last = mix[0], mix[len(mix) - 1]
    assert int(first["dataset_index"]) == 0 and int(first["episode_index"]) == 0
    assert int(last["dataset_index"]) == 1 and int(last["episode_index"]) == 5 + 2
    assert int(last["index"]) == 66  # the frame index stays the dataset's own
    batch = next(iter(make_dataloader(mix, batch_size=16)))
    assert batch["dataset_index"].shape == (16,) and batch["action"].shape == (16, 7)
    assert [i.total_episodes for i in mix.infos] == [5, 3]
    assert mix.disabled_features == []


@pytest.mark.parametrize(
    "other, words",
    [
        ("data_fps10", "records at 10 fps but 'demos' at 20 fps"),
        ("data_no_env_state", "'demos_no_env_state' lacks the policy input 'observation.environment_state'"),
        ("data_state8",
         "'observation.state' is float32 of shape (8,) in 'demos_state8' but float32 of shape (9,) in 'demos'"),
    ],
)
def test_incompatible_datasets_are_refused_naming_dataset_and_feature(request, data_root, data_demos, other, words):
    repo_id = request.getfixturevalue(other)
    with pytest.raises(UserError) as err:
        make_mixture(DataConfig(repo_ids=[data_demos, repo_id], root=data_root), verbose=False)
    assert words in str(err.value)


def test_other_features_missing_somewhere_are_dropped_with_a_warning(data_root, data_demos, data_no_reward, capsys):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_no_reward], root=data_root))
    assert mix.disabled_features == ["next.reward"]
    assert "next.reward" not in mix.features and "next.reward" not in mix[0] and "next.reward" not in mix.stats
    err = capsys.readouterr().err
    assert ("warning: dropping features not shared by every dataset: 'next.reward' (missing from 'demos_no_reward')"
            in err)
    assert "EnvSpec of 'demos_no_reward' differs from 'demos' (horizon: 400 vs 123)" in err


def test_dagger_labels_of_some_datasets_are_left_out_quietly(data_root, data_demos, data_dagger, capsys):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_dagger], root=data_root))
    captured = capsys.readouterr()
    assert mix.disabled_features == ["source", "success"] and "source" not in mix[len(mix) - 1]
    assert "warning" not in captured.err and "DAgger labels (source, success) are left out" in captured.out


def used_frames(root, repo_id, frames):
    """Columns of the given frames, read straight from the parquet files."""
    table = pq.read_table(sorted((root / repo_id / "data").glob("*/*.parquet"))[0]).to_pydict()
    return {k: np.asarray(v, dtype=np.float64)[frames] for k, v in table.items()
            if k in ("action", "observation.state", "next.reward")}


def test_stats_equal_those_of_the_concatenated_used_frames(data_root, data_demos, data_demos_b, data_dagger,
                                                           data_dagger_episodes):
    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_demos_b, data_dagger], root=data_root,
                                  episodes=f"{data_demos_b}=0,2"), verbose=False)
    dagger_frames = [i for i, (s, ok) in enumerate(
        (s, ok) for sources, ok in data_dagger_episodes for s in sources) if s == 1 and ok == 1]
    parts = [
        used_frames(data_root, data_demos, np.arange(115)),
        used_frames(data_root, data_demos_b, np.r_[0:15, 55:67]),
        used_frames(data_root, data_dagger, np.array(dagger_frames)),
    ]
    for key in ("action", "observation.state", "next.reward"):
        every = np.concatenate([p[key] for p in parts]).reshape(
            -1, 1 if key == "next.reward" else parts[0][key].shape[-1])
        stats = mix.stats[key]
        assert stats["count"].tolist() == [len(every)] == [115 + 27 + 22]
        np.testing.assert_allclose(stats["mean"], every.mean(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(stats["std"], every.std(0), rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(stats["min"], every.min(0))
        np.testing.assert_array_equal(stats["max"], every.max(0))
        for name, q in (("q01", 0.01), ("q10", 0.1), ("q50", 0.5), ("q90", 0.9), ("q99", 0.99)):
            np.testing.assert_allclose(stats[name], np.quantile(every, q, axis=0), rtol=1e-10)
        assert stats["mean"].shape == (every.shape[1],)


def episode_image_stats(root, repo_id, key):
    table = pq.read_table(sorted((root / repo_id / "meta" / "episodes").glob("*/*.parquet"))[0]).to_pydict()
    return [{s: np.asarray(table[f"stats/{key}/{s}"][e], dtype=np.float64) for s in ("mean", "std", "min", "max")}
            for e in range(len(table["episode_index"]))]


def test_camera_stats_pool_the_used_episodes_by_their_frames(data_root, data_camera, data_camera_b):
    key = "observation.images.agentview"
    mix = make_mixture(DataConfig(repo_ids=[data_camera, data_camera_b], root=data_root,
                                  episodes=f"{data_camera_b}=1:3"), use_imagenet_stats=False, verbose=False)
    per_episode = (episode_image_stats(data_root, data_camera, key)[:2]
                   + episode_image_stats(data_root, data_camera_b, key)[1:3])
    counts = np.array([8, 6, 7, 4], dtype=np.float64).reshape(-1, 1, 1, 1)
    means = np.stack([e["mean"] for e in per_episode])
    mean = (counts * means).sum(0) / counts.sum()
    var = (counts * (np.stack([e["std"] for e in per_episode]) ** 2 + (means - mean) ** 2)).sum(0) / counts.sum()
    stats = mix.stats[key]
    assert stats["mean"].shape == (3, 1, 1) and stats["count"].tolist() == [25]
    np.testing.assert_allclose(stats["mean"], mean)
    np.testing.assert_allclose(stats["std"], np.sqrt(var))
    np.testing.assert_array_equal(stats["min"], np.min([e["min"] for e in per_episode], 0))
    # By default, as lerobot's training does, cameras are normalized with ImageNet's mean/std.
    default = make_mixture(DataConfig(repo_ids=[data_camera, data_camera_b], root=data_root), verbose=False)
    np.testing.assert_allclose(default.stats[key]["mean"].ravel(), [0.485, 0.456, 0.406])


@pytest.mark.slow
def test_the_mixture_stands_in_for_lerobot_dataset_metadata(data_root, data_demos, data_dagger):
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    mix = make_mixture(DataConfig(repo_ids=[data_demos, data_dagger], root=data_root), verbose=False)
    cfg = ACTConfig(device="cpu", dim_model=16, n_heads=2, dim_feedforward=32, n_encoder_layers=1,
                    n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=4, chunk_size=10, n_action_steps=10)
    mix.fit_policy(cfg)
    assert mix[0]["action"].shape == (10, 7) and mix[0]["action_is_pad"].shape == (10,)
    policy = make_policy(cfg, ds_meta=mix)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=mix.stats)
    batch = pre(next(iter(make_dataloader(mix, batch_size=4))))
    loss, _ = policy.forward(batch)
    assert torch.isfinite(loss)
    assert set(cfg.input_features) == {"observation.state", "observation.environment_state"}


def test_image_transforms_augment_camera_frames_with_lerobots_transforms(data_root, data_camera):
    import torch

    from sir.data.mixture.config import image_transforms

    key = "observation.images.agentview"
    plain = make_mixture(DataConfig(repo_ids=data_camera, root=data_root), verbose=False)
    augmented = make_mixture(DataConfig(repo_ids=data_camera, root=data_root), verbose=False,
                             image_transforms=image_transforms(["affine"]))
    torch.manual_seed(0)
    a, b = plain[3], augmented[3]
    assert b[key].shape == a[key].shape and b[key].dtype == a[key].dtype
    assert not torch.equal(a[key], b[key])  # rotated and shifted
    assert torch.equal(a["observation.state"], b["observation.state"])  # only camera frames change
    assert image_transforms(None) is None and image_transforms([]) is None
    assert len(image_transforms(["lerobot"]).transforms) == 6
