import numpy as np
import pytest

from sir.envs.factory import make_env, observation_to_features, reset_env
from sir.envs.layout import spec_from_features
from sir.envs.spec import ENV_STATE_FEATURE, STATE_FEATURE, EnvSpec
from sir.errors import UserError
from sir.eval.worker import ENV_BUILD_SEED


def test_env_spec_round_trips_through_json(tmp_path):
    spec = EnvSpec(env_name="Lift", robots=["Panda"], cameras=["agentview"], image_size=64,
                   state_keys=["robot0_eef_pos"], env_state_keys=["cube_pos"])
    spec.save(tmp_path / "meta")
    assert EnvSpec.load(tmp_path) == spec


def test_dataset_without_spec_uses_env_and_robot_flags_and_its_own_cameras():
    features = {STATE_FEATURE: {"shape": (9,)}, "observation.images.frontview": {"shape": (64, 64, 3)}}
    spec = spec_from_features(features, "Stack", "Sawyer")
    assert (spec.env_name, spec.robots) == ("Stack", ["Sawyer"])
    assert (spec.cameras, spec.image_size, spec.env_state_keys) == (["frontview"], 64, [])


def test_observation_layout_follows_the_spec_keys_in_order():
    spec = EnvSpec(state_keys=["robot0_gripper_qpos", "robot0_eef_pos"], env_state_keys=["cube_pos"], horizon=10)
    env = make_env(spec)
    obs = reset_env(env, 3)
    feats = observation_to_features(obs, spec)
    np.testing.assert_allclose(feats[STATE_FEATURE],
                               np.concatenate([obs["robot0_gripper_qpos"], obs["robot0_eef_pos"]]), rtol=1e-6)
    np.testing.assert_allclose(feats[ENV_STATE_FEATURE], obs["cube_pos"], rtol=1e-6)
    assert feats[STATE_FEATURE].dtype == np.float32
    env.close()


def test_same_seed_gives_same_initial_state():
    env = make_env(EnvSpec(horizon=10))
    a = reset_env(env, 7)["cube_pos"].copy()
    reset_env(env, 8)
    b = reset_env(env, 7)["cube_pos"]
    np.testing.assert_array_equal(a, b)
    env.close()


def test_unknown_env_and_missing_observation_key_are_user_errors():
    with pytest.raises(UserError, match="Unknown Robosuite env"):
        make_env(EnvSpec(env_name="NoSuchTask"))
    spec = EnvSpec(state_keys=["no_such_key"], horizon=10)
    env = make_env(spec)
    with pytest.raises(UserError, match="no_such_key"):
        observation_to_features(reset_env(env, 0), spec)
    env.close()


def test_two_envs_of_one_spec_start_from_the_same_state_for_a_seed():
    spec = EnvSpec(horizon=10)
    first = make_env(spec)
    np.random.seed(12345)  # whatever the global RNG held before, the model is the same
    second = make_env(spec)
    a, b = reset_env(first, 4), reset_env(second, 4)
    for key in ("cube_pos", "cube_quat", "robot0_eef_pos"):
        np.testing.assert_array_equal(a[key], b[key])
    first.close()
    second.close()


def test_a_soft_reset_starts_where_a_freshly_built_env_starts():
    """Envs are reset softly (the MuJoCo model is kept; robosuite's hard reset rebuilds it
    from XML every episode). An env reset for seed 5 after another episode, pushed around,
    must start, and go on, exactly like a new env (a model built afresh) reset for seed 5."""
    spec = EnvSpec(horizon=10)
    used = make_env(spec, build_seed=ENV_BUILD_SEED)
    reset_env(used, 9)
    rng = np.random.default_rng(0)
    for _ in range(15):
        used.step(rng.uniform(-1, 1, 7))
    fresh = make_env(spec, build_seed=ENV_BUILD_SEED)
    starts = [reset_env(env, 5) for env in (used, fresh)]
    for key in starts[0]:
        np.testing.assert_array_equal(starts[0][key], starts[1][key], err_msg=key)
    np.testing.assert_array_equal(used.sim.model.geom_size, fresh.sim.model.geom_size)  # the cube's size
    for action in np.random.default_rng(1).uniform(-1, 1, (5, 7)):
        obs = [env.step(action)[0] for env in (used, fresh)]
        for key in obs[0]:
            np.testing.assert_array_equal(obs[0][key], obs[1][key], err_msg=key)
    np.testing.assert_array_equal(used.sim.data.qpos, fresh.sim.data.qpos)
    np.testing.assert_array_equal(used.sim.data.qvel, fresh.sim.data.qvel)
    used.close()
    fresh.close()
