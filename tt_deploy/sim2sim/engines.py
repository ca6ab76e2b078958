"""Open-loop equivalence of two physics engines: MuJoCo C against MuJoCo Warp from identical states.

Both engines start from the same state and receive the same actions, with no policy in the loop, so
every difference is the engines' (float32 vs float64, solver and contact details). Two action streams:
zero actions (the humanoid holds its rest pose and settles on the ground) and actions recorded from the
shipped `direction` skill walking closed loop in MuJoCo C. A third row replays the same stream in
MuJoCo C from a start 1 um higher: the yardstick of how fast nearby states part in this system at all,
since a falling humanoid is chaotic and no two engines stay together forever.
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec

YARDSTICK_LIFT = 1e-6  # m: the root-height nudge of the MuJoCo C self-comparison


def record_walk(envs: int, steps: int, seed: int = 0) -> tuple[dict, np.ndarray]:
    """(start state, (steps, envs, 69) actions) of the shipped direction skill walking in MuJoCo C, prior fed."""
    import torch

    from tt_deploy.demo import SHIPPED_RUNS
    from tt_deploy.rl.runner import to_torch
    from tt_deploy.train.run_policy import load_run_policy
    from tt_deploy.train.task_token import _make_env

    cfg, policy, goal_kwargs, _ = load_run_policy(SHIPPED_RUNS / "direction")
    env = _make_env(cfg, envs, seed=seed, goal_kwargs=goal_kwargs)
    out = env.reset()
    start = state_of(env.sim)
    actions = np.zeros((steps, envs, spec.NUM_DOF))
    with torch.no_grad():
        for t in range(steps):
            actions[t] = policy.act_deterministic(to_torch(out)).numpy()
            out = env.step(actions[t])
    return start, actions


def state_of(sim) -> dict:
    """A simulator's state as reset() keywords (every env)."""
    body = sim.body_state()
    joint_pos, joint_vel = sim.joint_state()
    return {"root_pos": body.pos[:, 0], "root_quat": body.quat[:, 0], "root_lin_vel": body.lin_vel[:, 0],
            "root_ang_vel": body.ang_vel[:, 0], "joint_pos": joint_pos, "joint_vel": joint_vel}


def _replay(sim, start: dict, actions: np.ndarray, horizons: tuple[int, ...]) -> dict[int, dict]:
    sim.reset(**start)
    snaps = {}
    for t in range(1, actions.shape[0] + 1):
        sim.step(actions[t - 1])
        if t in horizons:
            snaps[t] = {"pos": sim.body_state().pos.copy(), "contacts": sim.contact_counts().copy()}
    return snaps


def _row(stream: str, pair: str, t: int, a: dict, b: dict) -> dict:
    root = np.linalg.norm(a["pos"][:, 0] - b["pos"][:, 0], axis=-1)
    body = np.linalg.norm(a["pos"] - b["pos"], axis=-1).max(axis=1)
    return {"actions": stream, "pair": pair, "seconds": round(t * spec.CONTROL_DT, 3), "steps": t,
            "root_err_median_m": float(np.median(root)), "root_err_max_m": float(root.max()),
            "body_err_max_m": float(body.max()), "contacts_a": float(a["contacts"].mean()),
            "contacts_b": float(b["contacts"].mean())}  # fmt: skip


def open_loop_equivalence(envs: int = 8, seconds=(1.0, 3.0), seed: int = 0, device: str = "cpu",
                          progress=None) -> list[dict]:  # fmt: skip
    """Rows {actions, pair, seconds, root/body position error (m), mean contacts per env of each side}.

    Pairs: "mujoco vs mjwarp" and the yardstick "mujoco vs mujoco +1um"; streams: zero and walk actions.
    """
    from tt_deploy.sim.mjwarp_backend import MjWarpSimulator
    from tt_deploy.sim.mujoco_backend import MujocoSimulator

    horizons = tuple(int(round(s / spec.CONTROL_DT)) for s in seconds)
    steps = max(horizons)
    walk_start, walk = record_walk(envs, steps, seed)
    zero_start = state_of(MujocoSimulator(envs, nthread=1))
    c, w = MujocoSimulator(envs, nthread=1), MjWarpSimulator(envs, device=device)
    rows = []
    for stream, start, actions in (("zero", zero_start, np.zeros((steps, envs, spec.NUM_DOF))),
                                   ("walk", walk_start, walk)):  # fmt: skip
        ref = _replay(c, start, actions, horizons)
        warp = _replay(w, start, actions, horizons)
        lifted = dict(start, root_pos=start["root_pos"] + [0.0, 0.0, YARDSTICK_LIFT])
        nudged = _replay(c, lifted, actions, horizons)
        for t in horizons:
            rows.append(_row(stream, "mujoco vs mjwarp", t, ref[t], warp[t]))
            rows.append(_row(stream, "mujoco vs mujoco +1um", t, ref[t], nudged[t]))
        if progress is not None:
            progress(stream)
    return rows
