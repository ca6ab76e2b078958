"""Fixtures of the C++ runtime tests: the cmake build of cpp/ and one exported bundle, each made once per
pytest run (shared by pytest-xdist workers through a lock in the run's common temp dir)."""

from __future__ import annotations

import os

import cpp_build
import pytest
from cpp_build import locked

PARITY_SKILLS = ("reach", "steering")  # fresh seeded encoders; two visible-group sets with strike below
PRIOR_SKILL = "strike"  # a shipped trained skill: its prior prompt visible, so its graph keeps that group


def _shared_dir(tmp_path_factory):
    """The temp dir every xdist worker of this run sees (the session's own one without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def cpp_build_dir():
    reason = cpp_build.missing_toolchain()
    if reason is not None:
        pytest.skip(f"cannot build cpp/: {reason}")
    build_dir, times = cpp_build.build()
    print(f"cpp build: configure {times['configure_s']:.1f} s, build {times['build_s']:.1f} s ({build_dir})")
    return build_dir


@pytest.fixture(scope="session")
def cpp_lib(cpp_build_dir):
    from cpp_runtime import load

    return load(cpp_build.library(cpp_build_dir))


@pytest.fixture(scope="session")
def cpp_bundle(tmp_path_factory):
    """Three skills exported with the project's API: two untrained ones and the shipped trained `strike`."""
    shared = _shared_dir(tmp_path_factory)
    bundle, done = shared / "cpp_bundle", shared / "cpp_bundle.done"
    with locked(shared / "cpp_bundle.lock"):
        if not done.exists():
            from tt_deploy.demo import SHIPPED_RUNS
            from tt_deploy.export.bundle import export_skill, export_skills

            export_skills(list(PARITY_SKILLS), bundle_dir=bundle)
            export_skill(PRIOR_SKILL, bundle_dir=bundle, run_dir=SHIPPED_RUNS / PRIOR_SKILL)
            done.touch()
    return bundle
