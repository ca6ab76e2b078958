"""The simulator contract a bundle carries (issue #36 item 2): the humanoid MJCF itself (hashed, verified when asked
for), every MuJoCo option of the training model, the scene objects a bundled skill needs and the fall rule - each
read from the code that trains the skills, so these tests compare with that code, never with typed-in numbers."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil

import mujoco
import numpy as np
import pytest
from test_shipped_files import MACHINE_PATH

from tt_deploy import spec
from tt_deploy.errors import BundleError
from tt_deploy.export import sim_contract
from tt_deploy.export.bundle import export_skill, export_skills, record_results
from tt_deploy.hashing import sha256_file
from tt_deploy.obs.state import BodyState
from tt_deploy.runtime import SkillRuntime, mjcf_path, read_mjcf
from tt_deploy.runtime import manifest as mf
from tt_deploy.sim import humanoid_model
from tt_deploy.sim.humanoid_model import DEFAULT_MJCF, build_model
from tt_deploy.sim.mujoco_backend import MujocoSimulator
from tt_deploy.tasks import registry, strike
from tt_deploy.tasks.env import TaskEnv


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """reach + strike (fresh encoders) on the embedded BFM: a package file, so no record names a machine path."""
    return export_skills(["reach", "strike"], bundle_dir=tmp_path_factory.mktemp("contract") / "deploy")


def _copy(bundle, tmp_path):
    return shutil.copytree(bundle, tmp_path / "deploy")


def test_the_bundle_carries_the_package_mjcf_byte_for_byte_and_refuses_an_edited_one(bundle, tmp_path):
    man = mf.read_manifest(bundle)
    sim = man.simulator
    assert sim.mjcf == f"{mf.SIM_DIR}/{DEFAULT_MJCF.name}" and sim.mjcf_sha256 == sha256_file(DEFAULT_MJCF)
    assert (mf.content_dir(bundle, man) / sim.mjcf).read_bytes() == DEFAULT_MJCF.read_bytes()
    data = read_mjcf(bundle)
    assert data == DEFAULT_MJCF.read_bytes() and mjcf_path(bundle) == mf.content_dir(bundle) / sim.mjcf
    assert mujoco.MjSpec.from_string(data.decode()).compile().nbody > spec.NUM_BODIES  # loads with no other file
    assert DEFAULT_MJCF.read_text() not in (bundle / mf.MANIFEST_FILE).read_text()  # named, not embedded

    edited = _copy(bundle, tmp_path)
    path = mf.content_dir(edited) / sim.mjcf
    path.write_bytes(path.read_bytes().replace(b'mass="9"', b'mass="90"', 1))
    for accessor in (read_mjcf, mjcf_path):
        with pytest.raises(BundleError, match="does not match the manifest"):
            accessor(edited)
    path.unlink()
    with pytest.raises(BundleError, match="bundle file missing"):
        read_mjcf(edited)


def _mujoco_words(name: str, value):
    """An MjOption value in the bundle's words, converted here without the exporter's helpers."""
    enums = {"integrator": mujoco.mjtIntegrator, "cone": mujoco.mjtCone, "jacobian": mujoco.mjtJacobian,
             "solver": mujoco.mjtSolver}  # fmt: skip
    if name in enums:
        return enums[name](int(value)).name.split("_", 1)[1].lower()
    if name in ("disableflags", "enableflags", "disableactuator"):
        return () if int(value) == 0 else pytest.fail(f"the training model sets {name}; extend this test")
    return tuple(float(v) for v in value) if isinstance(value, np.ndarray) else value


def test_physics_is_every_mujoco_option_of_the_training_model(bundle):
    physics = mf.read_manifest(bundle).simulator.physics
    hm = build_model()
    options = {n for n in dir(hm.model.opt) if not n.startswith("_")}
    fields = {f.name for f in dataclasses.fields(mf.PhysicsSpec)}
    assert options == fields - {"substeps"}, "a MuJoCo option is missing from PhysicsSpec (or one no longer exists)"
    for name in sorted(options):
        assert getattr(physics, name) == _mujoco_words(name, getattr(hm.model.opt, name)), name
    assert physics.substeps == hm.substeps and physics.timestep * physics.substeps == pytest.approx(spec.CONTROL_DT)
    act = mf.read_manifest(bundle).actuation  # one model, one value: the older actuation fields agree
    assert (act.physics_dt, act.integrator, act.substeps) == (physics.timestep, physics.integrator, physics.substeps)


def test_physics_follows_the_model_it_is_read_from(monkeypatch):
    """Read, not typed: a training model built with other options gives other values."""
    monkeypatch.setattr(sim_contract, "build_model", lambda **kw: build_model(timestep=1 / 240, integrator="rk4", **kw))
    physics = sim_contract.simulator_spec(["reach"])[0].physics
    assert (physics.timestep, physics.substeps, physics.integrator) == (1 / 240, 8, "rk4")


def test_a_model_rebuilt_from_the_bundle_alone_has_the_training_options(bundle):
    """The verified MJCF plus `physics` (MuJoCo's names, the enum words turned back into MuJoCo's enums) compile to
    a model whose options are the training model's, every one."""
    physics = mf.read_manifest(bundle).simulator.physics
    prefixes = {"integrator": ("mjtIntegrator", "mjINT"), "cone": ("mjtCone", "mjCONE"),
                "jacobian": ("mjtJacobian", "mjJAC"), "solver": ("mjtSolver", "mjSOL")}  # fmt: skip
    mj = mujoco.MjSpec.from_string(read_mjcf(bundle).decode())
    for f in dataclasses.fields(mf.PhysicsSpec):
        value = getattr(physics, f.name)
        if f.name == "substeps":
            continue
        if f.name in prefixes:
            enum, prefix = prefixes[f.name]
            value = getattr(getattr(mujoco, enum), f"{prefix}_{value.upper()}")
        elif f.name in ("disableflags", "enableflags", "disableactuator"):
            assert value == ()
            value = 0
        setattr(mj.option, f.name, value)
    rebuilt, trained = mj.compile().opt, build_model().model.opt
    for name in (f.name for f in dataclasses.fields(mf.PhysicsSpec) if f.name != "substeps"):
        assert np.array_equal(getattr(rebuilt, name), getattr(trained, name)), name


def test_the_fall_rule_is_the_one_task_env_applies(bundle):
    rule = mf.read_manifest(bundle).fall_rule
    env = TaskEnv(MujocoSimulator(1, nthread=1), registry.make_task("reach", 1))
    from tt_deploy.tasks.base import NON_FOOT

    assert rule.non_foot_bodies == tuple(np.array(spec.BODY_NAMES)[NON_FOOT])
    assert rule.contact_force_threshold == env.contact_threshold and rule.grace_steps == env.fall_grace_steps
    assert rule.termination_heights == {b: env.termination_heights[spec.BODY_NAMES.index(b)] for b in rule.non_foot_bodies}
    assert rule.voids_success == {"reach": True, "strike": strike.StrikeTask.fall_voids_success}

    # the rule as data decides every case as TaskEnv.fallen does
    rng, n = np.random.default_rng(0), 256
    forces = rng.choice([0.0, 0.5, 1.0, 1.5, 50.0], size=(n, spec.NUM_BODIES), p=[0.6, 0.1, 0.1, 0.1, 0.1])
    pos = np.zeros((n, spec.NUM_BODIES, 3))
    pos[..., 2] = rng.choice([0.05, 0.15, 0.2, 0.29, 0.31, 1.0], size=(n, spec.NUM_BODIES), p=[.05, .05, .1, .1, .1, .6])
    quat = np.zeros((n, spec.NUM_BODIES, 4))
    quat[..., 3] = 1.0
    steps = rng.integers(0, 5, n)
    env.sim.contact_forces = lambda: forces
    env.steps = steps
    fallen = env.fallen(BodyState(pos, quat, np.zeros_like(pos), np.zeros_like(pos)))
    ids = [spec.BODY_NAMES.index(b) for b in rule.non_foot_bodies]
    heights = np.array([rule.termination_heights[b] for b in rule.non_foot_bodies])
    by_rule = ((steps > rule.grace_steps) & (forces[:, ids] > rule.contact_force_threshold).any(-1)
               & (pos[:, ids, 2] < heights).any(-1))  # fmt: skip
    assert 10 < fallen.sum() < n - 10 and np.array_equal(fallen, by_rule)


def test_scene_objects_are_those_of_the_bundled_skills_as_the_simulator_builds_them(bundle, tmp_path):
    (pillar,) = mf.read_manifest(bundle).simulator.objects
    m = build_model(objects=(pillar.name,)).model
    g, b = m.geom(pillar.name).id, m.body(pillar.name).id
    assert pillar.name == strike.OBJECT and pillar.skills == ("strike",) and pillar.geom == "box"
    assert pillar.size == humanoid_model.STRIKE_TARGET_HALF_SIZE and pillar.mass == humanoid_model.STRIKE_TARGET_MASS
    assert pillar.friction == tuple(m.geom_friction[g]) and pillar.inertia == tuple(m.body_inertia[b])
    assert (pillar.condim, pillar.solref, pillar.solimp) == (m.geom_condim[g], tuple(m.geom_solref[g]),
                                                              tuple(m.geom_solimp[g]))  # fmt: skip
    defaults = {k: v.default for k, v in inspect.signature(strike.StrikeTask).parameters.items()}
    assert pillar.placement_params == {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()
                                       if k in pillar.placement_params}  # fmt: skip
    assert all(k in pillar.placement for k in pillar.placement_params)
    params = pillar.contact_params
    assert set(params["striking_bodies"]) == set(spec.STRIKE_BODIES) and set(params["foot_bodies"]) == set(spec.FOOT_BODIES)
    assert params["contact_force_threshold"] == strike.CONTACT_FORCE
    assert all(k in pillar.contact for k in params)
    # a bundle without the strike skill needs no object
    assert sim_contract.simulator_spec(["reach", "direction"])[0].objects == ()


def test_an_older_manifest_without_the_simulator_contract_still_loads(bundle, tmp_path):
    old = _copy(bundle, tmp_path)
    data = json.loads((old / mf.MANIFEST_FILE).read_text())
    del data["simulator"], data["fall_rule"]
    (old / mf.MANIFEST_FILE).write_text(json.dumps(data))
    man = mf.read_manifest(old)
    assert man.simulator is None and man.fall_rule is None
    with pytest.raises(BundleError, match="names no simulator MJCF"):
        read_mjcf(old)
    with SkillRuntime(old, backend="ort-cpu", skills=["reach"]) as rt:
        assert rt.active == "reach"
    new = mf.read_manifest(bundle)  # and the current one round-trips through JSON unchanged
    assert mf.from_dict(mf.BundleManifest, json.loads(json.dumps(mf.to_dict(new)))) == new


def test_the_mjcf_is_carried_into_later_versions_and_a_changed_one_is_refused(bundle, tmp_path, monkeypatch):
    b = _copy(bundle, tmp_path)
    v1 = mf.read_manifest(b)
    first = mf.content_dir(b, v1) / v1.simulator.mjcf
    export_skill("direction", bundle_dir=b)  # keeps reach and strike: the MJCF is carried over, hard-linked
    v2 = mf.read_manifest(b)
    second = mf.content_dir(b, v2) / v2.simulator.mjcf
    assert v2.content == "v2" and v2.simulator.mjcf_sha256 == v1.simulator.mjcf_sha256
    assert second.stat().st_ino == first.stat().st_ino
    assert v2.fall_rule.voids_success.keys() == {"direction", "reach", "strike"}
    from tt_deploy.runtime.verdicts import measured_evidence

    ev = measured_evidence(b, "reach")
    record_results(b, {"reach": {"parity": {"max_abs": 0.0, "evidence": ev}}}, measured=ev)
    v3 = mf.read_manifest(b)
    assert v3.simulator == v2.simulator and read_mjcf(b) == DEFAULT_MJCF.read_bytes()

    other = tmp_path / "other.xml"  # the package's MJCF, changed after the bundle's skills were trained
    other.write_bytes(DEFAULT_MJCF.read_bytes().replace(b'mass="9"', b'mass="10"', 1))
    monkeypatch.setattr(sim_contract, "build_model", lambda **kw: build_model(other, **kw))
    with pytest.raises(BundleError, match=r"trained with another MJCF"):
        export_skill("steering", bundle_dir=b)
    assert mf.read_manifest(b) == v3
    export_skills(["direction", "reach", "strike"], bundle_dir=b)  # every skill re-exported: the new file is taken
    v4 = mf.read_manifest(b)
    assert v4.simulator.mjcf_sha256 == sha256_file(other) and read_mjcf(b) == other.read_bytes()


def test_no_bundle_file_names_a_machine_path(bundle):
    """Every file of the bundle, the MJCF and the graphs included: no checkout, tmp or home path (the scan of
    tests/test_shipped_files.py, plus this machine's own directories)."""
    from pathlib import Path

    import tt_deploy

    forbidden = {str(Path(tt_deploy.__file__).resolve().parents[1]), str(bundle.parent), "/root", str(Path.home())}
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    assert any(p.name == DEFAULT_MJCF.name for p in files) and any(p.suffix == ".onnx" for p in files)
    leaks = {}
    for p in files:
        text = p.read_bytes().decode("utf-8", errors="replace")
        found = MACHINE_PATH.findall(text) + [f for f in forbidden - {"/", ""} if f in text]
        if found:
            leaks[p.relative_to(bundle).as_posix()] = found
    assert not leaks
