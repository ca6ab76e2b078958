"""Isaac Gym backend (optional extra), same interface and conventions as the MuJoCo backend.

Written against Isaac Gym Preview 4's documented API (gymapi / gymtorch); Isaac Gym is not
installable on our CI machines, so this module has NEVER run on real Isaac Gym (docs/simulation.md).
It must stay importable without isaacgym and parse as Python 3.8 (Isaac Gym's supported version):
no `match`, no runtime `X | Y` unions, no parenthesised context managers.

Isaac Gym's conventions already match the reference: quaternions xyzw, world-frame root and
rigid-body linear/angular velocities. Its body/DoF order is the asset's DFS order; we map it into
spec order by name. PD runs in the engine (DOF_MODE_POS, stiffness/damping from spec.PD_GAINS).
Physics: dt = 1/60 s x 2 substeps per 1/30 s control step (the reference's setting), PhysX, z-up.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, MissingExtraError
from tt_deploy.obs.state import BodyState
from tt_deploy.sim.actions import ActionPath
from tt_deploy.sim.base import Simulator
from tt_deploy.sim.humanoid_model import DEFAULT_MJCF, pd_offset_scale
from tt_deploy.sim.perturbations import Perturbation, per_env

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "Isaac Gym is not installed. Download Isaac Gym Preview 4 from https://developer.nvidia.com/isaac-gym, "
    "then `pip install -e isaacgym/python` in a Python 3.8 environment with an NVIDIA GPU, and install "
    "torch before importing isaacgym's torch utilities."
)


def _import_isaacgym():
    try:
        from isaacgym import gymapi, gymtorch  # noqa: F401  (gymapi must precede torch)
    except ImportError as exc:
        raise MissingExtraError(INSTALL_HINT) from exc
    import torch

    return gymapi, gymtorch, torch


class IsaacGymSimulator(Simulator):
    """num_envs humanoids in one Isaac Gym sim; arrays returned as float64 numpy (reference convention).

    mjcf: the humanoid MJCF (Isaac Gym loads MJCF assets; ours by default);
    perturbation: None / one / one per env (friction, mass per env; gravity must be uniform
    because PhysX has one gravity per sim; motor scales the DOF drive gains; delay by ring buffer).
    """

    def __init__(self, num_envs: int, *, mjcf=None, device: str = "cuda:0", perturbation=None,
                 seed: int = 0, headless: bool = True, spacing: float = 5.0):
        gymapi, gymtorch, torch = _import_isaacgym()
        self._gymapi, self._gymtorch, self._torch = gymapi, gymtorch, torch
        self.num_envs = int(num_envs)
        self.control_dt = spec.CONTROL_DT
        self.device = device
        self.perturbations = per_env(perturbation, self.num_envs)
        gravity = {p.gravity for p in self.perturbations}
        if len(gravity) != 1:
            raise InputError("Isaac Gym has one gravity per sim: use the same gravity multiplier in every env")
        self.gym = gymapi.acquire_gym()
        self.sim = self._create_sim(gravity.pop())
        self._create_envs(str(mjcf or DEFAULT_MJCF), spacing)
        self.gym.prepare_sim(self.sim)
        self._acquire_tensors()
        self._actions = ActionPath(self.num_envs, self.pd_offset, self.pd_scale,
                                   [p.action_delay for p in self.perturbations])
        self.obs_noise = np.array([p.obs_noise for p in self.perturbations])
        self.rng = np.random.default_rng(seed)
        self.unstable = np.zeros(self.num_envs, dtype=bool)
        self.reset()

    # --- construction -----------------------------------------------------------------------
    def _create_sim(self, gravity_scale: float):
        gymapi = self._gymapi
        params = gymapi.SimParams()
        params.dt = 1.0 / 60.0
        params.substeps = 2
        params.up_axis = gymapi.UP_AXIS_Z
        params.gravity = gymapi.Vec3(0.0, 0.0, -9.81 * gravity_scale)
        params.use_gpu_pipeline = self.device.startswith("cuda")
        params.physx.num_position_iterations = 4
        params.physx.num_velocity_iterations = 0
        params.physx.contact_offset = 0.02
        params.physx.rest_offset = 0.0
        params.physx.use_gpu = self.device.startswith("cuda")
        gpu = int(self.device.split(":")[1]) if ":" in self.device else 0
        sim = self.gym.create_sim(gpu, gpu, gymapi.SIM_PHYSX, params)
        plane = gymapi.PlaneParams()
        plane.normal = gymapi.Vec3(0.0, 0.0, 1.0)
        plane.static_friction = plane.dynamic_friction = 1.0
        self.gym.add_ground(sim, plane)
        return sim

    def _create_envs(self, mjcf: str, spacing: float) -> None:
        gymapi = self._gymapi
        opts = gymapi.AssetOptions()
        opts.angular_damping = 0.01
        opts.max_angular_velocity = 100.0
        opts.default_dof_drive_mode = gymapi.DOF_MODE_POS
        asset = self.gym.load_asset(self.sim, os.path.dirname(mjcf), os.path.basename(mjcf), opts)
        body_names = self.gym.get_asset_rigid_body_names(asset)
        dof_names = self.gym.get_asset_dof_names(asset)
        missing = [n for n in spec.BODY_NAMES if n not in body_names] + [n for n in spec.JOINT_NAMES if n not in dof_names]
        if missing:
            raise InputError("asset {} lacks SMPL names: {}".format(mjcf, ", ".join(missing)))
        self._body_idx = np.array([body_names.index(n) for n in spec.BODY_NAMES])
        self._dof_idx = np.array([dof_names.index(n) for n in spec.JOINT_NAMES])
        self._num_bodies, self._num_dof = len(body_names), len(dof_names)
        dof_props = self.gym.get_asset_dof_properties(asset)
        ranges = np.stack([dof_props["lower"], dof_props["upper"]], axis=-1)[self._dof_idx]
        self.pd_offset, self.pd_scale = pd_offset_scale(ranges)
        lower, upper = gymapi.Vec3(-spacing, -spacing, 0.0), gymapi.Vec3(spacing, spacing, spacing)
        per_row = int(np.sqrt(self.num_envs))
        start = gymapi.Transform()
        start.p = gymapi.Vec3(0.0, 0.0, 0.95)
        self.envs, self.actors = [], []
        for i, pert in enumerate(self.perturbations):  # construction only, not the hot path
            env = self.gym.create_env(self.sim, lower, upper, per_row)
            actor = self.gym.create_actor(env, asset, start, "humanoid", i, 0, 0)
            self._apply_props(env, actor, dof_props, pert)
            self.envs.append(env)
            self.actors.append(actor)

    def _apply_props(self, env, actor, dof_props, pert: Perturbation) -> None:
        props = dof_props.copy()
        for k, j in enumerate(self._dof_idx):
            kp, kd = spec.PD_GAINS[k]
            props["driveMode"][j] = self._gymapi.DOF_MODE_POS
            props["stiffness"][j] = kp * pert.motor
            props["damping"][j] = kd * pert.motor
        self.gym.set_actor_dof_properties(env, actor, props)
        shapes = self.gym.get_actor_rigid_shape_properties(env, actor)
        for s in shapes:
            s.friction = s.friction * pert.friction
        self.gym.set_actor_rigid_shape_properties(env, actor, shapes)
        if pert.mass != 1.0:
            bodies = self.gym.get_actor_rigid_body_properties(env, actor)
            for b in bodies:
                b.mass = b.mass * pert.mass
                b.inertia.x = b.inertia.x * pert.mass
                b.inertia.y = b.inertia.y * pert.mass
                b.inertia.z = b.inertia.z * pert.mass
            self.gym.set_actor_rigid_body_properties(env, actor, bodies, recomputeInertia=False)

    def _acquire_tensors(self) -> None:
        gt, n = self._gymtorch, self.num_envs
        self.gym.refresh_actor_root_state_tensor(self.sim)
        self._root = gt.wrap_tensor(self.gym.acquire_actor_root_state_tensor(self.sim))  # (N, 13)
        self._dof = gt.wrap_tensor(self.gym.acquire_dof_state_tensor(self.sim)).view(n, self._num_dof, 2)
        self._rb = gt.wrap_tensor(self.gym.acquire_rigid_body_state_tensor(self.sim)).view(n, self._num_bodies, 13)
        self._contact = gt.wrap_tensor(self.gym.acquire_net_contact_force_tensor(self.sim)).view(n, self._num_bodies, 3)
        self._targets = self._torch.zeros((n, self._num_dof), device=self.device)
        self._init_root = self._root.clone()

    def _refresh(self) -> None:
        for fn in (self.gym.refresh_actor_root_state_tensor, self.gym.refresh_dof_state_tensor,
                   self.gym.refresh_rigid_body_state_tensor, self.gym.refresh_net_contact_force_tensor):
            fn(self.sim)

    # --- Simulator interface ----------------------------------------------------------------
    def step(self, actions: np.ndarray) -> None:
        target = self._actions.targets(actions)
        self._targets[:, self._dof_idx] = self._torch.as_tensor(target, dtype=self._torch.float32, device=self.device)
        self.gym.set_dof_position_target_tensor(self.sim, self._gymtorch.unwrap_tensor(self._targets))
        for _ in range(round(self.control_dt * 60)):  # 2 x 1/60 s per control step
            self.gym.simulate(self.sim)
        if self.device == "cpu":
            self.gym.fetch_results(self.sim, True)
        self._refresh()
        bad = ~self._torch.isfinite(self._rb).reshape(self.num_envs, -1).all(dim=1)
        self.unstable = bad.cpu().numpy()
        if self.unstable.any():
            log.warning("simulation unstable in envs %s; reset to standing", np.flatnonzero(self.unstable)[:8].tolist())
            self.reset(np.flatnonzero(self.unstable))

    def reset(self, env_ids: np.ndarray | None = None, root_pos=None, root_quat=None, joint_pos=None,
              root_lin_vel=None, root_ang_vel=None, joint_vel=None) -> None:
        torch = self._torch
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        t_ids = torch.as_tensor(ids, device=self.device)
        root = self._init_root[t_ids].clone()
        root[:, 7:13] = 0.0
        for cols, value in ((slice(0, 3), root_pos), (slice(3, 7), root_quat),  # xyzw already
                            (slice(7, 10), root_lin_vel), (slice(10, 13), root_ang_vel)):
            if value is not None:
                root[:, cols] = torch.as_tensor(np.broadcast_to(value, (len(ids), cols.stop - cols.start)),
                                                dtype=root.dtype, device=self.device)
        self._root[t_ids] = root
        dof = torch.zeros((len(ids), self._num_dof, 2), device=self.device)
        for k, value in ((0, joint_pos), (1, joint_vel)):
            if value is not None:
                dof[:, self._dof_idx, k] = torch.as_tensor(np.broadcast_to(value, (len(ids), spec.NUM_DOF)),
                                                           dtype=dof.dtype, device=self.device)
        self._dof[t_ids] = dof
        actor_ids = t_ids.to(torch.int32)  # one actor per env: actor index == env index
        gt = self._gymtorch
        self.gym.set_actor_root_state_tensor_indexed(self.sim, gt.unwrap_tensor(self._root),
                                                     gt.unwrap_tensor(actor_ids), len(ids))
        self.gym.set_dof_state_tensor_indexed(self.sim, gt.unwrap_tensor(self._dof),
                                              gt.unwrap_tensor(actor_ids), len(ids))
        self._actions.clear(ids)
        self._refresh()

    def body_state(self) -> BodyState:
        rb = self._rb[:, self._body_idx].double().cpu().numpy()  # pos, quat xyzw, lin vel, ang vel (world)
        return BodyState(rb[..., 0:3], rb[..., 3:7], rb[..., 7:10], rb[..., 10:13])

    def joint_state(self):
        dof = self._dof[:, self._dof_idx].double().cpu().numpy()
        return dof[..., 0], dof[..., 1]

    def contact_forces(self) -> np.ndarray:
        return self._contact[:, self._body_idx].norm(dim=-1).double().cpu().numpy()

    def add_obs_noise(self, x: np.ndarray) -> np.ndarray:
        from tt_deploy.sim.perturbations import add_obs_noise

        return add_obs_noise(x, self.obs_noise, self.rng)


__all__ = ["IsaacGymSimulator", "INSTALL_HINT"]
