"""The scripted experts.

Episodes run as ``sir.data.collect`` runs them: one expert with the recording noise
(--noise 0.1 --target-jitter 0.01), seeds 0, 1, ..., and its 200-step default limit.
benchmarks/expert_success.py measures them over more seeds.
"""

import numpy as np
import pytest

from sir.data.record.runner import ExpertActor, run_episode
from sir.envs.factory import make_env
from sir.envs.spec import default_spec
from sir.errors import UserError
from sir.experts import EXPERTS, ExpertNoise, make_expert
from sir.experts.base import gripper_down, quat_to_mat, rotate_towards, wrap_angle, yaw_of
from sir.experts.grasping import GRIPPER_CLOSED, GRIPPER_OPEN, GraspingExpert
from sir.experts.lift import LiftExpert
from sir.experts.pick_place_can import PickPlaceCanExpert
from sir.experts.square import FINAL_POSES, WRIST_LIMIT, SquareExpert
from sir.experts.stack import StackExpert

RECORDING_NOISE = ExpertNoise(action_std=0.1, target_jitter=0.01)
MAX_STEPS = 200


def successes(env_name: str, seeds: range, max_steps: int = MAX_STEPS) -> int:
    spec = default_spec(env_name, horizon=max_steps)
    env = make_env(spec)
    expert = make_expert(env_name, RECORDING_NOISE, seed=0)
    try:
        return sum(run_episode(env, spec, ExpertActor(expert), seed, max_steps).success for seed in seeds)
    finally:
        env.close()


@pytest.mark.parametrize(
    "env_name, cls",
    [
        ("Lift", LiftExpert),
        ("PickPlaceCan", PickPlaceCanExpert),
        ("NutAssemblySquare", SquareExpert),
        ("Stack", StackExpert),
    ],
)
def test_each_task_has_its_expert_registered(env_name, cls):
    assert EXPERTS[env_name] is cls
    assert isinstance(make_expert(env_name, RECORDING_NOISE, seed=0), cls)


def test_unknown_expert_is_a_user_error():
    with pytest.raises(UserError, match="no scripted expert"):
        make_expert("NoSuchTask")


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


class BoxExpert(GraspingExpert):
    """The shared phases on a made-up object, driven by hand-built observations."""

    def object_position(self, obs):
        return obs["box_pos"]

    def carry_height(self, s):
        return 1.0

    def place_point(self, s):
        return np.array([0.2, 0.0, 0.85])


def box_obs(gap: float) -> dict[str, np.ndarray]:
    return {
        "robot0_eef_pos": np.array([0.0, 0.0, 0.82]),
        "robot0_eef_quat": np.array([1.0, 0.0, 0.0, 0.0]),  # gripper down, heading 0
        "robot0_gripper_qpos": np.array([gap / 2, -gap / 2]),
        "box_pos": np.array([0.0, 0.0, 0.82]),
    }


def test_fingers_that_stop_on_nothing_open_rise_and_approach_again():
    expert = BoxExpert()
    expert.reset(env=None)
    expert.phase = "close"
    closing = [expert.act(box_obs(gap=0.0)) for _ in range(expert.min_close_steps)]
    assert all(a[-1] == GRIPPER_CLOSED for a in closing)
    assert expert.phase == "regrasp"
    opening = [expert.act(box_obs(gap=0.0)) for _ in range(expert.open_steps - 1)]
    assert all(a[-1] == GRIPPER_OPEN and a[2] > 0 for a in opening)
    assert expert.phase == "hover"


def test_a_grasp_that_slips_while_carried_starts_over_at_once():
    expert = BoxExpert()
    expert.reset(env=None)
    expert.phase = "carry"
    action = expert.act(box_obs(gap=0.0))
    assert expert.phase == "regrasp"
    assert action[-1] == GRIPPER_OPEN and action[2] > 0


def test_fingers_stopped_round_the_object_lift_it():
    expert = BoxExpert()
    expert.reset(env=None)
    expert.phase = "close"
    for _ in range(expert.min_close_steps):
        action = expert.act(box_obs(gap=0.04))
    assert expert.phase == "lift"
    assert action[-1] == GRIPPER_CLOSED and action[2] > 0


@pytest.mark.parametrize("nut_yaw", np.linspace(-np.pi, np.pi, 13))
def test_square_plan_ends_in_an_allowed_pose_within_the_wrist_range(nut_yaw):
    wrist = 0.8  # the Panda's last joint at robosuite's home pose
    grasp_turn, carry_turn = SquareExpert().plan_turns(nut_yaw, 0.0, wrist)
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


def test_lift_expert_succeeds_on_at_least_9_of_10_seeds_within_150_steps():
    assert successes("Lift", range(10), max_steps=150) >= 9


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


# -- taking over mid-task: sir.dagger's scripted corrector --------------------------------
# The corrector's expert plans from the state it finds (GraspingExpert.resume): taking over
# from a policy that holds the object, it goes on holding it.

HELD_OBJECT = {
    "Lift": lambda env: env.cube,
    "PickPlaceCan": lambda env: env.objects[env.object_id],
    "NutAssemblySquare": lambda env: env.nuts[env.nut_id],
    "Stack": lambda env: env.cubeA,
}


class ExpertUntilHeld:
    """A policy answering as lerobot's do (``select_action``, ``reset``): the task's expert
    until it reaches ``freeze_phase`` holding the object, then still (zero action: the arm
    stops, the fingers stay as they are). It reads the state from the env, and notes at each
    step whether robosuite finds the object grasped (fingerpads on both sides)."""

    def __init__(self, env, env_name: str, freeze_phase: str):
        self.env, self.env_name, self.freeze_phase = env, env_name, freeze_phase
        self.expert = make_expert(env_name, seed=1)

    def start(self) -> None:
        self.expert.reset(self.env)
        self.frozen = False
        self.grasped: list[bool] = []

    def reset(self) -> None:
        pass  # asked for fresh plans while corrected: the queue-less expert has none to drop

    def select_action(self, batch):
        import torch

        env = self.env
        self.grasped.append(env._check_grasp(gripper=env.robots[0].gripper,
                                             object_geoms=HELD_OBJECT[self.env_name](env)))
        action = np.zeros(7, dtype=np.float32)
        if not self.frozen:
            action = self.expert.act(env._get_observations())
            self.frozen = self.expert.phase == self.freeze_phase
        return torch.as_tensor(action)[None]


def held_takeovers(env_name: str, freeze_phase: str, seeds: range, max_steps: int = 300):
    """Episodes of the still-standing policy under the scripted corrector, with the policy's
    notes of the grasp at every step."""
    from sir.dagger.corrector import ScriptedCorrector
    from sir.dagger.record import CorrectedPolicy

    spec = default_spec(env_name, horizon=max_steps)
    env = make_env(spec)
    policy = ExpertUntilHeld(env, env_name, freeze_phase)
    actor = CorrectedPolicy(policy, lambda b: b, lambda a: a, ScriptedCorrector(make_expert(env_name, seed=0)),
                            spec.task)
    runs = []
    try:
        for seed in seeds:
            policy.start()
            runs.append((run_episode(env, spec, actor, seed, max_steps), policy.grasped))
    finally:
        env.close()
    return runs


def held_corrections(episode, grasped, first_steps: int = 5):
    """The corrections that began with the object grasped, away from its target, with the
    gripper's commands and the grasp at each of their steps: all of them where the correction
    handed back at its sub-goal (before any release), else its first ``first_steps``."""
    for c in episode.corrections:
        if grasped[c["step"]] and c["phase"] in ("close", "lift", "carry"):
            steps = range(c["step"], c["step"] + (c["steps"] if c["hand_back"] == "subgoal"
                                                  else min(c["steps"], first_steps)))
            yield c, [episode.frames[t]["action"][-1] for t in steps], [grasped[t] for t in steps]


@pytest.mark.parametrize("env_name, freeze_phase", [
    ("Lift", "lift"), ("PickPlaceCan", "carry"), ("NutAssemblySquare", "carry"), ("Stack", "carry"),
])
def test_a_takeover_while_the_policy_holds_the_object_keeps_it_held(env_name, freeze_phase):
    [(episode, grasped)] = held_takeovers(env_name, freeze_phase, range(1))
    held = list(held_corrections(episode, grasped))
    assert held, episode.corrections
    for correction, commands, grasp in held:
        assert all(g == GRIPPER_CLOSED for g in commands), (correction, commands)
        assert all(grasp), (correction, grasp)
    assert episode.success, episode.corrections


@pytest.mark.slow
@pytest.mark.parametrize("env_name, freeze_phase", [
    ("Lift", "lift"), ("PickPlaceCan", "lift"), ("PickPlaceCan", "carry"), ("NutAssemblySquare", "carry"),
    ("Stack", "carry"),
])
def test_takeovers_of_a_held_object_finish_the_task_on_most_seeds(env_name, freeze_phase):
    runs = held_takeovers(env_name, freeze_phase, range(1, 6))
    for episode, grasped in runs:
        for correction, commands, grasp in held_corrections(episode, grasped):
            assert all(g == GRIPPER_CLOSED for g in commands) and all(grasp), correction
    assert sum(episode.success for episode, _ in runs) >= 4, [e.corrections for e, _ in runs]


def test_the_phase_read_from_a_state_keeps_a_held_object_held():
    expert = BoxExpert()
    expert.reset(env=None)
    held = box_obs(gap=0.04)
    assert expert.read_phase(held) == "close"  # fingers round it, still on the table: close on, then lift
    raised = {**held, "box_pos": held["box_pos"] + [0, 0, 0.05],
              "robot0_eef_pos": held["robot0_eef_pos"] + [0, 0, 0.05]}
    assert expert.read_phase(raised) == "lift"
    over = {**raised, "box_pos": np.array([0.2, 0.0, 1.0]), "robot0_eef_pos": np.array([0.2, 0.0, 1.0])}
    assert expert.read_phase(over) == "lower"
    assert expert.phase == "hover"  # reading leaves the plan alone
    expert.resume()
    action = expert.act(raised)
    assert (expert.resumed_phase, expert.phase) == ("lift", "lift")
    assert action[-1] == GRIPPER_CLOSED and action[2] > 0
    # Open fingers just above the object go on down; anywhere else low, back off upwards first.
    assert expert.read_phase({**held, "robot0_gripper_qpos": np.array([0.04, -0.04])}) == "descend"
    aside = {**held, "robot0_gripper_qpos": np.array([0.04, -0.04]), "robot0_eef_pos": np.array([0.1, 0.0, 0.82])}
    assert expert.read_phase(aside) == "regrasp"
