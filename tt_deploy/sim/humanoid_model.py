"""Build the MuJoCo model of the humanoid: our asset or a user MJCF, through one code path.

`build_model` loads an MJCF into an `mujoco.MjSpec`, checks that it has the SMPL body and joint
names of `spec`, replaces whatever actuators it had by one PD position actuator per hinge (gains
from `spec.PD_GAINS`), sets the physics options, adds a floor if there is none, the optional
strike target and the contact sensors the backend reads. The compiled model comes back with the
index maps into spec order and the action -> PD target map.

PD target = pd_offset + pd_scale * a (the ProtoMotions / ASE `build_pd_action_offset_scale` rule
for 3-hinge joints): for each joint, m = max over its three hinges of max(|lo|, |hi|);
pd_scale = min(1.2 * m, pi) for all three hinges; pd_offset = 0. So a = 0 targets the rest pose
(T-pose), and the same scale holds on every hinge of a joint.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, TTDeployError

log = logging.getLogger(__name__)

DEFAULT_MJCF = Path(__file__).parent / "assets" / "humanoid.xml"
# Chosen by measurement (docs/simulation.md): stable standing with zero targets, ~4 k ctrl steps/s.
TIMESTEP = 1.0 / 120.0
INTEGRATOR = "implicitfast"
DAMPING = "joint"  # where spec kd lives: actuator kv ("actuator") or joint damping ("joint")
STRIKE_TARGET = "strike_target"
STRIKE_TARGET_HALF_SIZE = (0.15, 0.15, 0.9)  # m: a 0.3 x 0.3 x 1.8 m pillar
STRIKE_TARGET_MASS = 15.0  # kg
OBJECTS = (STRIKE_TARGET,)
_INTEGRATORS = {
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
    "rk4": mujoco.mjtIntegrator.mjINT_RK4,
}


def integrator_name(model: mujoco.MjModel) -> str:
    """The `_INTEGRATORS` name of a compiled model's integrator."""
    return next(k for k, v in _INTEGRATORS.items() if v == model.opt.integrator)


class ModelError(TTDeployError):
    """An MJCF file is unreadable or lacks the bodies/joints tt-deploy needs."""


@dataclass
class HumanoidModel:
    """A compiled model plus everything needed to address it in spec order.

    body_ids (24,) MuJoCo body id of each spec body; qpos_adr / dof_adr (69,) of each spec hinge;
    actuator_ids (69,); pd_offset / pd_scale (69,) rad; substeps = physics steps per control step.
    force_sensor_adr (24,) start of each body's 3-value net contact force in sensordata;
    object_* describe the optional free objects by name.
    """

    model: mujoco.MjModel
    mjcf: Path
    body_ids: np.ndarray
    qpos_adr: np.ndarray
    dof_adr: np.ndarray
    actuator_ids: np.ndarray
    pd_offset: np.ndarray
    pd_scale: np.ndarray
    substeps: int
    damping: str
    force_sensor_adr: np.ndarray
    object_body: dict[str, int] = field(default_factory=dict)
    object_qpos_adr: dict[str, int] = field(default_factory=dict)
    object_dof_adr: dict[str, int] = field(default_factory=dict)
    object_contact_adr: dict[str, np.ndarray] = field(default_factory=dict)  # (24,) "found" counts

    @property
    def root_body(self) -> int:
        return int(self.body_ids[0])

    @property
    def total_mass(self) -> float:
        return float(self.model.body_mass[self.body_ids].sum())


def pd_offset_scale(ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(69, 2) hinge ranges (rad) -> (offset, scale), each (69,) rad, by the module docstring rule."""
    ranges = np.asarray(ranges, dtype=np.float64).reshape(spec.NUM_DOF // 3, 3, 2)
    m = np.abs(ranges).max(axis=(1, 2))
    scale = np.minimum(1.2 * m, math.pi)
    return np.zeros(spec.NUM_DOF), np.repeat(scale, 3)


def _load_spec(mjcf: str | Path) -> mujoco.MjSpec:
    path = Path(mjcf)
    if not path.is_file():
        raise ModelError(f"MJCF file not found: {path}")
    try:
        return mujoco.MjSpec.from_file(str(path))
    except Exception as exc:  # mujoco raises ValueError with the parser message
        raise ModelError(f"cannot parse MJCF {path}: {exc}") from exc


def _validate_names(mj: mujoco.MjSpec, path: Path) -> None:
    bodies = {b.name for b in mj.bodies}
    joints = {j.name: j for j in mj.joints}
    missing_b = [n for n in spec.BODY_NAMES if n not in bodies]
    missing_j = [n for n in spec.JOINT_NAMES if n not in joints]
    if missing_b or missing_j:
        raise ModelError(
            f"MJCF {path} does not have the SMPL humanoid names tt-deploy needs; "
            f"missing bodies ({len(missing_b)}): {', '.join(missing_b) or '-'}; "
            f"missing joints ({len(missing_j)}): {', '.join(missing_j) or '-'}"
        )
    wrong = [n for n in spec.JOINT_NAMES if joints[n].type != mujoco.mjtJoint.mjJNT_HINGE]
    if wrong:
        raise ModelError(f"MJCF {path}: joints must be hinges, these are not: {', '.join(wrong)}")


def _set_actuators(mj: mujoco.MjSpec, damping: str) -> None:
    """Replace any actuators by one position actuator per spec hinge; kd applied exactly once."""
    for act in list(mj.actuators):
        mj.delete(act)
    joints = {j.name: j for j in mj.joints}
    for name, (kp, kd) in zip(spec.JOINT_NAMES, spec.PD_GAINS, strict=True):
        joint = joints[name]
        joint.stiffness = [0.0, 0.0, 0.0]  # MuJoCo 4: polynomial coefficients; all off
        joint.damping = [kd if damping == "joint" else 0.0, 0.0, 0.0]
        act = mj.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=kp, kv=kd if damping == "actuator" else 0.0)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_FALSE


def _ensure_floor(mj: mujoco.MjSpec) -> None:
    if any(g.type == mujoco.mjtGeom.mjGEOM_PLANE for g in mj.worldbody.geoms):
        return
    mj.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05])
    log.info("MJCF has no ground plane; added a floor at z = 0")


def _add_strike_target(mj: mujoco.MjSpec) -> None:
    hz = STRIKE_TARGET_HALF_SIZE[2]
    body = mj.worldbody.add_body(name=STRIKE_TARGET, pos=[3.0, 0.0, hz])
    body.add_freejoint(name=STRIKE_TARGET)
    body.add_geom(name=STRIKE_TARGET, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(STRIKE_TARGET_HALF_SIZE),
                  mass=STRIKE_TARGET_MASS, rgba=[0.2, 0.4, 0.8, 1.0])


def _add_contact_sensor(mj: mujoco.MjSpec, name: str, body1: str, body2: str | None, found: bool) -> None:
    """MuJoCo contact sensor: net force (3) on body1, or the number of body1-body2 contacts (1)."""
    sensor = mj.add_sensor(name=name, type=mujoco.mjtSensor.mjSENS_CONTACT,
                           objtype=mujoco.mjtObj.mjOBJ_BODY, objname=body1)
    if body2 is not None:
        sensor.reftype, sensor.refname = mujoco.mjtObj.mjOBJ_BODY, body2
    # intprm = [data bits (1 = found, 2 = force), reduce (0 none, 3 netforce), num]
    sensor.intprm = [1, 0, 1] if found else [2, 3, 1]


def build_model(mjcf: str | Path | None = None, *, objects=(), timestep: float = TIMESTEP,
                integrator: str = INTEGRATOR, damping: str = DAMPING) -> HumanoidModel:
    """Compile the humanoid (our asset if mjcf is None) with PD actuators, floor and objects.

    timestep (s) must divide spec.CONTROL_DT into an integer number of substeps.
    """
    path = DEFAULT_MJCF if mjcf is None else Path(mjcf)
    substeps = round(spec.CONTROL_DT / timestep)
    if substeps < 1 or abs(substeps * timestep - spec.CONTROL_DT) > 1e-9:
        raise InputError(f"timestep must divide the control dt {spec.CONTROL_DT:.6f} s; got {timestep}")
    if integrator not in _INTEGRATORS:
        raise InputError(f"integrator must be one of {sorted(_INTEGRATORS)}; got {integrator!r}")
    if damping not in ("actuator", "joint"):
        raise InputError(f"damping must be 'actuator' or 'joint'; got {damping!r}")
    unknown = [o for o in objects if o not in OBJECTS]
    if unknown:
        raise InputError(f"unknown scene objects {unknown}; known: {list(OBJECTS)}")

    mj = _load_spec(path)
    _validate_names(mj, path)
    mj.option.timestep = timestep
    mj.option.integrator = _INTEGRATORS[integrator]
    _set_actuators(mj, damping)
    _ensure_floor(mj)
    for obj in objects:
        _add_strike_target(mj)  # the only object so far
        for b in spec.BODY_NAMES:
            _add_contact_sensor(mj, f"{obj}/{b}", obj, b, found=True)
    for b in spec.BODY_NAMES:
        _add_contact_sensor(mj, f"force/{b}", b, None, found=False)
    try:
        model = mj.compile()
    except Exception as exc:
        raise ModelError(f"cannot compile MJCF {path}: {exc}") from exc
    return _index(model, path, substeps, damping, tuple(objects))


def _index(model: mujoco.MjModel, path: Path, substeps: int, damping: str, objects) -> HumanoidModel:
    body_ids = np.array([model.body(n).id for n in spec.BODY_NAMES])
    root = model.body_jntadr[body_ids[0]]
    if root < 0 or model.jnt_type[root] != mujoco.mjtJoint.mjJNT_FREE:
        raise ModelError(f"MJCF {path}: the root body {spec.BODY_NAMES[0]} needs a free joint")
    if model.jnt_qposadr[root] != 0:
        raise ModelError(f"MJCF {path}: the humanoid's free joint must come first in qpos")
    jids = np.array([model.joint(n).id for n in spec.JOINT_NAMES])
    ranges = np.where(model.jnt_limited[jids, None].astype(bool), model.jnt_range[jids], [-math.pi, math.pi])
    offset, scale = pd_offset_scale(ranges)
    sensor_adr = lambda name: int(model.sensor_adr[model.sensor(name).id])  # noqa: E731
    hm = HumanoidModel(
        model=model, mjcf=path, body_ids=body_ids,
        qpos_adr=model.jnt_qposadr[jids].copy(), dof_adr=model.jnt_dofadr[jids].copy(),
        actuator_ids=np.array([model.actuator(n).id for n in spec.JOINT_NAMES]),
        pd_offset=offset, pd_scale=scale, substeps=substeps, damping=damping,
        force_sensor_adr=np.array([sensor_adr(f"force/{b}") for b in spec.BODY_NAMES]),
    )
    for obj in objects:
        jnt = model.body_jntadr[model.body(obj).id]
        hm.object_body[obj] = model.body(obj).id
        hm.object_qpos_adr[obj] = int(model.jnt_qposadr[jnt])
        hm.object_dof_adr[obj] = int(model.jnt_dofadr[jnt])
        hm.object_contact_adr[obj] = np.array([sensor_adr(f"{obj}/{b}") for b in spec.BODY_NAMES])
    return hm


def standing_qpos(hm: HumanoidModel, clearance: float = 0.002) -> np.ndarray:
    """(nq,) rest pose (T-pose, zero joint angles) with the lowest humanoid geom `clearance` m above z=0."""
    qpos = hm.model.qpos0.copy()
    qpos[2] += clearance - lowest_geom_z(hm, qpos[None])[0]
    return qpos


def lowest_geom_z(hm: HumanoidModel, qpos: np.ndarray, data: mujoco.MjData | None = None) -> np.ndarray:
    """(n,) the lowest humanoid geom's world z for each qpos row (n, nq), by kinematics on a scratch MjData.

    Why geoms, not body origins: a foot body's origin says nothing of its box's corners, and a start whose
    corner sits inside the floor is kicked out of it by the first contact (the jump expert's seated starts)."""
    model = hm.model
    data = mujoco.MjData(model) if data is None else data
    geoms = np.flatnonzero(np.isin(model.geom_bodyid, hm.body_ids))
    out = np.empty(len(qpos))
    for i, row in enumerate(np.atleast_2d(qpos)):
        data.qpos[:] = row
        mujoco.mj_kinematics(model, data)
        out[i] = min(_geom_bottom(model, data, g) for g in geoms)
    return out


def _geom_bottom(model: mujoco.MjModel, data: mujoco.MjData, g: int) -> float:
    """Lowest world z of geom g (boxes, spheres, capsules exactly; others by bounding sphere)."""
    pos, mat, size = data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3), model.geom_size[g]
    kind = model.geom_type[g]
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        return float(pos[2] - np.abs(mat[2]) @ size)
    if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        return float(pos[2] - size[0])
    if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
        return float(pos[2] - abs(mat[2, 2]) * size[1] - size[0])
    return float(pos[2] - model.geom_rbound[g])
