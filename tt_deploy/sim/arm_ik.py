"""Damped least-squares IK for one arm on the humanoid's MuJoCo model: the PD actions that hold a hand at a point.

Reaching is mostly kinematics: IK on the arm's shoulder and elbow hinges, plus the PD offset that holds the
arm against gravity, gives the actions that put the hand on a target wherever the arm alone gets there.
BFM pretraining clones it (tt_deploy/pretrain/); task-token training uses it as the reach oracle
(train/oracles.py). Never exported.
"""

from __future__ import annotations

import mujoco
import numpy as np

from tt_deploy import spec
from tt_deploy.sim.humanoid_model import HumanoidModel

ARM_BODIES = ("Shoulder", "Elbow")


def arm_joint_ids(hand: str) -> np.ndarray:
    """Spec joint indices (6,) of the shoulder and elbow hinges on the side of `hand` ("R_Hand"/"L_Hand")."""
    side = hand.split("_")[0]
    return np.array([spec.JOINT_NAMES.index(f"{side}_{b}_{a}") for b in ARM_BODIES for a in "xyz"])


class ArmIK:
    """DLS IK on one MjData scratch copy; `solve` returns the arm actions that hold the hand at a point."""

    snapshot_state = False  # a scratch solver: nothing to resume, and its settings come from code

    def __init__(self, hm: HumanoidModel, iterations: int = 25, damping: float = 0.05, max_step: float = 0.3):
        self.hm, self.model = hm, hm.model
        self.data = mujoco.MjData(self.model)
        self.iterations, self.damping, self.max_step = iterations, damping, max_step
        self._jacp = np.zeros((3, self.model.nv))
        self._bias = np.zeros(self.model.nv)
        self.kp = self.model.actuator_gainprm[hm.actuator_ids, 0].copy()
        jids = np.array([self.model.joint(n).id for n in spec.JOINT_NAMES])
        limited = self.model.jnt_limited[jids].astype(bool)
        self.lo = np.where(limited, self.model.jnt_range[jids, 0], -np.pi)
        self.hi = np.where(limited, self.model.jnt_range[jids, 1], np.pi)

    def _kinematics(self) -> None:
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def solve(self, qpos: np.ndarray, hand: str, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(joint ids (6,), actions (6,) in [-1, 1], residual distance in m) for one env's qpos row."""
        joints = arm_joint_ids(hand)
        qadr, dadr = self.hm.qpos_adr[joints], self.hm.dof_adr[joints]
        body = self.hm.body_ids[spec.BODY_NAMES.index(hand)]
        d = self.data
        d.qpos[:] = qpos
        d.qvel[:] = 0.0
        for _ in range(self.iterations):
            self._kinematics()
            err = target - d.xpos[body]
            if err @ err < 1e-6:
                break
            mujoco.mj_jacBody(self.model, d, self._jacp, None, body)
            jac = self._jacp[:, dadr]
            step = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(3), err)
            step *= min(1.0, self.max_step / (np.abs(step).max() + 1e-12))
            d.qpos[qadr] = np.clip(d.qpos[qadr] + step, self.lo[joints], self.hi[joints])
        self._kinematics()
        residual = float(np.linalg.norm(target - d.xpos[body]))
        # the PD target that holds this posture statically: q + gravity torque / kp
        mujoco.mj_rne(self.model, d, 0, self._bias)
        q_target = d.qpos[qadr] + self._bias[dadr] / self.kp[joints]
        act = (q_target - self.hm.pd_offset[joints]) / self.hm.pd_scale[joints]
        return joints, np.clip(act, -spec.ACTION_CLAMP, spec.ACTION_CLAMP), residual
