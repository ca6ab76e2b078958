"""Closed-loop sim2sim verification of a deployed skill (DESIGN.md 6.2-6.3).

`run_sim2sim(bundle_dir, skill, ...)` runs the PyTorch reference and the `SkillRuntime` from
identical seeds over a perturbation grid, compares them (metrics.py), re-runs the reference under
a second physics configuration (cross-sim gap: another integrator, or another engine, MuJoCo Warp), writes a report (report.py) and stores the
verdict in the skill's skill.json. Jobs run on a pluggable executor (executor.py). engines.py measures
the two engines open loop, with no policy between them.
"""

from tt_deploy.sim2sim.harness import (
    ATOL,
    CROSS_CONFIGS,
    CROSS_PHYSICS,
    MJWARP_PHYSICS,
    TRAINING_PHYSICS,
    PhysicsConfig,
    Sim2SimResult,
    run_sim2sim,
)

__all__ = ["run_sim2sim", "Sim2SimResult", "PhysicsConfig", "ATOL", "CROSS_CONFIGS", "CROSS_PHYSICS", "MJWARP_PHYSICS",
           "TRAINING_PHYSICS", "engines"]
