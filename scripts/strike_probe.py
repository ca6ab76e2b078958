"""Where does strike fail on the embedded BFM: the approach, the touch, or the topple?

On the training's own evaluation episodes (`bfm` goals, seed 10000 + seed, the prior prompt fed) this runs
the prior-only BFM and each given run's policy (its last checkpoint where present, else best: the same
rule as `ttdeploy robustness`) and books, for the first episode of every env, the stages of a strike:
the pelvis within the prior's strike radius of the pillar, the right arm (the striking set) touching
it, the pillar tilted (its up axis below 0.95, i.e. > 18 deg), toppled (< 0.2, the success rule) at any
step, and toppled at the episode's end (success); then how the episode ended (fall, illegal contact,
timeout).

    python scripts/strike_probe.py [--run results/bfm/task-token/seed0/strike ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from probe_setup import probe_setup

from tt_deploy import spec
from tt_deploy.obs.priors import make_prior
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import CONTROL_DT
from tt_deploy.tasks.strike import OBJECT, STRIKE_BODY_MASK, TOPPLED_UP_Z, target_up_z
from tt_deploy.train.task_token import _make_env

TILTED_UP_Z = 0.95
R_HAND = spec.BODY_NAMES.index("R_Hand")


@torch.no_grad()
def probe(env, act) -> dict:
    n, task, sim = env.num_envs, env.task, env.sim
    step = env.reset()
    radius = task.prior_prompt.params["strike_radius"]
    start = sim.body_state().pos[:, 0, :2].copy()
    tar0 = sim.object_state(OBJECT).pos[:, :2].copy()
    d0 = np.linalg.norm(tar0 - start, axis=-1)
    alive = np.ones(n, bool)
    d_min, hand_min = d0.copy(), np.full(n, np.inf)
    t_reach = np.full(n, np.nan)
    touched, touched_other = np.zeros(n, bool), np.zeros(n, bool)
    up_min = np.ones(n)
    success, fell, illegal = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    for t in range(env.max_steps + 1):
        pos = sim.body_state().pos
        tar = sim.object_state(OBJECT)
        d = np.linalg.norm(tar.pos[:, :2] - pos[:, 0, :2], axis=-1)
        t_reach = np.where(alive & np.isnan(t_reach) & (d <= radius), t * CONTROL_DT, t_reach)
        d_min = np.where(alive, np.minimum(d_min, d), d_min)
        hand_min = np.where(alive, np.minimum(hand_min, np.linalg.norm(tar.pos - pos[:, R_HAND], axis=-1)), hand_min)
        contacts = sim.object_contacts(OBJECT)
        touched |= alive & (contacts & STRIKE_BODY_MASK).any(-1)
        touched_other |= alive & (contacts & ~STRIKE_BODY_MASK).any(-1)
        up_min = np.where(alive, np.minimum(up_min, target_up_z(tar.quat)), up_min)
        step = env.step(act(step))
        ep = step.info["episode"]
        first = alive[ep["env_ids"]]
        ids = ep["env_ids"][first]
        success[ids], fell[ids] = ep["success"][first], ep["fell"][first]
        illegal[ids] = step.info["task_terminated"][ids]
        alive[ids] = False
        if not alive.any():
            break
    pct = lambda m: round(100.0 * float(np.mean(m)), 1)  # noqa: E731
    reached = ~np.isnan(t_reach)
    return {"episodes": n, "start_distance_m_median": float(np.median(d0)),
            "reached_strike_radius_pct": pct(reached), "reach_time_s_median": float(np.nanmedian(t_reach)) if reached.any() else None,
            "closest_pelvis_m_median": float(np.median(d_min)),
            "closest_hand_to_centre_m_median": float(np.median(hand_min)),
            "strike_arm_touched_pct": pct(touched), "other_body_touched_pct": pct(touched_other),
            "tilted_pct": pct(up_min < TILTED_UP_Z), "toppled_ever_pct": pct(up_min < TOPPLED_UP_Z),
            "success_pct": pct(success), "falls_pct": pct(fell), "illegal_contact_pct": pct(illegal),
            "reached_but_not_touched_pct": pct(reached & ~touched),
            "touched_but_not_tilted_pct": pct(touched & (up_min >= TILTED_UP_Z))}


def arm_ik_oracle(env, base, blend: float, depth: float):
    """The prior-only action; in the prior's strike phase the right arm's 6 hinges moved `blend` of the way to
    the IK posture (sim/arm_ik.py) that puts the hand `depth` m past the pillar's centre: a push."""
    from tt_deploy.sim.arm_ik import ArmIK

    ik = ArmIK(env.sim.hm)

    def act(step):
        a = base(step)
        striking = np.flatnonzero(env.task.prior_prompt.phase == 1)
        if len(striking):
            qpos = env.sim.raw_qpos(striking)
            tar = env.sim.object_state(OBJECT).pos[striking]
            pelvis = env.sim.body_state().pos[striking, 0]
            d = tar[:, :2] - pelvis[:, :2]
            d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
            point = tar + depth * np.concatenate([d, np.zeros((len(d), 1))], axis=-1)
            for j, i in enumerate(striking):
                joints, arm, _ = ik.solve(qpos[j], "R_Hand", point[j])
                a[i, joints] = blend * arm + (1.0 - blend) * a[i, joints]
        return a

    return act


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs="*", default=[], help="strike training run dirs")
    ap.add_argument("--prior", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="also run prior-only with these strike prior parameters (obs/priors.py StrikePrior), "
                         "e.g. --prior strike_radius=1.2 --prior strike_radius=0.55,strike_lead_s=0.2")
    ap.add_argument("--arm-ik", action="append", default=[], metavar="BLEND,DEPTH",
                    help="also run an arm-IK oracle: prior-only, and once the prior switched to the hand, the right "
                         "arm moved BLEND of the way to the IK solution for a point DEPTH m past the pillar's centre "
                         "(along pelvis -> pillar)")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    _, cfg, goal_kwargs, prior_only = probe_setup("strike", args.episodes)
    policies = {"prior-only": (prior_only, {})}
    for spec_ in args.prior:
        params = {k: float(v) for k, v in (kv.split("=") for kv in spec_.split(","))}
        policies[f"prior-only ({spec_})"] = (prior_only, params)
    for run in args.run:
        from tt_deploy.train.run_policy import load_run_policy

        _, policy, _, used = load_run_policy(Path(run), tag="last")
        policies[f"{run} ({Path(used).name})"] = (lambda step, p=policy: p.act_deterministic(to_torch(step)).numpy(), {})
    for spec_ in args.arm_ik:
        blend, depth = (float(x) for x in spec_.split(","))
        policies[f"arm-IK oracle (blend {blend:g}, {depth:g} m past the centre)"] = (("arm-ik", blend, depth), {})
    out = {}
    for name, (act, params) in policies.items():
        env = _make_env(cfg, args.episodes, seed=10_000 + args.seed, goal_kwargs=goal_kwargs)
        if params:
            env.task.prior_prompt = make_prior("strike", args.episodes, **params)
        if isinstance(act, tuple):
            act = arm_ik_oracle(env, prior_only, *act[1:])
        out[name] = probe(env, act)
        print(name, json.dumps(out[name]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
