"""MuJoCo backend: N humanoids stepped together with `mujoco.batch.Batch` (MuJoCo >= 4.0).

Every array crossing this module's boundary is in the reference convention (base.py): bodies and
joints in spec order, quaternions xyzw, world-frame linear and angular velocities. There is no
Python loop over environments on the hot path: one `Batch.step` per control step runs the
substeps on the thread pool and computes the velocity stage, so xpos/xquat/cvel are current.

MuJoCo does not raise on divergence: it warns and resets that simulation. `step` checks the
warning counters and NaNs, sets `unstable` (N,) for the last step, resets those environments to
the standing pose and logs a warning.
"""

from __future__ import annotations

import logging

import mujoco
import mujoco.batch
import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.obs.state import BodyState, RigidState
from tt_deploy.sim import mjlayout
from tt_deploy.sim.actions import ActionPath
from tt_deploy.sim.base import Simulator
from tt_deploy.sim.humanoid_model import INTEGRATOR, TIMESTEP, build_model, standing_qpos
from tt_deploy.sim.perturbations import Perturbation, add_obs_noise, per_env

log = logging.getLogger(__name__)

# warnings after which MuJoCo has reset the simulation (its state is no longer ours)
_DIVERGED = [int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                              mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADCTRL)]
_VEL = mujoco.mjtStage.mjSTAGE_VEL
_NONE = mujoco.mjtStage.mjSTAGE_NONE


def _silence_mujoco_warnings() -> None:
    """MuJoCo prints each warning to stderr from every thread; we count them per env instead."""
    mujoco.set_mju_user_warning(lambda msg: log.debug("mujoco: %s", msg.strip()))


class MujocoSimulator(Simulator):
    """num_envs humanoids on `mujoco.batch` (see module docstring).

    mjcf: None for our asset, or the path of an MJCF with the SMPL names (e.g. ProtoMotions'
    smpl_humanoid.xml); objects: scene objects to add, e.g. ("strike_target",);
    perturbation: None, one Perturbation for all, or one per environment; seed: obs-noise RNG.
    """

    def __init__(self, num_envs: int, *, mjcf=None, nthread: int = 2, objects=(), perturbation=None,
                 seed: int = 0, timestep: float = TIMESTEP, integrator: str = INTEGRATOR):
        if int(num_envs) != num_envs or num_envs < 1:
            raise InputError(f"num_envs must be a positive integer; got {num_envs}")
        _silence_mujoco_warnings()
        self.num_envs = int(num_envs)
        self.hm = build_model(mjcf, objects=objects, timestep=timestep, integrator=integrator)
        self.model = self.hm.model
        self.control_dt = spec.CONTROL_DT
        self.pd_offset, self.pd_scale = self.hm.pd_offset, self.hm.pd_scale
        self.objects = tuple(objects)
        self.rng = np.random.default_rng(seed)
        self.batch = mujoco.batch.Batch(self.model, self.num_envs, nthread)
        b = self.batch
        self._qpos, self._qvel, self._ctrl = b.bind("qpos"), b.bind("qvel"), b.bind("ctrl")
        self._xpos, self._xquat, self._cvel = b.bind("xpos"), b.bind("xquat"), b.bind("cvel")
        self._subtree_com, self._sensordata = b.bind("subtree_com"), b.bind("sensordata")
        self._ncon = b.bind("ncon")  # bound fields persist between steps (mujoco.batch keeps only those)
        self._root_ids = self.model.body_rootid[self.hm.body_ids]
        self._stand = standing_qpos(self.hm)
        self._ctrl_ids = self.hm.actuator_ids
        self.unstable = np.zeros(self.num_envs, dtype=bool)
        self.num_unstable_total = 0
        self._actions = ActionPath(self.num_envs, self.pd_offset, self.pd_scale)
        self._cache: BodyState | None = None
        self.set_perturbation(perturbation)
        self.reset()

    # --- perturbations ---------------------------------------------------------------------
    def set_perturbation(self, perturbation) -> None:
        """Apply None / one / N Perturbations (physics now; delay and noise from the next step)."""
        self.perturbations: tuple[Perturbation, ...] = per_env(perturbation, self.num_envs)
        _apply_physics(self.batch, self.hm, self.perturbations)
        self._actions.set_delay([p.action_delay for p in self.perturbations])
        self.obs_noise = np.array([p.obs_noise for p in self.perturbations])

    def add_obs_noise(self, x: np.ndarray) -> np.ndarray:
        """(N, ...) observations plus each environment's obs_noise (std); a new array."""
        return add_obs_noise(x, self.obs_noise, self.rng)

    # --- stepping ---------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> None:
        """(N, 69) actions, clamped to [-1, 1] -> PD targets -> spec.CONTROL_DT of physics."""
        self._ctrl[:, self._ctrl_ids] = self._actions.targets(actions)
        self._cache = None
        failed = np.zeros(self.num_envs, dtype=bool)
        try:
            self.batch.step(nstep=self.hm.substeps, stage=_VEL)
        except mujoco.batch.SimulationError as exc:  # MuJoCo raised (not a warning) in some envs
            failed[exc.ids] = True
            log.warning("%s", exc)
        self._check_stability(failed)

    def _check_stability(self, failed: np.ndarray) -> None:
        counts = self.batch.warning[:, _DIVERGED, 1]
        bad = failed | counts.any(axis=1)
        bad |= ~np.isfinite(self._qpos).all(axis=1) | ~np.isfinite(self._qvel).all(axis=1)
        self.unstable = bad
        if bad.any():
            ids = np.flatnonzero(bad)
            self.num_unstable_total += len(ids)
            log.warning("simulation unstable in %d env(s) %s; reset to standing", len(ids), ids[:8].tolist())
            self.batch.warning[ids] = 0
            self.reset(ids)

    # --- reset ------------------------------------------------------------------------------
    def reset(self, env_ids=None, root_pos=None, root_quat=None, joint_pos=None,
              root_lin_vel=None, root_ang_vel=None, joint_vel=None) -> None:
        """Reset env_ids (None: all) to the standing pose or to the given state.

        root_pos (n, 3) m; root_quat (n, 4) xyzw; root_lin_vel / root_ang_vel (n, 3) world frame;
        joint_pos (n, 69) rad, joint_vel (n, 69) rad/s. Missing entries take the standing pose
        (feet 2 mm above the ground) and zero velocity. Body state is current after the call.
        """
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise InputError(f"env_ids must lie in [0, {self.num_envs}); got {ids.min()}..{ids.max()}")
        if ids.size == 0:
            return
        n = len(ids)
        qpos, qvel = mjlayout.reset_rows(self.hm, self._stand, self.model.nv, n, root_pos=root_pos,
                                         root_quat=root_quat, joint_pos=joint_pos, root_lin_vel=root_lin_vel,
                                         root_ang_vel=root_ang_vel, joint_vel=joint_vel)  # fmt: skip
        self.batch.reset(ids, stage=_NONE)
        self._qpos[ids] = qpos
        self._qvel[ids] = qvel
        self._ctrl[np.ix_(ids, self._ctrl_ids)] = self.pd_offset
        self._actions.clear(ids)
        self.batch.forward(ids, stage=_VEL)
        self._cache = None

    def push(self, env_ids, delta_lin_vel) -> None:
        """Add a world-frame velocity kick (n, 3) or (3,) m/s to the roots of env_ids (random pushes).

        The root's free-joint linear velocity is world-frame in MuJoCo, so the kick adds directly.
        """
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return
        self._qvel[ids, 0:3] += mjlayout.rows("delta_lin_vel", delta_lin_vel, len(ids))
        self.batch.forward(ids, stage=_VEL)
        self._cache = None

    def state_dict(self) -> tuple[dict, dict]:
        """(arrays, meta) of everything stepping depends on: the batch's integration state rows
        (qpos, qvel, act, ctrl, warm start, ...), the action-delay ring, counters and the noise RNG."""
        arrays = {"rows": np.array(self.batch.state), "ring": self._actions.ring.copy(), "unstable": self.unstable.copy()}
        meta = {"step_count": self._actions.count, "num_unstable_total": self.num_unstable_total,
                "rng": self.rng.bit_generator.state}  # fmt: skip
        return arrays, meta

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """Restore a state_dict(); derived fields (body poses, velocities) are recomputed."""
        if arrays["rows"].shape != self.batch.state.shape:
            raise InputError(f"simulator state has shape {arrays['rows'].shape}, this batch {self.batch.state.shape}")
        self.batch.state[...] = arrays["rows"]
        self._actions.ring[...] = arrays["ring"]
        self.unstable[...] = arrays["unstable"]
        self._actions.count = int(meta["step_count"])
        self.num_unstable_total = int(meta["num_unstable_total"])
        self.rng.bit_generator.state = meta["rng"]
        self.batch.forward(stage=_VEL)
        self._cache = None

    # --- state ------------------------------------------------------------------------------
    def body_state(self) -> BodyState:
        """World pos (N, 24, 3), xyzw quat (N, 24, 4), world lin/ang vel (N, 24, 3) at the body origins."""
        if self._cache is None:
            self._cache = mjlayout.body_state(self.hm, self._xpos, self._xquat, self._cvel, self._subtree_com,
                                              self._root_ids)  # fmt: skip
        return self._cache

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        return self._qpos[:, self.hm.qpos_adr].copy(), self._qvel[:, self.hm.dof_adr].copy()

    def raw_qpos(self, env_ids) -> np.ndarray:
        """(len(env_ids), nq) MuJoCo qpos rows (wxyz root quat): for MuJoCo-side kinematics such as IK."""
        return self._qpos[np.asarray(env_ids)].copy()

    def contact_counts(self) -> np.ndarray:
        """(N,) contacts MuJoCo holds in each environment after the last step (cross-engine comparisons)."""
        return self._ncon.astype(np.int64)

    def contact_forces(self) -> np.ndarray:
        """(N, 24) norm of the net contact force on each body (N) at the last physics substep."""
        adr = self.hm.force_sensor_adr[:, None] + np.arange(3)
        return np.linalg.norm(self._sensordata[:, adr], axis=-1)

    # --- objects ----------------------------------------------------------------------------
    def _object(self, name: str) -> tuple[int, int]:
        if name not in self.hm.object_qpos_adr:
            raise InputError(f"no object {name!r} in this simulator; built with objects={list(self.objects)}")
        return self.hm.object_qpos_adr[name], self.hm.object_dof_adr[name]

    def object_state(self, name: str) -> RigidState:
        return mjlayout.object_state(self._qpos, self._qvel, *self._object(name))

    def set_object_state(self, name: str, env_ids, state: RigidState) -> None:
        qa, da = self._object(name)
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        mjlayout.write_object_state(self._qpos, self._qvel, ids, qa, da, state)
        self.batch.forward(ids, stage=_VEL)
        self._cache = None

    def object_contacts(self, name: str) -> np.ndarray:
        """(N, 24) bool: humanoid bodies touching `name` at the last physics substep."""
        self._object(name)
        return self._sensordata[:, self.hm.object_contact_adr[name]] > 0


def _apply_physics(batch: mujoco.batch.Batch, hm, perts: tuple[Perturbation, ...]) -> None:
    """Write each env's physics-knob field values (mjlayout.physics_fields) into expanded model fields.

    Fields are expanded only when some env departs from nominal; a field expanded before and nominal
    now goes back to the compiled model's values, so applying a new set replaces the old one.
    """
    values = mjlayout.physics_fields(hm, perts)
    for name in mjlayout.PHYSICS_FIELDS:
        if name in values:
            batch.expand(name)[:] = values[name]
        elif batch.expanded(name) is not None:
            batch.expand(name)[:] = _nominal(hm.model, name)
    if "body_mass" in values or batch.expanded("body_mass") is not None:
        batch.set_const()  # derived constants (e.g. dof_invweight0, body_subtreemass) follow


def _nominal(model: mujoco.MjModel, name: str) -> np.ndarray:
    obj = model
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj
