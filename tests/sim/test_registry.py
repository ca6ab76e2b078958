"""Backend registry and the Isaac Gym backend's import contract (Isaac Gym is not installed here)."""

import ast
import importlib.util
from pathlib import Path

import pytest

import tt_deploy.sim.isaacgym_backend as igb
from tt_deploy.errors import MissingExtraError, UnknownNameError
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.sim.registry import make_simulator


def test_make_mujoco_and_unknown():
    assert isinstance(make_simulator("mujoco", num_envs=1), MujocoSimulator)
    with pytest.raises(UnknownNameError, match="unknown simulator backend 'bullet'; known: isaacgym, mjwarp, mujoco"):
        make_simulator("bullet", num_envs=1)


def test_isaacgym_backend_parses_as_py38():
    src = Path(igb.__file__).read_text()
    ast.parse(src, feature_version=(3, 8))


@pytest.mark.skipif(importlib.util.find_spec("isaacgym") is not None, reason="isaacgym installed")
def test_isaacgym_missing_extra():
    with pytest.raises(MissingExtraError, match="pip install -e isaacgym/python"):
        make_simulator("isaacgym", num_envs=2)


def test_mjwarp_missing_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "mujoco_warp", None)  # as if the extra were not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'tt-deploy\[mjwarp\]'"):
        make_simulator("mjwarp", num_envs=2)
