"""The humanoid state every observation is built from: world frame, z-up, quaternions xyzw, bodies in
`spec.BODY_NAMES` order, linear and angular velocities as world-frame vectors (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BodyState:
    """Rigid-body state of every humanoid body, reference convention.

    pos (N, 24, 3) m; quat (N, 24, 4) xyzw world orientation of each body frame;
    lin_vel (N, 24, 3) m/s and ang_vel (N, 24, 3) rad/s, both world-frame vectors.
    """

    pos: np.ndarray
    quat: np.ndarray
    lin_vel: np.ndarray
    ang_vel: np.ndarray

    def select(self, ids) -> BodyState:
        return BodyState(self.pos[ids], self.quat[ids], self.lin_vel[ids], self.ang_vel[ids])


@dataclass
class RigidState:
    """State of one free rigid object per environment (e.g. the strike target)."""

    pos: np.ndarray  # (N, 3)
    quat: np.ndarray  # (N, 4) xyzw
    lin_vel: np.ndarray  # (N, 3) world
    ang_vel: np.ndarray  # (N, 3) world
