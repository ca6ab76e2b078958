"""Golden-value tests of the BFM observation inputs (OBS_SPEC.md), expected values built by hand.

Rotations by +-90 deg about z are written as coordinate permutations, so expectations never go
through the rotation code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.obs.inputs import (
    PoseHistory,
    bfm_inputs,
    empty_inputs,
    input_shapes,
    self_obs,
    terrain_obs,
)
from tt_deploy.obs.prompts import hidden_targets, sparse_targets, target_pose_tokens
from tt_deploy.obs.rotations import quat_mul
from tt_deploy.obs.state import BodyState

S45 = np.sqrt(0.5)
IDENT = np.array([0.0, 0.0, 0.0, 1.0])
QZ90 = np.array([0.0, 0.0, S45, S45])  # +90 deg about z
TN_IDENT = np.array([1.0, 0, 0, 0, 0, 1])
DT = 1.0 / 30.0
ATOL = 1e-5
J = np.arange(spec.NUM_BODIES, dtype=np.float64)
# Standing pose, heading 0: body j at (2 + 0.01 j, -1 + 0.02 j, 0.9 + 0.03 j); root = body 0.
BASE_POS = np.stack([2.0 + 0.01 * J, -1.0 + 0.02 * J, 0.9 + 0.03 * J], axis=-1)  # (24, 3)


def rot_z90(v):
    """World rotation by +90 deg about z: (x, y, z) -> (-y, x, z)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([-v[..., 1], v[..., 0], v[..., 2]], axis=-1)


def rot_zm90(v):
    """Rotation by -90 deg about z (Hinv of heading 90): (x, y, z) -> (y, -x, z)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[..., 1], -v[..., 0], v[..., 2]], axis=-1)


def qx(a):
    return np.array([np.sin(a / 2), 0.0, 0.0, np.cos(a / 2)])


def qy(a):
    return np.array([0.0, np.sin(a / 2), 0.0, np.cos(a / 2)])


def make_state(pos, quat=IDENT, lin_vel=0.0, ang_vel=0.0, n=1) -> BodyState:
    """BodyState with n identical envs from one (24, .) pose (quat/vels broadcast)."""
    pos = np.broadcast_to(np.asarray(pos, float), (spec.NUM_BODIES, 3))
    quat = np.broadcast_to(np.asarray(quat, float), (spec.NUM_BODIES, 4))
    lv = np.broadcast_to(np.asarray(lin_vel, float), (spec.NUM_BODIES, 3))
    av = np.broadcast_to(np.asarray(ang_vel, float), (spec.NUM_BODIES, 3))
    return BodyState(*(np.repeat(a[None], n, axis=0).copy() for a in (pos, quat, lv, av)))


def standing_obs_expected(ground=0.0):
    """Hand-built self obs of BASE_POS at heading 0, identity rotations, at rest."""
    rel = BASE_POS[1:] - BASE_POS[0]  # (23, 3) = (0.01 j, 0.02 j, 0.03 j)
    return np.concatenate([[0.9 - ground], rel.ravel(), np.tile(TN_IDENT, 24), np.zeros(144)])


# --- self observation -------------------------------------------------------------------------
def test_self_obs_standing_heading0():
    obs = self_obs(make_state(BASE_POS, n=2), ground_height=np.array([0.0, 0.2]))
    assert obs.shape == (2, 358) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[0], standing_obs_expected(0.0), atol=ATOL)
    np.testing.assert_allclose(obs[1], standing_obs_expected(0.2), atol=ATOL)
    np.testing.assert_allclose(obs[0, 1:4], [0.01, 0.02, 0.03], atol=ATOL)  # body 1 rel root
    np.testing.assert_allclose(obs[0, 70:76], TN_IDENT, atol=ATOL)


def test_self_obs_heading_invariance_90deg():
    state = make_state(rot_z90(BASE_POS), QZ90)
    np.testing.assert_allclose(self_obs(state, 0.0)[0], standing_obs_expected(), atol=ATOL)


def test_self_obs_keeps_roll_and_pitch_removes_yaw():
    a, b = np.deg2rad(30.0), np.deg2rad(20.0)
    root_q = quat_mul(QZ90, quat_mul(qy(b), qx(a)))  # yaw 90 on top of pitch b after roll a
    quat = np.tile(QZ90, (24, 1))
    quat[0] = root_q
    obs = self_obs(make_state(rot_z90(BASE_POS), quat), 0.0)[0]
    # R_y(b) R_x(a) e_x = (cos b, 0, -sin b); R_y(b) R_x(a) e_z = R_y(b)(0, -sin a, cos a)
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    expected_root = [cb, 0.0, -sb, sb * ca, -sa, cb * ca]
    np.testing.assert_allclose(obs[70:76], expected_root, atol=ATOL)
    np.testing.assert_allclose(obs[76:214], np.tile(TN_IDENT, 23), atol=ATOL)  # yaw-only bodies
    np.testing.assert_allclose(obs[1:70], (BASE_POS[1:] - BASE_POS[0]).ravel(), atol=ATOL)
    # Pure roll at heading 0: the roll is kept as-is.
    quat0 = np.tile(IDENT, (24, 1))
    quat0[0] = qx(a)
    obs0 = self_obs(make_state(BASE_POS, quat0), 0.0)[0]
    np.testing.assert_allclose(obs0[70:76], [1, 0, 0, 0, -sa, ca], atol=ATOL)


def test_self_obs_velocities_in_heading_frame():
    lin_local = np.stack([J, np.zeros(24), np.full(24, 0.5)], -1)  # local (j, 0, 0.5)
    ang_local = np.stack([np.zeros(24), -J, 0.1 * J], -1)  # local (0, -j, 0.1 j)
    state = make_state(rot_z90(BASE_POS), QZ90, rot_z90(lin_local), rot_z90(ang_local))
    obs = self_obs(state, 0.0)[0]
    np.testing.assert_allclose(state.lin_vel[0, 3], [0.0, 3.0, 0.5])  # world: heading is +y
    np.testing.assert_allclose(obs[214:286], lin_local.ravel(), atol=ATOL)
    np.testing.assert_allclose(obs[286:358], ang_local.ravel(), atol=ATOL)
    np.testing.assert_allclose(obs[214 + 3 * 3 : 214 + 3 * 3 + 3], [3.0, 0.0, 0.5], atol=ATOL)


def test_self_obs_rejects_bad_ground_shape():
    with pytest.raises(InputError, match="ground_height"):
        self_obs(make_state(BASE_POS, n=2), np.zeros(3))


# --- pose history -----------------------------------------------------------------------------
def test_history_after_reset_every_token_is_current_pose():
    state = make_state(rot_z90(BASE_POS), QZ90, n=2)
    hist = PoseHistory(2)
    hist.reset(None, state, ground_height=0.1)
    tokens = hist.tokens(state, 0.1)
    assert tokens.shape == (2, 15, 217) and tokens.dtype == np.float32
    p = (BASE_POS - BASE_POS[0]).ravel()  # (72,) local rel positions incl. the root's zeros
    x = np.concatenate([np.tile(p, 15), np.tile(TN_IDENT, 15 * 24)])
    for k in range(15):
        np.testing.assert_allclose(tokens[:, k, :216], np.tile(x[216 * k : 216 * (k + 1)], (2, 1)), atol=ATOL)
        np.testing.assert_allclose(tokens[:, k, 216], (1 + 8 * k) * DT, atol=1e-7)
    assert not hist.token_mask().any()  # padded reset history is masked, like the reference
    hist.reset([1], state, 0.1, valid=True)
    np.testing.assert_array_equal(hist.token_mask(), [[False] * 15, [True] * 15])


def _pose(i):
    """History pose i: body j at (i, j, 0.5), every body rotated 0.01 i about z."""
    pos = np.stack([np.full(24, float(i)), J, np.full(24, 0.5)], -1)
    return make_state(pos, [0.0, 0.0, np.sin(0.005 * i), np.cos(0.005 * i)])


def test_history_token_layout_quirk_after_pushes():
    hist = PoseHistory(1)
    hist.reset(None, _pose(0), 0.0)
    for i in range(1, 121):
        hist.push(_pose(i), 0.0)  # newest = pose 120 = "1 step ago"; s steps ago = pose 121 - s
    current = make_state(np.tile([0.0, 0.0, 0.5], (24, 1)))  # root at (0, 0, 0.5), heading 0
    tok = hist.tokens(current, 0.0)[0]
    frames = 121 - (1 + 8 * np.arange(15))  # pose index at each sampled step: 120, 112, ..., 8
    # Tokens 0-4 = positions only, 3 sampled frames (72 values each) per token.
    for k in range(5):
        for f in range(3):
            i = frames[3 * k + f]
            expected = np.stack([np.full(24, float(i)), J, np.zeros(24)], -1).ravel()
            np.testing.assert_allclose(tok[k, 72 * f : 72 * (f + 1)], expected, atol=ATOL)
    np.testing.assert_allclose(tok[0, 0:3], [120, 0, 0], atol=ATOL)
    np.testing.assert_allclose(tok[0, 72 + 15 : 72 + 18], [112, 5, 0], atol=ATOL)  # step 9, body 5
    np.testing.assert_allclose(tok[4, 144:147], [8, 0, 0], atol=ATOL)  # step 113, root

    def tn(i):
        return [np.cos(0.01 * i), np.sin(0.01 * i), 0, 0, 0, 1]

    # Tokens 5-14 = rotations only: token 5 = frame 0 (24 bodies) + frame 1 bodies 0..11.
    np.testing.assert_allclose(tok[5, 0:6], tn(120), atol=ATOL)
    np.testing.assert_allclose(tok[5, 138:144], tn(120), atol=ATOL)
    np.testing.assert_allclose(tok[5, 144:150], tn(112), atol=ATOL)
    np.testing.assert_allclose(tok[5, 210:216], tn(112), atol=ATOL)  # frame 1, body 11
    np.testing.assert_allclose(tok[6, 0:6], tn(112), atol=ATOL)  # frame 1, body 12
    np.testing.assert_allclose(tok[14, 210:216], tn(8), atol=ATOL)  # last frame, body 23
    all_q = np.concatenate([np.tile(tn(i), 24) for i in frames])
    np.testing.assert_allclose(tok[5:, :216].ravel(), all_q, atol=ATOL)
    np.testing.assert_allclose(tok[:, 216], (1 + 8 * np.arange(15)) / 30.0, atol=1e-7)
    assert hist.token_mask().all()


def test_history_push_after_reset_and_mask():
    hist = PoseHistory(1)
    hist.reset(None, _pose(0), 0.0)
    hist.push(_pose(7), 0.0)
    tok = hist.tokens(_pose(0), 0.0)[0]
    np.testing.assert_allclose(tok[0, 0:3], [7, 0, 0], atol=ATOL)  # 1 step ago = pushed pose
    np.testing.assert_allclose(tok[0, 72:75], [0, 0, 0], atol=ATOL)  # 9 steps ago = reset pose
    np.testing.assert_array_equal(hist.token_mask()[0], [True] + [False] * 14)
    for _ in range(8):
        hist.push(_pose(0), 0.0)
    np.testing.assert_array_equal(hist.token_mask()[0], [True, True] + [False] * 13)
    np.testing.assert_allclose(hist.tokens(_pose(0), 0.0)[0, 0, 72:75], [7, 0, 0], atol=ATOL)


def test_history_subtracts_terrain_from_past_and_current_root():
    hist = PoseHistory(1)
    hist.reset(None, make_state(BASE_POS), ground_height=0.0)
    stepped_up = make_state(BASE_POS + [0.0, 0.0, 0.5])  # standing on a 0.5 m step
    tok = hist.tokens(stepped_up, ground_height=0.5)[0]
    np.testing.assert_allclose(tok[0, :72], (BASE_POS - BASE_POS[0]).ravel(), atol=ATOL)


# --- terrain and input dict -------------------------------------------------------------------
def test_terrain_obs_flat_and_sampled():
    state = make_state(BASE_POS, n=2)
    np.testing.assert_allclose(
        terrain_obs(state, np.array([0.0, 0.3])), [[0.9] * 256, [0.6] * 256], atol=ATOL
    )
    heights = np.linspace(0, 0.5, 512).reshape(2, 256)
    np.testing.assert_allclose(terrain_obs(state, 0.0, heights), 0.9 - heights, atol=ATOL)
    with pytest.raises(InputError, match="terrain_heights"):
        terrain_obs(state, 0.0, np.zeros((2, 255)))


def test_empty_inputs_shapes_and_dtypes():
    inputs = empty_inputs(3)
    assert set(inputs) == set(input_shapes(3))
    for g in spec.TOKEN_GROUPS:
        shape = (3, g.feat_dim) if g.n_tokens == 1 else (3, g.n_tokens, g.feat_dim)
        assert inputs[g.name].shape == shape and inputs[g.name].dtype == np.float32
        if g.mask_name:
            assert inputs[g.mask_name].shape == (3, g.n_tokens) and inputs[g.mask_name].dtype == bool
            assert not inputs[g.mask_name].any()


def test_bfm_inputs_assembles_every_group():
    state = make_state(BASE_POS, n=2)
    hist = PoseHistory(2)
    hist.reset(None, state, 0.0)
    inputs = bfm_inputs(state, 0.0, hist, sparse_targets(2, 0.6, body_pos={"R_Hand": [2.0, -0.5, 1.2]}))
    assert {k: v.shape for k, v in inputs.items()} == input_shapes(2)
    np.testing.assert_allclose(inputs["obs"][0], standing_obs_expected(), atol=ATOL)
    np.testing.assert_array_equal(inputs["masked_mimic_target_poses_masks"][0], [False] * 10 + [True])
    np.testing.assert_allclose(inputs["terrain"], 0.9, atol=ATOL)
    assert not inputs["motion_text_embeddings_mask"].any() and not inputs["motion_text_embeddings"].any()
    assert not inputs["object_bounding_box_obs_mask"].any()
    with pytest.raises(InputError, match="PoseHistory"):
        bfm_inputs(state, 0.0, PoseHistory(3))


# --- target-pose tokens -----------------------------------------------------------------------
def _block(tokens, slot, entry, block):
    start = (entry * 2 + block) * 13
    return tokens[0, slot, start : start + 13]


def test_target_tokens_one_visible_right_hand():
    quat = np.tile(IDENT, (24, 1))
    quat[0] = QZ90  # root heading 90; the right hand's own frame stays world-aligned
    pos = rot_z90(BASE_POS)
    state = make_state(pos, quat)
    target = pos[23] + rot_z90([0.3, 0.1, 0.2])  # 0.3 ahead, 0.1 left, 0.2 up of the hand
    a = np.deg2rad(30.0)
    prompt = sparse_targets(1, 0.6, body_pos={"R_Hand": target}, body_quat={"R_Hand": qx(a)})
    tokens, mask = target_pose_tokens(state, prompt)
    assert tokens.shape == (1, 11, 184) and tokens.dtype == np.float32
    np.testing.assert_array_equal(mask[0], [False] * 10 + [True])
    rh = spec.CONDITIONABLE_BODIES.index("R_Hand")
    assert rh == 5
    root_rel = rot_zm90(target - pos[0])
    expected0 = np.concatenate([[0.3, 0.1, 0.2], [0, 0, 0], root_rel, [0, 0, 0], [1.0]])
    np.testing.assert_allclose(_block(tokens, 10, rh, 0), expected0, atol=ATOL)
    np.testing.assert_allclose(root_rel, [0.3 + 0.23, 0.1 + 0.46, 0.2 + 0.69], atol=ATOL)
    sa, ca = np.sin(a), np.cos(a)
    # conj(cq) * tq = R_x(a) (hand frame is world-aligned); Hinv * tq = R_z(-90) R_x(a)
    expected1 = [1, 0, 0, 0, -sa, ca, 0, -1, 0, -sa, 0, ca, 1.0]
    np.testing.assert_allclose(_block(tokens, 10, rh, 1), expected1, atol=ATOL)
    others = np.delete(tokens[0, 10, :182].reshape(14, 13), [2 * rh, 2 * rh + 1], axis=0)
    np.testing.assert_array_equal(others, 0.0)  # hidden entries: features and bits zero
    np.testing.assert_allclose(tokens[0, 10, 182:], [0.6, 1.0], atol=1e-7)
    np.testing.assert_array_equal(tokens[0, :10, :182], 0.0)
    np.testing.assert_allclose(tokens[0, :10, 182], np.arange(1, 11) / 30.0, atol=1e-7)
    np.testing.assert_array_equal(tokens[0, :10, 183], 1.0)


def test_target_tokens_heading_entry_bit_gating():
    state = make_state(rot_z90(BASE_POS), QZ90)  # heading 90
    yaw = [0, 1, 0, 0, 0, 1]  # target heading 180 seen from heading 90 = +90 local
    vel = [2, -1, 0, 0, 0, 0]  # world (1, 2, 3): z dropped, then rotated by -90
    heading_only = target_pose_tokens(state, sparse_targets(1, 1.0, heading=np.pi))[0]
    np.testing.assert_allclose(_block(heading_only, 10, 6, 0), yaw + yaw + [1.0], atol=ATOL)
    np.testing.assert_array_equal(_block(heading_only, 10, 6, 1), 0.0)
    vel_only = target_pose_tokens(state, sparse_targets(1, 1.0, root_lin_vel=[1.0, 2.0, 3.0]))[0]
    np.testing.assert_array_equal(_block(vel_only, 10, 6, 0), 0.0)
    np.testing.assert_allclose(_block(vel_only, 10, 6, 1), vel + vel + [1.0], atol=ATOL)
    both = sparse_targets(1, 1.0, body_pos={"Pelvis": rot_z90(BASE_POS[0] + [1.0, 0, 0])}, heading=np.pi)
    tokens = target_pose_tokens(state, both)[0]
    np.testing.assert_allclose(_block(tokens, 10, 2, 0), [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], atol=ATOL)
    np.testing.assert_allclose(tokens[0, 10, 182:], [1.0, 1.0], atol=1e-7)


def test_hidden_targets_and_validation():
    tokens, mask = target_pose_tokens(make_state(BASE_POS, n=2), hidden_targets(2))
    assert not mask.any()
    np.testing.assert_array_equal(tokens[:, :, :182], 0.0)
    np.testing.assert_allclose(tokens[:, 10, 182:], [[0.0, 1.0]] * 2, atol=1e-7)
    with pytest.raises(UnknownNameError, match="R_Foot"):
        sparse_targets(1, 0.5, body_pos={"R_Foot": [0, 0, 0]})
    with pytest.raises(InputError, match="at_time"):
        sparse_targets(1, 0.0, heading=0.0)
    with pytest.raises(InputError, match=r"TargetPoses.body_pos: expected shape \(3, 11, 6, 3\)"):
        target_pose_tokens(make_state(BASE_POS, n=3), hidden_targets(2))
