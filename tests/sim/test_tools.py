"""sim_info / sim_bench library functions (the CLI's `sim info` / `sim bench`)."""

import pytest

from tt_deploy import spec
from tt_deploy.sim.tools import sim_bench, sim_info


def test_sim_info_facts():
    info = sim_info()
    assert info["num_bodies"] == 24 and info["num_dof"] == 69 and info["nu"] == 69
    assert info["integrator"] == "implicitfast" and info["substeps"] == 4
    assert info["timestep"] * info["substeps"] == pytest.approx(spec.CONTROL_DT)
    assert sum(info["body_masses"].values()) == pytest.approx(info["total_mass"])
    assert info["pd_gains"]["L_Knee_y"] == {"kp": 800.0, "kd": 80.0}


def test_sim_bench_tiny():
    rows = sim_bench(num_envs=(4,), threads=(1,), seconds=0.1)
    assert len(rows) == 1 and rows[0]["num_envs"] == 4
    assert rows[0]["physics"] > 100.0 and rows[0]["physics_state"] > 100.0
    assert rows[0]["physics_state_obs"] is None or rows[0]["physics_state_obs"] > 100.0
    assert rows[0]["unstable_envs"] == 0
