"""How far can anything that only moves the right arm lift reach success above prior-only?

Evaluates, on the training's own evaluation episodes (`bfm` goals, the reference protocol, seed
10000 + seed), the prior-only BFM and an oracle: every control step the prior-only BFM's action
with the right arm's 6 shoulder / elbow hinges replaced by the IK teacher's (pretrain/reach_teacher.py:
the hand exactly on the target wherever the arm alone gets there). A task token that only refines the
arm cannot beat the oracle by much; the gap between the two is what an arm-only token can add.

    python scripts/reach_oracle_probe.py [--episodes 64] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from probe_setup import probe_setup

from tt_deploy.sim.arm_ik import ArmIK
from tt_deploy.train.task_token import _make_env, evaluate_policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blend", type=float, nargs="+", default=[1.0],
                    help="oracle arm = blend x IK + (1 - blend) x the BFM's arm (1 = the IK arm alone)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    _, cfg, goal_kwargs, prior_only = probe_setup("reach", args.episodes)

    out = {}
    for name in ["prior-only"] + [f"arm-IK x{b:g}" for b in args.blend]:
        env = _make_env(cfg, args.episodes, seed=10_000 + args.seed, goal_kwargs=goal_kwargs)
        ik = ArmIK(env.sim.hm)
        residuals = []

        blend = float(name.split("x")[-1]) if name != "prior-only" else 0.0

        def oracle(step, env=env, ik=ik, residuals=residuals, blend=blend):
            act = prior_only(step)
            qpos = env.sim.raw_qpos(np.arange(env.num_envs))
            for i in range(env.num_envs):
                joints, arm, res = ik.solve(qpos[i], "R_Hand", env.task.target[i])
                act[i, joints] = blend * arm + (1.0 - blend) * act[i, joints]
                residuals.append(res)
            return act

        res = evaluate_policy(env, prior_only if name == "prior-only" else oracle)
        if residuals:
            res["ik_residual_median_m"] = float(np.median(residuals))
            res["ik_residual_under_0.2m"] = float(np.mean(np.asarray(residuals) < 0.2))
        out[name] = res
        print(f"{name:14s} success {100 * res['success_rate']:5.1f} % of {res['segments']} segments "
              f"({100 * res['ci_low']:.1f}-{100 * res['ci_high']:.1f}), falls {100 * res['fall_rate']:.1f} %, "
              f"return {res['return']:.0f}" + (f", IK residual median {res['ik_residual_median_m']:.3f} m, "
                                               f"<0.2 m {100 * res['ik_residual_under_0.2m']:.0f} %" if residuals else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
