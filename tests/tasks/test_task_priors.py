"""Every task's prior prompt is the one tt_deploy.obs.priors rebuilds from its skill.json record."""

import numpy as np
import pytest
from task_helpers import FakeSim, make_state

from tt_deploy.obs.priors import PRIORS, make_prior
from tt_deploy.tasks.registry import make_task


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_every_task_rebuilds_its_prior_from_the_recorded_description(name):
    """What skill.json records (describe) rebuilds a prior that prompts exactly like the task's own."""
    n = 4
    state = make_state(n, root=(0.5, -0.5, 0.94), yaw=0.3)
    sim = FakeSim(state)
    task = make_task(name, n, prior=True)
    task.reset(np.arange(n), sim, np.random.default_rng(0))
    desc = task.prior_prompt.describe()
    assert desc["name"] == name and set(desc["goal_keys"]) == set(task.prior_goal(state, sim))
    rebuilt = make_prior(desc["name"], n, **desc["params"])
    rebuilt.reset(np.arange(n), state)
    a, b = task.prior_targets(state, sim), rebuilt(state, task.prior_goal(state, sim))
    for field in vars(a):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
