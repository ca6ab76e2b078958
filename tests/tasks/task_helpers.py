"""Hand-built states and a fake simulator for the task tests (no physics)."""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.obs.rotations import quat_about_z
from tt_deploy.obs.state import BodyState, RigidState
from tt_deploy.sim.base import Simulator


def make_state(n: int = 1, root=(0.0, 0.0, 0.9), yaw: float = 0.0) -> BodyState:
    """All 24 bodies at `root` (m), all rotated by `yaw` about z, at rest."""
    pos = np.tile(np.asarray(root, dtype=np.float64), (n, spec.NUM_BODIES, 1))
    quat = np.tile(quat_about_z(np.float64(yaw)), (n, spec.NUM_BODIES, 1))
    zeros = np.zeros((n, spec.NUM_BODIES, 3))
    return BodyState(pos, quat, zeros, zeros.copy())


def moved(state: BodyState, delta, dt: float = spec.CONTROL_DT) -> BodyState:
    """The state one control step later after moving every body by delta (m), i.e. velocity delta/dt."""
    delta = np.asarray(delta, dtype=np.float64)
    return BodyState(state.pos + delta, state.quat.copy(), state.lin_vel.copy(), state.ang_vel.copy())


class FakeSim(Simulator):
    """Holds a state, contact forces and one strike target; stepping does nothing."""

    def __init__(self, state: BodyState):
        self.num_envs = state.pos.shape[0]
        self.control_dt = spec.CONTROL_DT
        self.pd_offset = np.zeros(spec.NUM_DOF)
        self.pd_scale = np.ones(spec.NUM_DOF)
        self.state = state
        self.forces = np.zeros((self.num_envs, spec.NUM_BODIES))
        self.contacts = np.zeros((self.num_envs, spec.NUM_BODIES), dtype=bool)
        zeros = np.zeros((self.num_envs, 3))
        self.target = RigidState(zeros + [5.0, 0.0, 0.9], np.tile([0.0, 0.0, 0.0, 1.0], (self.num_envs, 1)),
                                 zeros.copy(), zeros.copy())

    def reset(self, env_ids=None, root_pos=None, root_quat=None, joint_pos=None, root_lin_vel=None,
              root_ang_vel=None, joint_vel=None) -> None:
        pass

    def step(self, actions) -> None:
        pass

    def body_state(self) -> BodyState:
        return self.state

    def joint_state(self):
        return np.zeros((self.num_envs, spec.NUM_DOF)), np.zeros((self.num_envs, spec.NUM_DOF))

    def contact_forces(self) -> np.ndarray:
        return self.forces

    def object_state(self, name: str) -> RigidState:
        return self.target

    def set_object_state(self, name, env_ids, state: RigidState) -> None:
        for field in ("pos", "quat", "lin_vel", "ang_vel"):
            getattr(self.target, field)[env_ids] = getattr(state, field)

    def object_contacts(self, name: str) -> np.ndarray:
        return self.contacts
