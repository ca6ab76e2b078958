"""The BFM's observation inputs, built exactly as the MaskedMimic v1 reference builds them.

This is the one implementation of OBS_SPEC.md (quirks included: released weights were trained on
them). numpy only - it also runs inside robot controllers - and vectorised over N environments.
Every output is float32, masks are bool. "Local" means heading-local: Hinv = rotation about +z by
minus the root's heading, so yaw is removed and roll/pitch are kept.

Input shapes (see `input_shapes`): single-token groups are (N, feat), multi-token groups
(N, n_tokens, feat), every mask (N, n_tokens) with True = visible.
Target-pose prompts live in `tt_deploy.obs.prompts`.
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.behaviours import behaviour_tokens
from tt_deploy.obs.prompts import TargetPoses, check_shape, hidden_targets, target_pose_tokens
from tt_deploy.obs.rotations import heading_angle, tan_norm, yaw_rotate
from tt_deploy.obs.state import BodyState

HISTORY_TOKEN_DIM = spec.TOKEN_GROUP_BY_NAME["historical_pose_obs"].feat_dim  # 217
_NUM_HIST_TOKENS = len(spec.HISTORY_TOKEN_STEPS)  # 15
_HIST_STEPS_AGO = np.asarray(spec.HISTORY_TOKEN_STEPS)  # 1, 9, ..., 113
_HIST_TIMES = _HIST_STEPS_AGO * spec.CONTROL_DT  # (1 + 8k) * dt seconds


def _ground(ground_height, num_envs: int) -> np.ndarray:
    """Terrain height under each root as (N,) float64; scalars broadcast (flat ground: 0)."""
    g = np.asarray(ground_height, dtype=np.float64)
    if g.shape not in ((), (num_envs,)):
        raise InputError(f"ground_height: expected a scalar or shape ({num_envs},), got {g.shape}")
    return np.broadcast_to(g, (num_envs,))


def _inverse_heading(state: BodyState) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of minus the root heading, (N,) each: Hinv as a planar rotation."""
    h = heading_angle(np.asarray(state.quat[:, 0], dtype=np.float64))
    return np.cos(h), -np.sin(h)


def self_obs(state: BodyState, ground_height) -> np.ndarray:
    """Current self-observation (N, 358) float32, heading-local.

    [root height above the terrain under the root (1), Hinv (p_j - p_root) for bodies 1..23 (69),
    tan_norm(Hinv * q_j) for bodies 0..23 (144), Hinv v_j (72), Hinv w_j (72)].
    ground_height: (N,) or scalar, m, terrain height under each root.
    """
    n = state.pos.shape[0]
    c, s = _inverse_heading(state)
    c, s = c[:, None], s[:, None]
    root_h = state.pos[:, 0, 2] - _ground(ground_height, n)
    rel_pos = yaw_rotate(c, s, state.pos[:, 1:] - state.pos[:, :1])  # (N, 23, 3)
    rot = yaw_rotate(c, s, tan_norm(state.quat))  # tan_norm(Hinv q) = Hinv applied to both columns
    lin_vel = yaw_rotate(c, s, state.lin_vel)
    ang_vel = yaw_rotate(c, s, state.ang_vel)
    parts = [root_h[:, None], rel_pos.reshape(n, -1), rot.reshape(n, -1), lin_vel.reshape(n, -1),
             ang_vel.reshape(n, -1)]  # fmt: skip
    return np.concatenate(parts, axis=-1).astype(np.float32)


class PoseHistory:
    """Ring buffer of the last `spec.HISTORY_STEPS` (120) control steps of body poses, N envs.

    Timing convention ("s steps ago"): call `push(state)` exactly once per control step with the
    state the step's observations were built from, after building them (before or after
    `sim.step`, as long as it is that state). At the next step the pushed pose is "1 step ago".
    `tokens(state)` always reads the pushed past, never `state` itself, except for the current
    root frame. Right after `reset` every entry (hence every token) equals the reset pose.

    Stored positions have the terrain height under the root (at that step) subtracted from z,
    like the reference; the current root used by `tokens` gets the same subtraction, so the
    relative z is "height above own terrain" on both sides (the reference does this too). Storage
    is float32: (N, 120, 24, 3) positions + (N, 120, 24, 6) WORLD-frame tan_norm of each body
    rotation + (N, 120) validity. Storing tan_norm once per push makes `tokens` a planar yaw
    rotation instead of 8640 quaternion products per env and step: tan_norm(Hinv q) = Hinv
    applied to both tan_norm columns.
    """

    def __init__(self, num_envs: int, steps: int = spec.HISTORY_STEPS):
        if steps < int(_HIST_STEPS_AGO[-1]):
            raise InputError(f"steps: expected >= {int(_HIST_STEPS_AGO[-1])}, got {steps}")
        self.num_envs, self.steps = num_envs, steps
        self.pos = np.zeros((num_envs, steps, spec.NUM_BODIES, 3), dtype=np.float32)
        self.rot6 = np.zeros((num_envs, steps, spec.NUM_BODIES, 6), dtype=np.float32)
        self.rot6[..., 0] = self.rot6[..., 5] = 1.0  # identity
        self.valid = np.zeros((num_envs, steps), dtype=bool)
        self._latest = steps - 1  # ring index of the most recent entry ("1 step ago")

    def _grounded_pos(self, state: BodyState, ground_height) -> np.ndarray:
        check_shape("state.pos", state.pos, (self.num_envs, spec.NUM_BODIES, 3))
        pos = np.array(state.pos, dtype=np.float64)
        pos[..., 2] -= _ground(ground_height, self.num_envs)[:, None]
        return pos

    def reset(self, env_ids, state: BodyState, ground_height, valid: bool = False) -> None:
        """Fill the whole history of env_ids with their current pose.

        state / ground_height: for ALL N envs (e.g. `sim.body_state()` after the reset); rows
        env_ids are used. env_ids None = all envs. valid: the history token mask of the padded
        entries; False (default) matches the reference at a motion's first frame, where the
        padded past is masked out until real steps have been pushed.
        """
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids)
        pos = self._grounded_pos(state, ground_height)
        self.pos[ids] = pos[ids, None]
        self.rot6[ids] = tan_norm(np.asarray(state.quat[ids], dtype=np.float64))[:, None]
        self.valid[ids] = valid

    def push(self, state: BodyState, ground_height) -> None:
        """Append the pose of all N envs as the newest entry (see the class timing convention)."""
        self._latest = (self._latest + 1) % self.steps
        self.pos[:, self._latest] = self._grounded_pos(state, ground_height)
        self.rot6[:, self._latest] = tan_norm(np.asarray(state.quat, dtype=np.float64))
        self.valid[:, self._latest] = True

    def _token_rows(self) -> np.ndarray:
        return (self._latest - _HIST_STEPS_AGO + 1) % self.steps  # (15,) ring indices

    def token_mask(self) -> np.ndarray:
        """(N, 15) bool: token k visible iff the entry (1 + 8k) steps ago was pushed (not padding)."""
        return self.valid[:, self._token_rows()].copy()

    def tokens(self, state: BodyState, ground_height) -> np.ndarray:
        """Historical pose tokens (N, 15, 217) float32, per OBS_SPEC.md including its quirk.

        With Hinv and p_root from the CURRENT state: P[s, j] = Hinv (p_hist - p_root_now),
        Q[s, j] = tan_norm(Hinv * q_hist) over the 15 sampled steps (1, 9, ..., 113 ago).
        X = [P flattened (s, j, xyz) = 1080, Q flattened (s, j, 6) = 2160]; token k =
        X[216k : 216k + 216] ++ [(1 + 8k) * dt]. So tokens 0-4 carry only positions and tokens
        5-14 only rotations: a token is NOT one past frame.
        """
        n = self.num_envs
        rows = self._token_rows()
        root_now = self._grounded_pos(state, ground_height)[:, 0].astype(np.float32)  # (N, 3)
        c, s = _inverse_heading(state)
        c, s = c[:, None, None].astype(np.float32), s[:, None, None].astype(np.float32)
        # X = [P (s, j, xyz) | Q (s, j, 6)] written in place, then cut into 15 tokens of 216 (+ time)
        x = np.empty((n, 9 * _NUM_HIST_TOKENS * spec.NUM_BODIES), dtype=np.float32)
        split = 3 * _NUM_HIST_TOKENS * spec.NUM_BODIES
        p_out = x[:, :split].reshape(n, _NUM_HIST_TOKENS, spec.NUM_BODIES, 3)
        q_out = x[:, split:].reshape(n, _NUM_HIST_TOKENS, spec.NUM_BODIES, 6)
        yaw_rotate(c, s, self.pos[:, rows] - root_now[:, None, None, :], out=p_out)
        yaw_rotate(c, s, self.rot6[:, rows], out=q_out)
        tokens = np.empty((n, _NUM_HIST_TOKENS, HISTORY_TOKEN_DIM), dtype=np.float32)
        tokens[..., :-1] = x.reshape(n, _NUM_HIST_TOKENS, HISTORY_TOKEN_DIM - 1)
        tokens[..., -1] = _HIST_TIMES
        return tokens


def terrain_obs(state: BodyState, ground_height, terrain_heights=None) -> np.ndarray:
    """Terrain token (N, 256) float32: root z minus the terrain height at each sample point.

    The reference samples a 16x16 yaw-rotated grid around the root and returns root_z - h(point).
    terrain_heights: (N, 256) m terrain heights at those points, sampled by the caller; None =
    locally flat ground at ground_height, giving the constant root height above the ground.
    """
    n = state.pos.shape[0]
    if terrain_heights is None:
        heights = np.broadcast_to(_ground(ground_height, n)[:, None], (n, spec.TERRAIN_DIM))
    else:
        heights = check_shape("terrain_heights", terrain_heights, (n, spec.TERRAIN_DIM))
    return (state.pos[:, 0, 2:3] - heights).astype(np.float32)


def input_shapes(num_envs: int) -> dict[str, tuple[int, ...]]:
    """Shape of every BFM input: (N, feat) for single tokens, (N, n, feat) else; masks (N, n)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for g in spec.TOKEN_GROUPS:
        one = g.n_tokens == 1
        shapes[g.name] = (num_envs, g.feat_dim) if one else (num_envs, g.n_tokens, g.feat_dim)
        if g.mask_name is not None:
            shapes[g.mask_name] = (num_envs, g.n_tokens)
    return shapes


def empty_inputs(num_envs: int) -> dict[str, np.ndarray]:
    """All BFM inputs zero (float32) and every mask False (bool): shapes/dtypes for tests and export."""
    masks = {g.mask_name for g in spec.TOKEN_GROUPS if g.mask_name is not None}
    return {
        k: np.zeros(s, dtype=bool if k in masks else np.float32) for k, s in input_shapes(num_envs).items()
    }


def bfm_inputs(
    state: BodyState,
    ground_height,
    history: PoseHistory,
    targets: TargetPoses | None = None,
    terrain_heights=None,
    behaviour=None,
) -> dict[str, np.ndarray]:
    """The complete BFM input dict for the current control step, keyed by graph input names.

    state: current bodies (N envs); ground_height: (N,) or scalar m under each root; history:
    the env's PoseHistory (not modified - push it after this call); targets: prompt, None = hidden;
    terrain_heights: see `terrain_obs`; behaviour: (N,) indices into obs.behaviours.BEHAVIOURS (-1: none),
    None = no code anywhere. The object-bounding-box token is zeros and masked.
    """
    n = state.pos.shape[0]
    if history.num_envs != n:
        raise InputError(f"history: expected a PoseHistory for {n} envs, got {history.num_envs}")
    inputs = empty_inputs(n)
    inputs["obs"] = self_obs(state, ground_height)
    inputs["historical_pose_obs"] = history.tokens(state, ground_height)
    inputs["historical_pose_obs_mask"] = history.token_mask()
    tokens, mask = target_pose_tokens(state, hidden_targets(n) if targets is None else targets)
    inputs["masked_mimic_target_poses"] = tokens
    inputs["masked_mimic_target_poses_masks"] = mask
    inputs["terrain"] = terrain_obs(state, ground_height, terrain_heights)
    if behaviour is not None:
        codes, visible = behaviour_tokens(np.broadcast_to(np.asarray(behaviour), (n,)))
        inputs["motion_text_embeddings"] = codes.reshape(inputs["motion_text_embeddings"].shape)
        inputs["motion_text_embeddings_mask"] = visible.reshape(inputs["motion_text_embeddings_mask"].shape)
    return inputs
