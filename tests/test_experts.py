"""The scripted PickPlaceCan, NutAssemblySquare and Stack experts (Lift: test_lift_expert.py).

Episodes run as ``sir.data.collect`` runs them: one expert with the recording noise
(--noise 0.1 --target-jitter 0.01), seeds 0, 1, ..., and its 200-step default limit.
"""

import numpy as np
import pytest

from sir.data.collect import run_expert_episode
from sir.envs.factory import make_env
from sir.envs.spec import default_spec
from sir.experts import EXPERTS, ExpertNoise, make_expert
from sir.experts.base import gripper_down, quat_to_mat, rotate_towards, wrap_angle, yaw_of
from sir.experts.pick_place_can import PickPlaceCanExpert
from sir.experts.square import FINAL_POSES, WRIST_LIMIT, SquareExpert
from sir.experts.stack import StackExpert

RECORDING_NOISE = ExpertNoise(action_std=0.1, target_jitter=0.01)
MAX_STEPS = 200


def successes(env_name: str, seeds: range) -> int:
    spec = default_spec(env_name, horizon=MAX_STEPS)
    env = make_env(spec)
    expert = make_expert(env_name, RECORDING_NOISE, seed=0)
    try:
        return sum(run_expert_episode(env, spec, expert, seed, MAX_STEPS)[1] for seed in seeds)
    finally:
        env.close()


@pytest.mark.parametrize(
    "env_name, cls",
    [
        ("PickPlaceCan", PickPlaceCanExpert),
        ("NutAssemblySquare", SquareExpert),
        ("Stack", StackExpert),
    ],
)
def test_each_task_has_its_expert_registered(env_name, cls):
    assert EXPERTS[env_name] is cls
    assert isinstance(make_expert(env_name, RECORDING_NOISE, seed=0), cls)


def test_gripper_down_headings_round_trip_through_yaw_and_need_no_rotation():
    for yaw in np.linspace(-3, 3, 7):
        target = gripper_down(yaw)
        assert yaw_of(target) == pytest.approx(yaw)
        np.testing.assert_allclose(rotate_towards(target, target, gain=1.0), 0.0, atol=1e-9)
    # robosuite's home pose (quaternion x, y, z, w) points the gripper down at heading ~0.
    home = quat_to_mat([0.997, 0.0, 0.072, -0.01])
    assert abs(yaw_of(home)) < 0.05
    assert home[2, 2] < -0.98


def test_rotation_command_turns_about_world_z_towards_the_target_heading():
    command = rotate_towards(gripper_down(0.0), gripper_down(0.2), gain=1.0)
    np.testing.assert_allclose(command, [0.0, 0.0, 0.4], atol=1e-6)  # robosuite converts through float32 quaternions


@pytest.mark.parametrize("nut_yaw", np.linspace(-np.pi, np.pi, 13))
def test_square_plan_ends_in_an_allowed_pose_within_the_wrist_range(nut_yaw):
    wrist = 0.8  # the Panda's last joint at robosuite's home pose
    grasp_turn, carry_turn = SquareExpert()._plan_turns(nut_yaw, 0.0, wrist)
    # The fingers close across the handle, so the gripper's heading matches the nut's (mod pi).
    assert wrap_angle(grasp_turn - nut_yaw, np.pi) == pytest.approx(0.0, abs=1e-9)
    final_nut_yaw, final_eef_yaw = nut_yaw + carry_turn, grasp_turn + carry_turn
    assert any(
        abs(wrap_angle(final_nut_yaw - goal)) < 1e-6
        and abs(wrap_angle(final_eef_yaw - eef_yaw)) < 1e-6
        for goal, eef_yaw in FINAL_POSES
    )
    assert abs(wrist - grasp_turn) <= WRIST_LIMIT
    assert abs(wrist - grasp_turn - carry_turn) <= WRIST_LIMIT


@pytest.mark.parametrize("env_name", ["PickPlaceCan", "NutAssemblySquare", "Stack"])
def test_expert_succeeds_on_its_first_two_seeds_with_recording_noise(env_name):
    assert successes(env_name, range(2)) == 2


@pytest.mark.slow
def test_stack_expert_succeeds_on_at_least_45_of_50_seeds():
    assert successes("Stack", range(50)) >= 45


# PickPlaceCan and NutAssemblySquare take over a second an episode: 20 seeds keep these
# under a minute. Over seeds 0-49 both succeed 50/50.
@pytest.mark.slow
def test_pick_place_can_expert_succeeds_on_at_least_18_of_20_seeds():
    assert successes("PickPlaceCan", range(20)) >= 18


@pytest.mark.slow
def test_square_expert_succeeds_on_at_least_18_of_20_seeds():
    assert successes("NutAssemblySquare", range(20)) >= 18
