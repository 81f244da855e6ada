import pytest

from sir.data.collect import run_expert_episode
from sir.envs.factory import make_env
from sir.envs.spec import default_spec
from sir.errors import UserError
from sir.experts import ExpertNoise, make_expert


def test_lift_expert_succeeds_on_at_least_9_of_10_seeds_with_recording_noise():
    spec = default_spec("Lift", horizon=200)
    env = make_env(spec)
    expert = make_expert("Lift", ExpertNoise(action_std=0.1, target_jitter=0.01), seed=0)
    successes = sum(run_expert_episode(env, spec, expert, seed, 150)[1] for seed in range(10))
    env.close()
    assert successes >= 9


def test_unknown_expert_is_a_user_error():
    with pytest.raises(UserError, match="no scripted expert"):
        make_expert("NoSuchTask")
