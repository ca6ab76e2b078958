"""An inverse-kinematics teacher for hand reaching during BFM pretraining.

Why it exists: with the small fixed exploration std that lets a BFM learn to stand on 2 cores,
PPO alone did not discover reaching in 3.2 M steps (median closest approach 0.71 m: the arms
stayed where they were). Reaching is mostly kinematics. Damped least-squares IK on the prompted
arm's shoulder and elbow hinges (tt_deploy/sim/arm_ik.py), plus the PD offset that holds the arm against
gravity, gives the actions that put the hand on the target; a behaviour-cloning term (teacher_env.ClonePPO) pulls
the BFM's arm actions toward them while PPO keeps every other joint (balance) and fine-tunes
the arm under the reach reward. Nothing of the teacher is exported: it only shapes pretraining.
"""

from __future__ import annotations

from tt_deploy.sim.arm_ik import ARM_BODIES, ArmIK, arm_joint_ids

__all__ = ["ARM_BODIES", "ArmIK", "arm_joint_ids"]
