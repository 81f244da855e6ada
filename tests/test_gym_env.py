"""sir's Robosuite tasks as gymnasium envs: sir's seeds and layout, gymnasium's checker, and
lerobot's own rollout() scoring a trained model episode for episode as sir.eval does."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

from sir.envs import make_gym_env, make_gym_vector_env
from sir.envs.factory import make_env, observation_to_features, reset_env
from sir.envs.gym_env import gym_id
from sir.envs.spec import TASK_DESCRIPTIONS, default_spec
from sir.errors import UserError

# Evaluation seeds as sir.eval's default; episodes run two to a batch on both sides.
SEED = 100_000
EPISODES = 4
WIDTH = 2
# The model below lifts the cube in 45 to 110 steps, or not at all; an 80-step limit keeps
# the test short and leaves it episodes of both outcomes.
HORIZON = 80


def test_seeded_reset_is_sirs_reset_and_leaves_the_callers_rng_alone():
    spec = default_spec("Lift")
    env = make_gym_env(spec, render_mode=None)
    reference = make_env(spec)
    for seed in (0, 7):
        np.random.seed(123)
        caller = np.random.get_state()[1].copy()
        obs, info = env.reset(seed=seed)
        assert np.array_equal(np.random.get_state()[1], caller)
        want = observation_to_features(reset_env(reference, seed), spec)
        assert np.array_equal(obs["agent_pos"], want["observation.state"])
        assert np.array_equal(obs["environment_state"], want["observation.environment_state"])
        assert np.array_equal(env.unwrapped.robosuite_env.sim.data.qpos, reference.sim.data.qpos)
        assert info == {"is_success": False}
    assert (env.reset(seed=0)[0]["environment_state"][:3].tolist()
            != env.reset(seed=7)[0]["environment_state"][:3].tolist())
    env.close()
    reference.close()


def test_gymnasium_make_and_env_checker_with_a_camera():
    from gymnasium.utils.env_checker import check_env

    env = gym.make(gym_id("Lift"), cameras=["agentview"], image_size=32)
    assert env.unwrapped is env, "lerobot reads task_description off the sub-envs; wrappers would hide it"
    assert env.task_description == "lift the cube" and env._max_episode_steps == 400
    assert env.metadata["render_fps"] == 20
    assert env.action_space == gym.spaces.Box(-1, 1, (7,), np.float32)
    obs, _ = env.reset(seed=1)
    assert set(obs) == {"agent_pos", "environment_state", "pixels"}
    assert obs["pixels"]["agentview"].shape == (32, 32, 3) and obs["pixels"]["agentview"].dtype == np.uint8
    assert obs["agent_pos"].shape == (9,) and obs["agent_pos"].dtype == np.float32
    assert env.render().shape == (256, 256, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    # State vectors are unbounded: the checker's two notes about infinite bounds are expected.
    complaints = [str(w.message) for w in caught if "WARN" in str(w.message) and "infinity" not in str(w.message)]
    assert not complaints, complaints
    env.close()


def test_every_task_is_registered_and_a_spec_for_another_task_is_refused():
    assert all(gym_id(name) in gym.registry for name in TASK_DESCRIPTIONS)
    with pytest.raises(UserError, match="make sir/Lift-v0"):
        gym.make(gym_id("Stack"), spec=default_spec("Lift").to_dict())


@pytest.fixture(scope="module")
def lift_model(lift_demos, tmp_path_factory):
    """A tiny ACT trained briefly on the scripted Lift demos: it succeeds on some starts only."""
    from sir.policies.checkpoint import load_checkpoint
    from sir.training.config import TrainConfig
    from sir.training.trainer import train

    root, repo_id = lift_demos
    result = train(TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=8,
                               training_steps=120, no_eval=True, device="cpu", log_freq=1000,
                               checkpoint_dir=str(tmp_path_factory.mktemp("gym_checkpoints"))))
    policy, preprocessor, postprocessor, spec, _ = load_checkpoint(result.final_model, device="cpu")
    return policy, preprocessor, postprocessor, dataclasses.replace(spec, horizon=HORIZON)


def lerobot_episodes(policy, preprocessor, postprocessor, spec):
    """(success, length, reward, actions) per episode, from lerobot's rollout() and its own
    way of reading one (eval_policy: an episode ends at its first done)."""
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.scripts.lerobot_eval import rollout

    env = make_gym_vector_env(spec, n_envs=WIDTH, render_mode=None)
    # What lerobot's make_env_pre_post_processors gives an env other than LIBERO: identities.
    env_preprocessor, env_postprocessor = PolicyProcessorPipeline(steps=[]), PolicyProcessorPipeline(steps=[])
    policy.eval()
    threads = torch.get_num_threads()
    # sir's evaluation computes actions on one thread; so must this, for bit-equal actions.
    torch.set_num_threads(1)
    episodes = []
    try:
        for start in range(SEED, SEED + EPISODES, WIDTH):
            data = rollout(env, policy, env_preprocessor, env_postprocessor, preprocessor, postprocessor,
                           seeds=list(range(start, start + WIDTH)))
            ends = torch.argmax(data["done"].int(), dim=1)
            for row, end in enumerate(ends.tolist()):
                episodes.append((bool(data["success"][row, :end + 1].any()), end + 1,
                                 float(data["reward"][row, :end + 1].sum()), data["action"][row, :end + 1]))
    finally:
        torch.set_num_threads(threads)
        env.close()
    return episodes


def sir_episodes(policy, preprocessor, postprocessor, spec):
    from sir.eval.rollout import evaluate_policy

    calls = []

    def recording_postprocessor(action):
        calls.append(postprocessor(action))
        return calls[-1]

    metrics = evaluate_policy(policy, preprocessor, recording_postprocessor, spec, EPISODES, None, seed=SEED,
                              workers=1, batch_width=WIDTH)
    per_episode = metrics["per_episode"]
    episodes, first_call = [], 0
    # A wave of WIDTH episodes calls the policy until its longest episode ends; row i is episode i's.
    for wave in range(0, EPISODES, WIDTH):
        rows = per_episode[wave:wave + WIDTH]
        actions = torch.stack(calls[first_call:first_call + max(e["length"] for e in rows)], dim=1)
        first_call += actions.shape[1]
        for row, e in enumerate(rows):
            episodes.append((e["success"], e["length"], e["reward"], actions[row, :e["length"]]))
    assert first_call == len(calls)
    return episodes


@pytest.mark.slow
def test_lerobot_rollout_scores_sirs_envs_as_sir_eval_does(lift_model):
    ours = sir_episodes(*lift_model)
    theirs = lerobot_episodes(*lift_model)
    assert [(s, n) for s, n, _, _ in theirs] == [(s, n) for s, n, _, _ in ours]
    successes = [s for s, _, _, _ in ours]
    assert any(successes) and not all(successes), f"the comparison needs both outcomes: {ours}"
    for (_, _, reward, actions), (_, _, want_reward, want_actions) in zip(theirs, ours, strict=True):
        assert torch.equal(actions, want_actions)
        assert reward == pytest.approx(want_reward, rel=1e-9)
