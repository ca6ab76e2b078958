"""Per-env goal streams: an env's goals do not depend on when other envs reset."""

import numpy as np

from tt_deploy.tasks.random import EnvRandom, rows


def test_rows_draw_from_each_envs_own_stream():
    a, b = EnvRandom(4, seed=7), EnvRandom(4, seed=7)
    together = a.for_envs([1, 3]).uniform(0, 1, 2)
    alone = b.for_envs([3]).uniform(0, 1, 1)  # env 3 drawn alone gives what it gave in a pair
    assert together[1] == alone[0]
    shaped = EnvRandom(3, seed=1).for_envs([0, 2]).uniform(-1, 1, (2, 3))
    assert shaped.shape == (2, 3)
    plain = np.random.default_rng(0)
    assert rows(plain, [0, 1]) is plain


def test_an_envs_goals_ignore_other_envs_resets():
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.reach import ReachTask

    def make():
        task = ReachTask(3, change_steps=(2, 4))
        return TaskEnv(MujocoSimulator(3, nthread=1), task, seed=5)

    a, b = make(), make()
    a.reset()
    b.reset()
    zero = np.zeros((3, 69))
    targets_a, targets_b = [], []
    for t in range(12):
        if t == 4:
            a._reset_envs(np.array([0]))  # env 0 alone restarts its episode in run a
        a.step(zero)
        b.step(zero)
        targets_a.append(a.task.target[1:].copy())
        targets_b.append(b.task.target[1:].copy())
    np.testing.assert_array_equal(np.array(targets_a), np.array(targets_b))
