"""Task priors (tt_deploy/obs/priors.py) at hand-built states, and their round trip through skill.json."""

import math

import numpy as np
import pytest

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.obs.priors import make_prior
from tt_deploy.obs.prompts import FAR_SLOT, HEADING_ENTRY
from tt_deploy.obs.rotations import heading_angle, quat_about_z
from tt_deploy.obs.state import BodyState

DT = spec.CONTROL_DT
ENTRY = {b: i for i, b in enumerate(spec.CONDITIONABLE_BODIES)}


def state_at(root=(1.0, 2.0, 0.94), yaw=0.0, n=1) -> BodyState:
    pos = np.tile(np.asarray(root, float), (n, spec.NUM_BODIES, 1))
    quat = np.tile(quat_about_z(np.float64(yaw)), (n, spec.NUM_BODIES, 1))
    z = np.zeros((n, spec.NUM_BODIES, 3))
    return BodyState(pos, quat, z, z.copy())


def test_direction_prior_is_a_pelvis_carrot_one_second_ahead():
    prior = make_prior("direction", 1)
    s = state_at()
    prior.reset([0], s)
    t = prior(state_at(root=(3.0, 2.0, 0.90)), {"direction": [[0.0, 1.0]], "speed": [0.5]})
    np.testing.assert_allclose(t.body_pos[0, FAR_SLOT, ENTRY["Pelvis"]], [3.0, 2.5, 0.94])  # z from the reset
    np.testing.assert_allclose(t.root_lin_vel[0, FAR_SLOT], [0.0, 0.5, 0.0])
    assert heading_angle(t.root_quat[0, FAR_SLOT][None])[0] == pytest.approx(math.pi / 2)
    assert t.time_to_target[0, FAR_SLOT] == pytest.approx(1.0)
    assert t.visible[0, FAR_SLOT, ENTRY["Pelvis"], 0] and t.visible[0, FAR_SLOT, HEADING_ENTRY].all()
    assert t.token_mask[0].tolist() == [False] * FAR_SLOT + [True]


def test_steering_prior_faces_the_facing_direction_while_moving_along_the_command():
    prior = make_prior("steering", 1)
    prior.reset([0], state_at())
    t = prior(state_at(), {"direction": [[1.0, 0.0]], "speed": [0.4], "facing": [[0.0, -1.0]]})
    assert heading_angle(t.root_quat[0, FAR_SLOT][None])[0] == pytest.approx(-math.pi / 2)
    np.testing.assert_allclose(t.root_lin_vel[0, FAR_SLOT], [0.4, 0.0, 0.0])


def test_reach_prior_counts_down_to_ten_steps_before_measuring():
    prior = make_prior("reach", 3)
    prior.reset(np.arange(3), state_at(n=3))
    target = np.tile([1.5, 2.0, 1.2], (3, 1))
    t = prior(state_at(n=3), {"target": target, "goal_age_steps": [0, 40, 58]})
    np.testing.assert_allclose(t.time_to_target[:, FAR_SLOT], np.array([50, 10, 3]) * DT)  # ref clamp(min=3)
    np.testing.assert_allclose(t.body_pos[:, FAR_SLOT, ENTRY["R_Hand"]], target)


def test_strike_prior_switches_to_the_hand_once_within_reach_and_stays():
    prior = make_prior("strike", 1)
    prior.reset([0], state_at(root=(0.0, 0.0, 0.94)))
    goal = {"target": [[3.0, 0.0, 0.9]]}
    far = prior(state_at(root=(0.0, 0.0, 0.94)), goal)
    assert not far.visible[0, FAR_SLOT, ENTRY["R_Hand"]].any() and far.visible[0, FAR_SLOT, HEADING_ENTRY].all()
    np.testing.assert_allclose(far.root_lin_vel[0, FAR_SLOT], [1.0, 0.0, 0.0])
    assert not prior(state_at(root=(2.4, 0.0, 0.94)), goal).visible[0, FAR_SLOT, ENTRY["R_Hand"]].any()  # 0.6 m
    near = prior(state_at(root=(2.5, 0.0, 0.94)), goal)  # 0.5 m < strike_radius 0.55 m
    assert near.visible[0, FAR_SLOT, ENTRY["R_Hand"], 0] and near.time_to_target[0, FAR_SLOT] == pytest.approx(0.3)
    again = prior(state_at(root=(0.0, 0.0, 0.94)), goal)  # walked away again: phases only advance
    assert again.visible[0, FAR_SLOT, ENTRY["R_Hand"], 0]
    prior.reset([0], state_at())
    assert prior.phase[0] == 0


def test_long_jump_prior_runs_toward_the_goal():
    prior = make_prior("long_jump", 1, speed=1.2)
    prior.reset([0], state_at(root=(0.0, 0.0, 0.94)))
    t = prior(state_at(root=(0.0, 0.0, 0.94)), {"goal": [[30.0, 0.0, 1.0]]})
    np.testing.assert_allclose(t.body_pos[0, FAR_SLOT, ENTRY["Pelvis"]], [1.2, 0.0, 0.94])


def test_bad_names_params_and_goals_are_typed_errors():
    with pytest.raises(UnknownNameError, match="prior"):
        make_prior("backflip", 1)
    with pytest.raises(InputError, match="bad parameters"):
        make_prior("reach", 1, lead=3)
    with pytest.raises(InputError, match="missing"):
        make_prior("reach", 1)(state_at(), {"target": [[0.0, 0.0, 1.0]]})
