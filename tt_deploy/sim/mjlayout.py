"""MuJoCo's state layout <-> the reference convention (base.py), shared by the MuJoCo C and MuJoCo Warp backends.

Both engines hold the same arrays (qpos with a wxyz root quaternion, qvel with a body-frame root
angular velocity, xpos / xquat / cvel / subtree_com); this module is the one place that converts
them, and the one place that turns a Perturbation into model-field values, so that the two
backends see the same physics and hand out the same state.
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs import rotations
from tt_deploy.obs.state import BodyState, RigidState
from tt_deploy.sim.perturbations import Perturbation

RESET_FIELDS = ("root_pos", "root_quat", "joint_pos", "root_lin_vel", "root_ang_vel", "joint_vel")


def rows(name: str, value, n: int, width: int | None = None) -> np.ndarray:
    """A finite (n, width) float64 array from `value` of shape (n, width) or (width,), or a typed error."""
    value = np.asarray(value, dtype=np.float64)
    width = width or {"root_quat": 4, "joint_pos": spec.NUM_DOF, "joint_vel": spec.NUM_DOF}.get(name, 3)
    if value.shape == (width,):
        value = np.broadcast_to(value, (n, width))
    if value.shape != (n, width) or not np.isfinite(value).all():
        raise InputError(f"{name} must be finite with shape ({n}, {width}) or ({width},); got {value.shape}")
    return value


def reset_rows(hm, stand: np.ndarray, nv: int, n: int, **fields) -> tuple[np.ndarray, np.ndarray]:
    """(n, nq) qpos and (n, nv) qvel rows: the standing pose `stand` at rest, overwritten by the given
    reset fields (root_pos (n, 3) m, root_quat (n, 4) xyzw, joint_pos (n, 69) rad, root_lin_vel /
    root_ang_vel (n, 3) world frame, joint_vel (n, 69) rad/s)."""
    qpos = np.tile(stand, (n, 1))
    qvel = np.zeros((n, nv))
    for name in RESET_FIELDS:  # root_quat before root_ang_vel: the latter is rotated by the former
        value = fields.get(name)
        if value is None:
            continue
        v = rows(name, value, n)
        if name == "root_pos":
            qpos[:, 0:3] = v
        elif name == "root_quat":
            qpos[:, 3:7] = rotations.xyzw_to_wxyz(rotations.normalize(v))
        elif name == "joint_pos":
            qpos[:, hm.qpos_adr] = v
        elif name == "root_lin_vel":
            qvel[:, 0:3] = v
        elif name == "joint_vel":
            qvel[:, hm.dof_adr] = v
        elif name == "root_ang_vel":  # world -> body frame of the root orientation
            quat = rotations.wxyz_to_xyzw(qpos[:, 3:7])
            qvel[:, 3:6] = rotations.quat_rotate(rotations.quat_conj(quat), v)
    return qpos, qvel


def body_state(hm, xpos, xquat, cvel, subtree_com, root_ids) -> BodyState:
    """BodyState of the spec bodies from MuJoCo's (N, nbody, ...) xpos, xquat (wxyz), cvel ([ang, lin at the
    tree's subtree com], world orientation) and subtree_com; root_ids (24,) the root body of each spec body."""
    bid = hm.body_ids
    pos = np.array(xpos[:, bid], dtype=np.float64)
    c = np.asarray(cvel[:, bid], dtype=np.float64)
    ang = c[..., :3].copy()
    lin = c[..., 3:] + np.cross(ang, pos - np.asarray(subtree_com[:, root_ids], dtype=np.float64))  # to the origin
    quat = rotations.wxyz_to_xyzw(np.asarray(xquat[:, bid], dtype=np.float64))
    return BodyState(pos, quat, lin, ang)


def object_state(qpos: np.ndarray, qvel: np.ndarray, qa: int, da: int) -> RigidState:
    """RigidState of a free object whose joint starts at qpos[qa] / qvel[da] (angular velocity body-frame in qvel)."""
    quat = rotations.wxyz_to_xyzw(np.asarray(qpos[:, qa + 3:qa + 7], dtype=np.float64))
    ang_local = np.asarray(qvel[:, da + 3:da + 6], dtype=np.float64)
    return RigidState(np.array(qpos[:, qa:qa + 3], dtype=np.float64), quat,
                      np.array(qvel[:, da:da + 3], dtype=np.float64), rotations.quat_rotate(quat, ang_local))


def write_object_state(qpos: np.ndarray, qvel: np.ndarray, ids: np.ndarray, qa: int, da: int, state: RigidState) -> None:
    """Write a RigidState (rows for `ids`) into the free joint at qpos[qa] / qvel[da] of those rows."""
    n = len(ids)
    quat = rotations.normalize(rows("quat", state.quat, n, 4))
    qpos[ids, qa:qa + 3] = rows("pos", state.pos, n)
    qpos[ids, qa + 3:qa + 7] = rotations.xyzw_to_wxyz(quat)
    qvel[ids, da:da + 3] = rows("lin_vel", state.lin_vel, n)
    qvel[ids, da + 3:da + 6] = rotations.quat_rotate(rotations.quat_conj(quat), rows("ang_vel", state.ang_vel, n))


def physics_fields(hm, perts: tuple[Perturbation, ...]) -> dict[str, np.ndarray]:
    """Per-env values of the model fields the physics knobs change, from the compiled model's nominal values.

    Keys (MuJoCo field names; only the knobs some env departs from nominal on): geom_friction (N, ngeom, 3):
    sliding friction of EVERY geom; opt.gravity (N, 3); body_mass (N, nbody) and body_inertia (N, nbody, 3):
    humanoid bodies denser by the same factor (derived constants must follow: set_const); actuator_gainprm /
    actuator_biasprm (N, nu, 10) and dof_damping (N, nv): kp and kd together (kd lives on the joint or in the
    actuator, see humanoid_model.DAMPING).
    """
    m = hm.model
    knob = {k: np.array([getattr(p, k) for p in perts]) for k in ("friction", "gravity", "mass", "motor")}
    out: dict[str, np.ndarray] = {}
    if (knob["friction"] != 1).any():
        fr = np.repeat(m.geom_friction[None], len(perts), axis=0)
        fr[:, :, 0] *= knob["friction"][:, None]
        out["geom_friction"] = fr
    if (knob["gravity"] != 1).any():
        out["opt.gravity"] = m.opt.gravity[None] * knob["gravity"][:, None]
    if (knob["mass"] != 1).any():
        bid, s = hm.body_ids, knob["mass"]
        mass = np.repeat(m.body_mass[None], len(perts), axis=0)
        inertia = np.repeat(m.body_inertia[None], len(perts), axis=0)
        mass[:, bid] *= s[:, None]
        inertia[:, bid] *= s[:, None, None]
        out["body_mass"], out["body_inertia"] = mass, inertia
    if (knob["motor"] != 1).any():
        s, act = knob["motor"][:, None], hm.actuator_ids
        gain = np.repeat(m.actuator_gainprm[None], len(perts), axis=0)
        bias = np.repeat(m.actuator_biasprm[None], len(perts), axis=0)
        damping = np.repeat(m.dof_damping[None], len(perts), axis=0)
        gain[:, act, 0] *= s  # kp
        bias[:, act, 1] *= s  # -kp
        bias[:, act, 2] *= s  # -kv (zero when kd lives on the joint)
        damping[:, hm.dof_adr] *= s  # kd when it lives on the joint (zero otherwise)
        out["actuator_gainprm"], out["actuator_biasprm"], out["dof_damping"] = gain, bias, damping
    return out


# the fields physics_fields may return, with what each knob touches (for backends that must declare batched fields)
PHYSICS_FIELDS = ("geom_friction", "opt.gravity", "body_mass", "body_inertia", "actuator_gainprm",
                  "actuator_biasprm", "dof_damping")
