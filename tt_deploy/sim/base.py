"""Backend-agnostic batched humanoid simulator interface.

A backend fills a handful of hooks; everything above (observations, tasks, training,
sim2sim) sees one convention, the reference's: world frame, z-up, quaternions xyzw, bodies in
`spec.BODY_NAMES` order, joints in `spec.JOINT_NAMES` order, linear AND angular velocities as
world-frame vectors. Arrays are float64 numpy, leading dimension = number of environments.
"""

from __future__ import annotations

import abc
from typing import Protocol, runtime_checkable

import numpy as np

from tt_deploy.obs.state import BodyState, RigidState


class Simulator(abc.ABC):
    """N humanoid environments stepped together at the control rate (spec.CONTROL_DT).

    `step(actions)` maps actions in [-1, 1] to PD position targets
    (`pd_offset + pd_scale * a`, radians) and advances one control step of physics substeps.
    """

    num_envs: int
    control_dt: float
    pd_offset: np.ndarray  # (69,) rad
    pd_scale: np.ndarray  # (69,) rad per action unit

    @abc.abstractmethod
    def reset(self, env_ids: np.ndarray | None = None, root_pos=None, root_quat=None, joint_pos=None,
              root_lin_vel=None, root_ang_vel=None, joint_vel=None) -> None:
        """Reset environments to the standing pose, or to the given state (xyzw, world)."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> None:
        """(N, 69) actions in [-1, 1] -> one control step."""

    @abc.abstractmethod
    def body_state(self) -> BodyState:
        """Current state of the 24 bodies (after the last step, positions current)."""

    @abc.abstractmethod
    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 69) joint angles (rad) and velocities (rad/s)."""

    @abc.abstractmethod
    def contact_forces(self) -> np.ndarray:
        """(N, 24) norm of the contact force on each body (N), ground and objects."""

    # --- optional scene objects (the strike target); backends without objects raise ---------
    def object_state(self, name: str) -> RigidState:
        """State of the free object `name` in every environment."""
        raise NotImplementedError(f"{type(self).__name__} has no object {name!r}")

    def set_object_state(self, name: str, env_ids: np.ndarray, state: RigidState) -> None:
        """Teleport object `name` in environments env_ids (state arrays have len(env_ids) rows)."""
        raise NotImplementedError(f"{type(self).__name__} has no object {name!r}")

    def object_contacts(self, name: str) -> np.ndarray:
        """(N, 24) bool: which humanoid bodies touch object `name` this control step."""
        raise NotImplementedError(f"{type(self).__name__} has no object {name!r}")

    def ground_height(self, xy: np.ndarray) -> np.ndarray:
        """Terrain height under world points (..., 2); flat ground is 0."""
        return np.zeros(xy.shape[:-1])


# --- optional abilities: small protocols, checked once (isinstance) by whoever needs one -------------
@runtime_checkable
class ReportsInstability(Protocol):
    """`unstable` (N,) bool: envs whose last step went numerically bad (the backend reset them)."""

    unstable: np.ndarray


@runtime_checkable
class NoisyObservations(Protocol):
    """`obs_noise` scalar or (N,): std of the observation noise the env layer adds (a perturbation)."""

    obs_noise: np.ndarray


@runtime_checkable
class Pushable(Protocol):
    """`push(env_ids, delta_lin_vel)`: add a root velocity change (m/s, world) to those envs."""

    def push(self, env_ids, delta_lin_vel) -> None: ...


@runtime_checkable
class MujocoKinematics(Protocol):
    """MuJoCo-side kinematics for IK (training oracles, pretraining): the model wrapper `hm` and raw qpos rows (wxyz root)."""

    hm: object

    def raw_qpos(self, env_ids) -> np.ndarray: ...
