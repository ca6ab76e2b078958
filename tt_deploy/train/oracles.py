"""Task oracles: privileged hand-made controllers that label actions for an oracle-distilled task-token start.

Why: on the embedded BFM, PPO moves a reach token only ~10 points above its prior prompt, yet an encoder of
the same shape, DAgger-distilled through the frozen BFM toward the oracle below, gets ~25 points above it
(docs/diagnostics.md): the token can carry the skill, PPO's search does not find it from the null token.
An oracle sees what a deployed skill never does (MuJoCo kinematics, the simulator's exact state) and
proposes, for the state the policy is in, the joint action the frozen BFM should output.
`ttdeploy train --oracle-start` distils it into the fresh encoder (train/distill.py) before PPO; the
oracle is never exported.
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.hashing import portable_path


class ReachArmOracle:
    """reach: the BFM's own action with the right arm's 6 shoulder / elbow hinges moved `blend` of the way to
    the IK solution (sim/arm_ik.py) that puts the hand on the target.

    Measured with `python scripts/reach_oracle_probe.py --blend 1 0.5 0.25` (the prior-only BFM underneath,
    `bfm` goals, 64 evaluation episodes, seed 0): blend 0.5 passes 79.9 % of reach segments with 9.4 % falls,
    blend 1 78.3 % with 40.6 % falls (the IK arm alone unbalances the body), prior-only 43.0 % / 7.8 %.
    `arm_weight` is the weight of those 6 hinges in the distillation loss (the other 63 weigh 1): the arm
    correction is small in joint space, and an unweighted fit keeps the body's joints at the cost of it.
    """

    skill = "reach"

    def __init__(self, blend: float = 0.5, arm_weight: float = 30.0):
        if not (0.0 < blend <= 1.0 and arm_weight > 0):
            raise InputError(f"reach oracle: blend must be in (0, 1] and arm_weight > 0; got {blend}, {arm_weight}")
        from tt_deploy.sim.arm_ik import arm_joint_ids

        self.blend, self.arm_weight = float(blend), float(arm_weight)
        self._ik = None
        self._weight = np.ones(spec.ACTION_DIM, np.float32)  # the same every step: built once
        self._weight[arm_joint_ids("R_Hand")] = self.arm_weight

    def describe(self) -> dict:
        return {"name": "reach-arm-ik", "blend": self.blend, "arm_weight": self.arm_weight}

    def label(self, env, step: dict, base_action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(target actions (N, 69), per-joint loss weights (69,)) for env's current state (`step`: its
        observation), given the frozen BFM's own action `base_action` (N, 69) there."""
        if self._ik is None:  # first call: check the simulator once and build the solver
            from tt_deploy.sim.arm_ik import ArmIK
            from tt_deploy.sim.base import MujocoKinematics

            if not isinstance(env.sim, MujocoKinematics):
                raise InputError(f"the reach oracle needs MuJoCo kinematics; {type(env.sim).__name__} has none")
            self._ik = ArmIK(env.sim.hm)
        target = np.array(base_action, dtype=np.float64)
        qpos = env.sim.raw_qpos(np.arange(env.num_envs))
        for i in range(env.num_envs):
            joints, arm, _ = self._ik.solve(qpos[i], "R_Hand", env.task.target[i])
            target[i, joints] = self.blend * arm + (1.0 - self.blend) * target[i, joints]
        return target.astype(np.float32), self._weight.copy()


class PolicyOracle:
    """Another finished run's deterministic action, e.g. a finetuned BFM's: can a task token carry what
    finetuning the whole BFM found? Where no hand-made oracle beats the prior (direction: the walking
    controller passes the stride rule no more often than the prior, docs/diagnostics.md), the finetuned
    BFM does (46 % vs 26 % on the stride rule), so it is the oracle to distil. Every joint weighs 1."""

    def __init__(self, run, *, skill: str, bfm_path=None):
        from tt_deploy.train.run_policy import load_run_policy

        cfg, self.policy, _, self.checkpoint = load_run_policy(run, bfm_path=bfm_path, tag="best")
        if cfg.skill != skill:
            raise InputError(f"oracle policy {run} was trained for {cfg.skill!r}, not {skill!r}")
        self.run, self.skill, self.method = str(run), skill, cfg.method
        self._weight = np.ones(spec.ACTION_DIM, np.float32)

    def describe(self) -> dict:
        return {"name": "policy", "run": portable_path(self.run), "method": self.method,
                "checkpoint": self.checkpoint}

    def label(self, env, step: dict, base_action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The oracle run's own action in this state (`base_action` is not needed)."""
        import torch

        from tt_deploy.rl.runner import to_torch

        with torch.no_grad():
            target = self.policy.act_deterministic(to_torch(step)).numpy()
        return target.astype(np.float32), self._weight.copy()


ORACLES = {"reach": ReachArmOracle}


def make_oracle(skill: str, policy_run=None, *, bfm_path=None):
    """`skill`'s hand-made oracle, or the policy of the run `policy_run`; a typed error names the skills
    that have a hand-made one."""
    if policy_run is not None:
        return PolicyOracle(policy_run, skill=skill, bfm_path=bfm_path)
    if skill not in ORACLES:
        raise UnknownNameError("task oracle (for --oracle-start; or give --oracle-policy RUN)", skill, ORACLES)
    return ORACLES[skill]()
