"""MuJoCo Warp backend: the same humanoid on an independent MuJoCo implementation, CPU here and CUDA on a GPU.

MuJoCo Warp (`mujoco_warp`, Google DeepMind / NVIDIA) re-implements MuJoCo's pipeline as Warp kernels
over batched worlds, in float32. It is the engine under Isaac Lab's Newton, MuJoCo Playground and
mjlab. We feed it the model our one builder (humanoid_model.build_model) compiles - same MJCF,
actuators, PD gains, timestep, integrator, contact sensors - and read its state through the same
converter as the MuJoCo C backend (mjlayout), so the two differ only where the engines do.

Sizes and overflow: MuJoCo Warp preallocates contact and constraint rows. `constraint_budget` sizes
them from the model (every humanoid geom on the ground at once, plus self and object contacts); a
control step that overflows them raises `SimulationOverflowError` instead of silently dropping
constraints. Numerical blow-ups (NaN state) reset that world to standing and set `unstable`, as the
MuJoCo C backend does.

Perturbations: friction, gravity, mass and motor strength are per-world model fields (MuJoCo Warp
indexes a batched model field by world); after a mass change `set_const` recomputes the derived
constants per world. Action delay and observation noise live in our layer, as for every backend.
"""

from __future__ import annotations

import logging

import mujoco
import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, MissingExtraError, TTDeployError
from tt_deploy.obs.state import BodyState, RigidState
from tt_deploy.sim import mjlayout
from tt_deploy.sim.actions import ActionPath
from tt_deploy.sim.base import Simulator
from tt_deploy.sim.humanoid_model import INTEGRATOR, TIMESTEP, build_model, standing_qpos
from tt_deploy.sim.perturbations import add_obs_noise, per_env

log = logging.getLogger(__name__)

# model fields set_const writes per world after a mass change: batched together with body_mass
_MASS_DERIVED = ("body_subtreemass", "body_invweight0", "dof_invweight0", "actuator_acc0", "geom_rbound",
                 "geom_aabb", "geom_size", "actuator_lengthrange")
# contact rows per contact, pyramidal cone: 2 (condim - 1); elliptic: condim
_PLANE_CONTACTS = {mujoco.mjtGeom.mjGEOM_SPHERE: 1, mujoco.mjtGeom.mjGEOM_CAPSULE: 2}  # others: 4 (box-plane)
SELF_CONTACTS = 6  # per geom, for limbs touching each other or an object (measured peak: 163 - 61 = 102 of 150)


class SimulationOverflowError(TTDeployError, RuntimeError):
    """MuJoCo Warp needed more contact or constraint rows than were allocated: it would drop constraints."""


def import_mjwarp():
    """(warp, mujoco_warp), quiet; MissingExtraError with the install command without them."""
    try:
        import warp as wp

        wp.config.log_level = wp.LOG_WARNING  # no per-kernel "Module ... load" lines
        import mujoco_warp as mjw
    except ImportError as exc:
        raise MissingExtraError(f"--sim mjwarp needs MuJoCo Warp ({exc.name} is missing): "
                                "pip install 'tt-deploy[mjwarp]'") from None  # fmt: skip
    return wp, mjw


def constraint_budget(model: mujoco.MjModel) -> tuple[int, int]:
    """(contacts, constraint rows) to allocate per world, from the model.

    Contacts: every collidable non-plane geom resting on the ground at once (box 4, capsule 2, sphere 1
    contacts; the most each plane pair generates) plus SELF_CONTACTS per such geom for self and object
    contacts. Rows: contacts x rows per contact (pyramidal cone 2 (condim - 1), elliptic condim) + one row
    per limited joint + 6 per equality. Measured peaks: docs/simulation.md (a flailing humanoid that
    goes numerically unstable in MuJoCo C too reached 163 contacts and 721 rows of this model's 211 / 913).
    """
    collidable = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
    dynamic = collidable & (model.geom_type != mujoco.mjtGeom.mjGEOM_PLANE)
    types = model.geom_type[dynamic]
    contacts = int(sum(_PLANE_CONTACTS.get(int(t), 4) for t in types)) + SELF_CONTACTS * int(dynamic.sum())
    condim = int(model.geom_condim[dynamic].max(initial=3))
    per_contact = condim if model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC else max(1, 2 * (condim - 1))
    rows = contacts * per_contact + int(model.jnt_limited.sum()) + 6 * int(model.neq)
    return contacts, rows


def _checked_budget(budget) -> tuple[int, int] | None:
    """A user's (contacts, constraint rows), both integers >= 1: MuJoCo Warp takes (0, 0) and then reports 0
    contacts, and raises a bare ValueError for negative sizes, so both are refused here, before any work."""
    if budget is None:
        return None
    ok = (isinstance(budget, (tuple, list)) and len(budget) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in budget))
    if not ok:
        raise InputError(f"budget must be (contacts, constraint rows), both integers >= 1; got {budget!r}")
    return int(budget[0]), int(budget[1])


class MjWarpSimulator(Simulator):
    """num_envs humanoids as MuJoCo Warp worlds on `device` ("cpu", "cuda:0"); see the module docstring.

    Keywords as MujocoSimulator (mjcf, objects, perturbation, seed, timestep, integrator); no thread count:
    Warp schedules its own kernels. budget: (contacts, constraint rows) per world instead of constraint_budget's.
    """

    def __init__(self, num_envs: int, *, mjcf=None, device: str = "cpu", objects=(), perturbation=None,
                 seed: int = 0, timestep: float = TIMESTEP, integrator: str = INTEGRATOR,
                 budget: tuple[int, int] | None = None):
        if int(num_envs) != num_envs or num_envs < 1:
            raise InputError(f"num_envs must be a positive integer; got {num_envs}")
        budget = _checked_budget(budget)
        self._wp, self._mjw = import_mjwarp()
        try:
            self.device = self._wp.get_device(device)
        except Exception as exc:  # warp raises ValueError / RuntimeError for unknown or absent devices
            raise InputError(f"MuJoCo Warp device {device!r} is not available here: {exc}") from None
        self.num_envs = int(num_envs)
        self.hm = build_model(mjcf, objects=objects, timestep=timestep, integrator=integrator)
        self.model = self.hm.model
        self.objects = tuple(objects)
        self.control_dt = spec.CONTROL_DT
        self.pd_offset, self.pd_scale = self.hm.pd_offset, self.hm.pd_scale
        self.rng = np.random.default_rng(seed)
        self.nconmax, self.njmax = budget if budget is not None else constraint_budget(self.model)
        self._root_ids = self.model.body_rootid[self.hm.body_ids]
        self._stand = standing_qpos(self.hm)
        self._actions = ActionPath(self.num_envs, self.pd_offset, self.pd_scale)
        self.unstable = np.zeros(self.num_envs, dtype=bool)
        self.num_unstable_total = 0
        self.peak_contacts = 0  # most contacts of one world after any control step (sizing evidence)
        self.peak_rows = 0
        self._cache: BodyState | None = None
        self._graph = None
        self._conditional = None  # conditional graph nodes supported (checked on the first CUDA step)
        with self._wp.ScopedDevice(self.device):
            self._d = self._mjw.make_data(self.model, nworld=self.num_envs, nconmax=self.nconmax, njmax=self.njmax)
        self.set_perturbation(perturbation)  # builds the device model (self._m), batched where perturbed
        self.reset()

    # --- host <-> device --------------------------------------------------------------------
    def _view(self, name: str) -> np.ndarray:
        """A Data field on the host, read only: a view on the CPU device (no copy), a copy on CUDA. Warp vectors and
        quaternions become trailing axes."""
        return getattr(self._d, name).numpy()

    def _get(self, name: str) -> np.ndarray:
        """(N, ...) float64 copy of a Data field, to modify and `_set` back."""
        return np.array(self._view(name), dtype=np.float64)

    def _set(self, name: str, values: np.ndarray) -> None:
        arr = getattr(self._d, name)
        arr.assign(np.asarray(values, dtype=self._wp.dtype_to_numpy(arr.dtype)).reshape(arr.shape))

    def _forward(self) -> None:
        """Positions, com quantities and velocities current for the state now in Data (no contacts)."""
        with self._wp.ScopedDevice(self.device):
            self._mjw.fwd_kinematics(self._m, self._d)
            self._mjw.fwd_velocity(self._m, self._d)
        self._cache = None

    # --- perturbations ---------------------------------------------------------------------
    def set_perturbation(self, perturbation) -> None:
        """Apply None / one / N Perturbations (physics now; delay and noise from the next step)."""
        self.perturbations = per_env(perturbation, self.num_envs)
        values = mjlayout.physics_fields(self.hm, self.perturbations)
        wp, mjw = self._wp, self._mjw
        batched = [f for f in values if f != "opt.gravity"] + (list(_MASS_DERIVED) if "body_mass" in values else [])
        with wp.ScopedDevice(self.device):
            model = mjw.put_model(self.model, batch_sizes={f: self.num_envs for f in batched})
            model.opt.warn_overflow = 0  # we raise on overflow ourselves, with the sizes
            for name, value in values.items():
                owner, field = (model.opt, "gravity") if name == "opt.gravity" else (model, name)
                arr = getattr(owner, field)
                if name == "opt.gravity":  # Option fields are indexed per world the same way, but put_model
                    arr = wp.zeros(self.num_envs, dtype=arr.dtype)  # does not batch them: allocate here
                    setattr(owner, field, arr)
                arr.assign(np.asarray(value, dtype=np.float32).reshape(arr.shape + _inner(arr)))
            if "body_mass" in values:
                mjw.set_const(model, self._d, groups=mjw.SetConstGroup.FIXED | mjw.SetConstGroup.INERT0)
        self._m = model
        self._graph = None  # a captured CUDA graph holds the old model's arrays: capture again
        self._actions.set_delay([p.action_delay for p in self.perturbations])
        self.obs_noise = np.array([p.obs_noise for p in self.perturbations])

    def add_obs_noise(self, x: np.ndarray) -> np.ndarray:
        """(N, ...) observations plus each environment's obs_noise (std); a new array."""
        return add_obs_noise(x, self.obs_noise, self.rng)

    # --- stepping ---------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> None:
        """(N, 69) actions, clamped to [-1, 1] -> PD targets -> spec.CONTROL_DT of physics."""
        ctrl = self._get("ctrl")
        ctrl[:, self.hm.actuator_ids] = self._actions.targets(actions)
        self._set("ctrl", ctrl)
        self._d.overflow.zero_()
        self._physics()
        self._check_overflow()
        self._forward()
        qpos, qvel = self._view("qpos"), self._view("qvel")
        self.unstable = ~np.isfinite(qpos).all(axis=1) | ~np.isfinite(qvel).all(axis=1)
        if self.unstable.any():
            ids = np.flatnonzero(self.unstable)
            self.num_unstable_total += len(ids)
            log.warning("simulation unstable in %d env(s) %s; reset to standing", len(ids), ids[:8].tolist())
            self.reset(ids)

    def _substeps(self) -> None:
        for _ in range(self.hm.substeps):
            self._mjw.step(self._m, self._d)

    def _physics(self) -> None:
        """One control step of substeps; on CUDA replayed from a captured graph (MuJoCo Warp's documented fast
        path: one launch instead of hundreds of kernels per substep). Never run here: no GPU (docs/simulation.md)."""
        wp = self._wp
        with wp.ScopedDevice(self.device):
            if not self.device.is_cuda or not self._can_capture():
                self._substeps()
                return
            if self._graph is None:
                with wp.ScopedCapture() as capture:
                    self._substeps()
                self._graph = capture.graph
            wp.capture_launch(self._graph)

    def _can_capture(self) -> bool:
        """MuJoCo Warp's solver loops with wp.capture_while, which a CUDA graph holds only as a conditional node
        (CUDA driver and toolkit >= 12.4); without that the steps run uncaptured, slower but correct."""
        if self._conditional is None:
            self._conditional = bool(self._wp.is_conditional_graph_supported())
            if not self._conditional:
                log.warning("MuJoCo Warp: CUDA < 12.4 has no conditional graph nodes; stepping without CUDA graphs")
        return self._conditional

    def _check_overflow(self) -> None:
        ov = self._mjw.OverflowType
        dropping = int(ov.NEFC | ov.NJMAX_NNZ | ov.BROADPHASE | ov.NARROWPHASE | ov.CCD)
        flags = self._d.overflow.numpy()
        nefc = self._d.nefc.numpy()
        self.peak_rows = max(self.peak_rows, int(nefc.max()))
        self.peak_contacts = max(self.peak_contacts, int(self.contact_counts().max(initial=0)))
        bad = np.flatnonzero(flags & dropping)
        if bad.size:
            names = sorted({f.name for w in bad for f in ov if f.value and f.value & dropping & int(flags[w])
                            and f.name != "ALL"})  # fmt: skip
            raise SimulationOverflowError(
                f"MuJoCo Warp overflow ({', '.join(names)}) in world(s) {bad[:8].tolist()}: allocated "
                f"{self.nconmax} contacts and {self.njmax} constraint rows per world (constraint_budget), "
                f"used up to {int(nefc.max())} rows; constraints would be dropped")  # fmt: skip

    # --- reset ------------------------------------------------------------------------------
    def reset(self, env_ids=None, root_pos=None, root_quat=None, joint_pos=None,
              root_lin_vel=None, root_ang_vel=None, joint_vel=None) -> None:
        """Reset env_ids (None: all) to the standing pose or to the given state (as MujocoSimulator.reset)."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise InputError(f"env_ids must lie in [0, {self.num_envs}); got {ids.min()}..{ids.max()}")
        if ids.size == 0:
            return
        qpos_rows, qvel_rows = mjlayout.reset_rows(
            self.hm, self._stand, self.model.nv, len(ids), root_pos=root_pos, root_quat=root_quat,
            joint_pos=joint_pos, root_lin_vel=root_lin_vel, root_ang_vel=root_ang_vel, joint_vel=joint_vel)
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[ids] = True
        with self._wp.ScopedDevice(self.device):
            self._mjw.reset_data(self._m, self._d, reset=self._wp.array(mask, dtype=bool))
        qpos, qvel, ctrl = self._get("qpos"), self._get("qvel"), self._get("ctrl")
        qpos[ids], qvel[ids] = qpos_rows, qvel_rows
        ctrl[np.ix_(ids, self.hm.actuator_ids)] = self.pd_offset
        self._set("qpos", qpos)
        self._set("qvel", qvel)
        self._set("ctrl", ctrl)
        self._actions.clear(ids)
        self._forward()

    def push(self, env_ids, delta_lin_vel) -> None:
        """Add a world-frame velocity kick (n, 3) or (3,) m/s to the roots of env_ids (random pushes)."""
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return
        qvel = self._get("qvel")
        qvel[ids, 0:3] += mjlayout.rows("delta_lin_vel", delta_lin_vel, len(ids))
        self._set("qvel", qvel)
        self._forward()

    _STATE = ("qpos", "qvel", "act", "ctrl", "qacc_warmstart", "time")

    def state_dict(self) -> tuple[dict, dict]:
        """(arrays, meta) of everything stepping depends on: integration state, delay ring, counters, noise RNG."""
        arrays = {name: self._get(name) for name in self._STATE if getattr(self._d, name).size}
        arrays.update(ring=self._actions.ring.copy(), unstable=self.unstable.copy())
        meta = {"step_count": self._actions.count, "num_unstable_total": self.num_unstable_total,
                "rng": self.rng.bit_generator.state}  # fmt: skip
        return arrays, meta

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """Restore a state_dict(); derived fields (body poses, velocities) are recomputed."""
        for name in self._STATE:
            if name in arrays:
                if arrays[name].shape[0] != self.num_envs:
                    raise InputError(f"simulator state {name} has {arrays[name].shape[0]} worlds, this one {self.num_envs}")
                self._set(name, arrays[name])
        self._actions.ring[...] = arrays["ring"]
        self.unstable[...] = arrays["unstable"]
        self._actions.count = int(meta["step_count"])
        self.num_unstable_total = int(meta["num_unstable_total"])
        self.rng.bit_generator.state = meta["rng"]
        self._forward()

    # --- state ------------------------------------------------------------------------------
    def body_state(self) -> BodyState:
        """World pos (N, 24, 3), xyzw quat (N, 24, 4), world lin/ang vel (N, 24, 3) at the body origins."""
        if self._cache is None:
            self._cache = mjlayout.body_state(self.hm, self._view("xpos"), self._view("xquat"), self._view("cvel"),
                                              self._view("subtree_com"), self._root_ids)  # fmt: skip
        return self._cache

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        return (self._view("qpos")[:, self.hm.qpos_adr].astype(np.float64),
                self._view("qvel")[:, self.hm.dof_adr].astype(np.float64))

    def raw_qpos(self, env_ids) -> np.ndarray:
        """(len(env_ids), nq) MuJoCo qpos rows (wxyz root quat): for MuJoCo-side kinematics such as IK."""
        return self._view("qpos")[np.asarray(env_ids)].astype(np.float64)

    def contact_counts(self) -> np.ndarray:
        """(N,) contacts in each world after the last step (MuJoCo Warp pools them across worlds)."""
        nacon = min(int(self._d.nacon.numpy()[0]), self._d.naconmax)
        return np.bincount(self._d.contact.worldid.numpy()[:nacon], minlength=self.num_envs).astype(np.int64)

    def contact_forces(self) -> np.ndarray:
        """(N, 24) norm of the net contact force on each body (N) at the last physics substep."""
        adr = self.hm.force_sensor_adr[:, None] + np.arange(3)
        return np.linalg.norm(self._view("sensordata")[:, adr].astype(np.float64), axis=-1)

    # --- objects ----------------------------------------------------------------------------
    def _object(self, name: str) -> tuple[int, int]:
        if name not in self.hm.object_qpos_adr:
            raise InputError(f"no object {name!r} in this simulator; built with objects={list(self.objects)}")
        return self.hm.object_qpos_adr[name], self.hm.object_dof_adr[name]

    def object_state(self, name: str) -> RigidState:
        return mjlayout.object_state(self._view("qpos"), self._view("qvel"), *self._object(name))

    def set_object_state(self, name: str, env_ids, state: RigidState) -> None:
        qa, da = self._object(name)
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        qpos, qvel = self._get("qpos"), self._get("qvel")
        mjlayout.write_object_state(qpos, qvel, ids, qa, da, state)
        self._set("qpos", qpos)
        self._set("qvel", qvel)
        self._forward()

    def object_contacts(self, name: str) -> np.ndarray:
        """(N, 24) bool: humanoid bodies touching `name` at the last physics substep."""
        self._object(name)
        return self._view("sensordata")[:, self.hm.object_contact_adr[name]] > 0


def _inner(arr) -> tuple[int, ...]:
    """Trailing shape of one Warp element (vec3 -> (3,), scalar -> ())."""
    length = getattr(arr.dtype, "_length_", 0)
    return (length,) if length else ()
