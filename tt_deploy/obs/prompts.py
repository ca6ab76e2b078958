"""Target-pose prompts of the BFM: the `masked_mimic_target_poses` tokens (OBS_SPEC.md).

A prompt conditions up to 11 future poses ("slots"): slots 0-9 are the reference state 1..10
control steps ahead, slot 10 is a far target at any time. Each slot has 7 entries - the 6
conditionable bodies in `spec.CONDITIONABLE_BODY_IDS` order plus one heading/velocity entry - and
each entry has two visibility bits (bit 0 gates block 0 "translation", bit 1 gates block 1
"rotation"; for the heading entry block 0 holds the heading and block 1 the velocity).

Everything is numpy, vectorised over N environments, positions in metres in the world frame
(the same frame as `BodyState.pos`, terrain included), quaternions xyzw, times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.obs.rotations import (
    heading_quat,
    heading_quat_inv,
    quat_about_z,
    quat_conj,
    quat_mul,
    quat_rotate,
    tan_norm,
)
from tt_deploy.obs.state import BodyState

NUM_SLOTS = spec.NUM_FUTURE_TARGETS + 1  # 11: 10 near-future slots + 1 far slot
FAR_SLOT = spec.NUM_FUTURE_TARGETS  # 10
NUM_ENTRIES = len(spec.CONDITIONABLE_BODY_IDS) + 1  # 7: 6 bodies + heading/velocity
TOKEN_DIM = spec.TOKEN_GROUP_BY_NAME["masked_mimic_target_poses"].feat_dim  # 184
HEADING_ENTRY = NUM_ENTRIES - 1  # 6
# Nominal time to each near slot ((s+1) control steps); what the reference writes for near slots.
NEAR_SLOT_TIMES = np.array([(s + 1) * spec.CONTROL_DT for s in range(spec.NUM_FUTURE_TARGETS)])


def check_shape(name: str, arr, shape: tuple[int, ...]) -> np.ndarray:
    """Validate an input array's shape at the boundary; returns it as a numpy array."""
    arr = np.asarray(arr)
    if arr.shape != tuple(shape):
        raise InputError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    return arr


@dataclass
class TargetPoses:
    """A target-pose prompt for N environments over the 11 slots.

    body_pos (N, 11, 6, 3) m world positions of the conditionable bodies (CONDITIONABLE_BODY_IDS order);
    body_quat (N, 11, 6, 4) xyzw world orientations of the same bodies;
    root_quat (N, 11, 4) xyzw target root orientation (only its yaw is used: heading entry);
    root_lin_vel (N, 11, 3) m/s target root velocity, world frame (z ignored: velocity entry);
    time_to_target (N, 11) s, written as-is into the token's time feature;
    visible (N, 11, 7, 2) bool bits: entries 0-5 bodies [translation, rotation], entry 6 [heading, velocity];
    token_mask (N, 11) bool, True = the transformer may attend to that slot.
    Values under a False bit are multiplied by 0 but must be finite.
    """

    body_pos: np.ndarray
    body_quat: np.ndarray
    root_quat: np.ndarray
    root_lin_vel: np.ndarray
    time_to_target: np.ndarray
    visible: np.ndarray
    token_mask: np.ndarray

    @property
    def num_envs(self) -> int:
        return self.body_pos.shape[0]

    def validate(self, num_envs: int) -> None:
        """Raise InputError naming the first field whose shape does not fit num_envs."""
        n, s, b = num_envs, NUM_SLOTS, NUM_ENTRIES - 1
        check_shape("TargetPoses.body_pos", self.body_pos, (n, s, b, 3))
        check_shape("TargetPoses.body_quat", self.body_quat, (n, s, b, 4))
        check_shape("TargetPoses.root_quat", self.root_quat, (n, s, 4))
        check_shape("TargetPoses.root_lin_vel", self.root_lin_vel, (n, s, 3))
        check_shape("TargetPoses.time_to_target", self.time_to_target, (n, s))
        check_shape("TargetPoses.visible", self.visible, (n, s, NUM_ENTRIES, 2))
        check_shape("TargetPoses.token_mask", self.token_mask, (n, s))


def hidden_targets(num_envs: int) -> TargetPoses:
    """A prompt that conditions nothing: every bit and every token mask False.

    Positions 0, quaternions identity, velocities 0. time_to_target holds the reference's nominal
    values - (s+1) * CONTROL_DT for near slot s and 0 for the far slot - so a hidden token equals the
    reference's token for a fully masked slot (the [time, 1.0] tail is present even when hidden).
    """
    n, s, b = num_envs, NUM_SLOTS, NUM_ENTRIES - 1
    body_quat = np.zeros((n, s, b, 4))
    body_quat[..., 3] = 1.0
    root_quat = np.zeros((n, s, 4))
    root_quat[..., 3] = 1.0
    times = np.zeros((n, s))
    times[:, :FAR_SLOT] = NEAR_SLOT_TIMES
    return TargetPoses(
        body_pos=np.zeros((n, s, b, 3)),
        body_quat=body_quat,
        root_quat=root_quat,
        root_lin_vel=np.zeros((n, s, 3)),
        time_to_target=times,
        visible=np.zeros((n, s, NUM_ENTRIES, 2), dtype=bool),
        token_mask=np.zeros((n, s), dtype=bool),
    )


def _entry_index(body: str) -> int:
    if body not in spec.CONDITIONABLE_BODIES:
        raise UnknownNameError("conditionable body", body, spec.CONDITIONABLE_BODIES)
    return spec.CONDITIONABLE_BODIES.index(body)


def _per_env(name: str, value, num_envs: int, tail: tuple[int, ...]) -> np.ndarray:
    """Broadcast a per-env value ((N, *tail) or (*tail)) to (N, *tail) float64."""
    arr = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(arr, (num_envs, *tail))
    except ValueError:
        raise InputError(f"{name}: expected shape {(num_envs, *tail)} or {tail}, got {arr.shape}") from None


def sparse_targets(
    num_envs: int,
    at_time,
    *,
    body_pos: dict[str, np.ndarray] | None = None,
    body_quat: dict[str, np.ndarray] | None = None,
    heading=None,
    root_lin_vel=None,
) -> TargetPoses:
    """A single future target placed in the far slot (slot 10), everything else hidden.

    e.g. "right hand at p in 0.6 s": sparse_targets(N, 0.6, body_pos={"R_Hand": p});
    "pelvis at p facing h in 1 s": sparse_targets(N, 1.0, body_pos={"Pelvis": p}, heading=h).

    at_time: s, scalar or (N,), > 0: time remaining until the target, written as slot 10's
    time_to_target. The reference counts it down each step, so rebuild the prompt every control
    step with the remaining time (world positions stay fixed).
    body_pos / body_quat: conditionable body name -> (N, 3) m world / (N, 4) xyzw (or unbatched);
    each given body sets bit 0 (position) / bit 1 (rotation) of its entry.
    heading: rad, scalar or (N,): target yaw (heading entry bit 0).
    root_lin_vel: (N, 3) or (3,) m/s world: target root velocity, z ignored (heading entry bit 1).
    Near slots 0-9 stay hidden: they stand for the reference motion 1..10 steps ahead, which a
    single sparse target does not define. Slot 10's token mask is True iff any bit is set.
    """
    at_time = _per_env("at_time", at_time, num_envs, ())
    if not np.all(np.isfinite(at_time)) or np.any(at_time <= 0):
        raise InputError(f"at_time: expected finite seconds > 0, got {at_time}")
    t = hidden_targets(num_envs)
    for name, p in (body_pos or {}).items():
        i = _entry_index(name)
        t.body_pos[:, FAR_SLOT, i] = _per_env(f"body_pos[{name!r}]", p, num_envs, (3,))
        t.visible[:, FAR_SLOT, i, 0] = True
    for name, q in (body_quat or {}).items():
        i = _entry_index(name)
        t.body_quat[:, FAR_SLOT, i] = _per_env(f"body_quat[{name!r}]", q, num_envs, (4,))
        t.visible[:, FAR_SLOT, i, 1] = True
    if heading is not None:
        t.root_quat[:, FAR_SLOT] = quat_about_z(_per_env("heading", heading, num_envs, ()))
        t.visible[:, FAR_SLOT, HEADING_ENTRY, 0] = True
    if root_lin_vel is not None:
        t.root_lin_vel[:, FAR_SLOT] = _per_env("root_lin_vel", root_lin_vel, num_envs, (3,))
        t.visible[:, FAR_SLOT, HEADING_ENTRY, 1] = True
    t.time_to_target[:, FAR_SLOT] = at_time
    t.token_mask[:, FAR_SLOT] = t.visible[:, FAR_SLOT].any(axis=(-1, -2))
    return t


def target_pose_tokens(state: BodyState, targets: TargetPoses) -> tuple[np.ndarray, np.ndarray]:
    """Target-pose tokens relative to the current pose, exactly per OBS_SPEC.md.

    state: current bodies (N envs). Returns ((N, 11, 184) float32 tokens, (N, 11) bool token mask).
    Per slot: for each of the 7 entries and its 2 blocks, 12 features x bit followed by the bit
    (7 x 2 x 13 = 182), then [time_to_target, 1.0].
    """
    n = state.pos.shape[0]
    targets.validate(n)
    tokens = np.zeros((n, NUM_SLOTS, TOKEN_DIM), dtype=np.float32)
    tokens[..., -2] = targets.time_to_target
    tokens[..., -1] = 1.0
    # Only slots with a visible bit carry features: a hidden slot is zeros, its zero bits and the
    # [time, 1.0] tail. Computing just those keeps sparse prompts cheap at N = 256.
    env, slot = np.nonzero(targets.visible.any(axis=(-1, -2)))
    if env.size:
        tokens[env, slot, :-2] = _slot_features(state, targets, env, slot)
    return tokens, np.asarray(targets.token_mask, dtype=bool).copy()


def _slot_features(state: BodyState, targets: TargetPoses, env: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """(K, 182) masked entry features of the K (env, slot) pairs given."""
    k = env.size
    ids = list(spec.CONDITIONABLE_BODY_IDS)
    hinv = heading_quat_inv(state.quat[env, 0])  # (K, 4)
    h_b = hinv[:, None, :]  # (K, 1, 4) per body
    cp, cq = state.pos[env][:, ids], state.quat[env][:, ids]  # (K, 6, .)
    tp, tq = targets.body_pos[env, slot], targets.body_quat[env, slot]  # (K, 6, .)
    zeros3 = np.zeros(tp.shape)

    # Body entries: block 0 translation, block 1 rotation, each 12 features.
    rel_pos = quat_rotate(h_b, tp - cp)
    root_rel_pos = quat_rotate(h_b, tp - state.pos[env, None, 0])
    block0 = np.concatenate([rel_pos, zeros3, root_rel_pos, zeros3], axis=-1)
    block1 = np.concatenate([tan_norm(quat_mul(quat_conj(cq), tq)), tan_norm(quat_mul(h_b, tq))], axis=-1)
    bodies = np.stack([block0, block1], axis=-2)  # (K, 6, 2, 12)

    # Heading/velocity entry: block 0 = target yaw (twice), block 1 = planar velocity (padded, twice).
    yaw6 = tan_norm(quat_mul(hinv, heading_quat(targets.root_quat[env, slot])))  # (K, 6)
    vel = targets.root_lin_vel[env, slot] * np.array([1.0, 1.0, 0.0])
    vel6 = np.concatenate([quat_rotate(hinv, vel), np.zeros(vel.shape)], axis=-1)
    heading_entry = np.stack([np.concatenate([yaw6, yaw6], -1), np.concatenate([vel6, vel6], -1)], axis=-2)

    feats = np.concatenate([bodies, heading_entry[:, None]], axis=1)  # (K, 7, 2, 12)
    bits = targets.visible[env, slot].astype(np.float64)[..., None]  # (K, 7, 2, 1)
    return np.concatenate([feats * bits, bits], axis=-1).reshape(k, -1)
