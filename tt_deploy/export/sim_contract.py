"""The simulator contract of a bundle (manifest `simulator` and `fall_rule`), read from the code that trains the skills.

Why: a controller written from the bundle alone needs the world the skills were trained in - the humanoid MJCF,
every MuJoCo option of the compiled model, the scene objects a task adds, and the rule that ended an episode as
a fall. Each value here is read at export from the one place that sets it (the compiled model of
tt_deploy.sim.humanoid_model.build_model, TaskEnv's defaults, the task classes' constants), never restated, so
the bundle cannot drift from the training code. Only the prose (what a field means, how a quantity is measured)
is written here.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import shutil
from pathlib import Path

import mujoco
import numpy as np

from tt_deploy import spec
from tt_deploy.errors import BundleError
from tt_deploy.hashing import sha256_file
from tt_deploy.runtime import manifest as mf
from tt_deploy.sim.humanoid_model import HumanoidModel, build_model

log = logging.getLogger(__name__)

# MjOption fields that hold an enum or a bit set, and the MuJoCo enum that names their values
_ENUMS = {"integrator": mujoco.mjtIntegrator, "cone": mujoco.mjtCone, "jacobian": mujoco.mjtJacobian,
          "solver": mujoco.mjtSolver}  # fmt: skip
_FLAGS = {"disableflags": mujoco.mjtDisableBit, "enableflags": mujoco.mjtEnableBit}
_SIMULATOR_SET = {"substeps"}  # PhysicsSpec fields the simulator sets when it steps, not MjOption fields

MJCF_USE = ("the humanoid as shipped; before compiling it the simulator replaces its actuators by one position "
            "actuator per hinge and sets each hinge's damping to kd and stiffness to 0 (actuation), sets timestep "
            "and integrator (physics; the other options are the file's), adds a floor plane at z = 0 when the file "
            "has none, the scene objects (objects) and contact sensors (net force per body; contact found per "
            "object-body pair)")  # fmt: skip


def enum_word(member) -> str:
    """A MuJoCo enum member in words: its name without the prefix, lower case (mjSOL_NEWTON -> "newton")."""
    return member.name.split("_", 1)[1].lower()


def _flag_words(bits: int, enum) -> tuple[str, ...]:
    return tuple(enum_word(m) for m in enum.__members__.values() if m.name.count("_") and int(m) & int(bits))


def _floats(x) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(x).ravel())


def _option(opt, name: str):
    """One MjOption field, by name, as JSON-ready data (enums and bit sets in words, arrays as tuples)."""
    value = getattr(opt, name)
    if name in _ENUMS:
        return enum_word(_ENUMS[name](int(value)))
    if name in _FLAGS:
        return _flag_words(int(value), _FLAGS[name])
    if name == "disableactuator":  # a bit set of actuator groups
        return tuple(g for g in range(int(value).bit_length()) if int(value) >> g & 1)
    if isinstance(value, np.ndarray):
        return _floats(value)
    return type(value)(value)


def physics_spec(hm: HumanoidModel) -> mf.PhysicsSpec:
    """Every PhysicsSpec field read by name from the compiled model's mjModel.opt, plus the simulator's substeps."""
    values = {f.name: _option(hm.model.opt, f.name) for f in dataclasses.fields(mf.PhysicsSpec)
              if f.name not in _SIMULATOR_SET}  # fmt: skip
    return mf.PhysicsSpec(substeps=int(hm.substeps), **values)


def _defaults(fn) -> dict:
    """The keyword defaults of a function: where TaskEnv and the tasks keep their protocol numbers."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}


def _names(mask: np.ndarray) -> list[str]:
    return [spec.BODY_NAMES[i] for i in np.flatnonzero(mask)]


def _json(value):
    """Tuples -> lists inside dict fields, so a manifest read back from JSON equals the one written."""
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return float(value) if isinstance(value, (float, np.floating)) else value


def fall_rule(skills) -> mf.FallRule:
    """TaskEnv's fall rule: its default contact threshold, grace steps and termination heights, the NON_FOOT set
    it masks with, and each bundled skill's Task.fall_voids_success."""
    from tt_deploy.tasks import registry
    from tt_deploy.tasks.base import NON_FOOT, termination_heights
    from tt_deploy.tasks.env import TaskEnv

    d = _defaults(TaskEnv.__init__)
    heights = termination_heights(d["termination_height"], d["head_termination_height"])
    non_foot = _names(NON_FOOT)
    return mf.FallRule(
        formula="fallen = steps > grace_steps and any(contact_force[b] > contact_force_threshold for b in "
                "non_foot_bodies) and any(height[b] < termination_heights[b] for b in non_foot_bodies), "
                "steps = control steps since the episode's reset, this one included",
        non_foot_bodies=tuple(non_foot), contact_force_threshold=float(d["contact_threshold"]),
        contact_force="norm of the net contact force on the body, N (floor, objects and other bodies): MuJoCo's "
                      "contact sensor on the body (force, netforce reduction), from the constraint solver in the "
                      "control step's last physics substep",
        termination_heights={b: float(heights[spec.BODY_NAMES.index(b)]) for b in non_foot},
        height="z of the body frame's origin (state convention) minus the ground height under it (flat floor: 0), "
               "after the control step",
        grace_steps=int(d["fall_grace_steps"]),
        voids_success={s: bool(registry.task_class(s).fall_voids_success) for s in sorted(skills)},
    )  # fmt: skip


def _strike_target_rules() -> tuple[str, dict, str, dict]:
    """(placement, its params, contact rule, its params) of the strike pillar, from StrikeTask's constants."""
    from tt_deploy.tasks import strike

    d = _defaults(strike.StrikeTask.__init__)
    params = {k: _json(d[k]) for k in ("dist_range", "near_dist", "near_prob", "target_height")}
    placement = ("at every episode reset: d = dist_range[0] + (d_max - dist_range[0]) u1 with d_max = near_dist if "
                 "u0 < near_prob else dist_range[1]; theta, yaw ~ U(0, 2 pi); centre xy = pelvis xy + d (cos theta, "
                 "sin theta), centre z = ground height there + target_height; upright, at rest (u0, u1 ~ U(0, 1))")
    contact = ("touched = some humanoid body in contact with it (MuJoCo contact sensor: contact found per "
               "object-body pair, last physics substep); the episode ends as a failure when touched and some body "
               "in neither foot_bodies nor striking_bodies has a net contact force > contact_force_threshold N "
               "(measured as fall_rule.contact_force); feet and striking bodies may touch it")
    contact_params = {"striking_bodies": _names(strike.STRIKE_BODY_MASK), "foot_bodies": _names(strike.FOOT_MASK),
                      "contact_force_threshold": float(strike.CONTACT_FORCE)}  # fmt: skip
    return placement, params, contact, contact_params


_OBJECT_RULES = {"strike_target": _strike_target_rules}  # scene object -> its task's rules


def object_spec(hm: HumanoidModel, name: str, skills: tuple[str, ...]) -> mf.SceneObjectSpec:
    """One scene object's geometry and contact parameters from the compiled model, its rules from its task."""
    if name not in _OBJECT_RULES:
        raise BundleError(f"internal: no bundle contract for scene object {name!r}; add one to {__name__}")
    m, g, b = hm.model, hm.model.geom(name).id, hm.model.body(name).id
    placement, params, contact, contact_params = _OBJECT_RULES[name]()
    return mf.SceneObjectSpec(
        name=name, skills=skills, geom=enum_word(mujoco.mjtGeom(int(m.geom_type[g]))), size=_floats(m.geom_size[g]),
        mass=float(m.body_mass[b]), inertia=_floats(m.body_inertia[b]), friction=_floats(m.geom_friction[g]),
        condim=int(m.geom_condim[g]), solref=_floats(m.geom_solref[g]), solimp=_floats(m.geom_solimp[g]),
        placement=placement, placement_params=params, contact=contact, contact_params=contact_params,
    )  # fmt: skip


def scene_objects(skills) -> dict[str, tuple[str, ...]]:
    """object -> the skills (of `skills`) whose task needs it, in the simulator's object order."""
    from tt_deploy.sim.humanoid_model import OBJECTS
    from tt_deploy.tasks import registry

    need = {s: registry.task_class(s).objects for s in sorted(skills)}
    return {o: tuple(s for s, objs in need.items() if o in objs) for o in OBJECTS if any(o in v for v in need.values())}


def simulator_spec(skills) -> tuple[mf.SimulatorSpec, Path]:
    """(the SimulatorSpec of a bundle holding `skills`, the package MJCF file it names), read from a freshly
    built training model with those skills' objects."""
    objects = scene_objects(skills)
    hm = build_model(objects=tuple(objects))
    sim = mf.SimulatorSpec(
        engine=f"MuJoCo {mujoco.__version__}", mjcf=f"{mf.SIM_DIR}/{hm.mjcf.name}", mjcf_sha256=sha256_file(hm.mjcf),
        mjcf_use=MJCF_USE, physics=physics_spec(hm),
        objects=tuple(object_spec(hm, o, users) for o, users in objects.items()),
    )  # fmt: skip
    return sim, hm.mjcf


def write_simulator(new_dir: Path, skills, old: mf.BundleManifest | None, old_dir: Path | None, replaced: set[str],
                    link) -> tuple[mf.SimulatorSpec, mf.FallRule]:
    """Put the MJCF into the version being written and return (simulator, fall_rule) for its manifest.

    The skills an export keeps were trained in the old manifest's MJCF and physics: while any are kept, both must be
    unchanged (BundleError otherwise, as for a different BFM) and the old version's file is carried over (hard
    link, re-hashed, by `link(src, dst)`); otherwise the package's file is copied (a copy: a package file may be
    edited in place)."""
    sim, source = simulator_spec(skills)
    dst = new_dir / sim.mjcf
    dst.parent.mkdir(parents=True, exist_ok=True)
    kept = sorted(set(old.skills) - replaced) if old is not None else []
    prev = old.simulator if old is not None else None
    if prev is not None and kept:
        if (prev.mjcf_sha256, prev.physics) != (sim.mjcf_sha256, sim.physics):
            what = "MJCF" if prev.mjcf_sha256 != sim.mjcf_sha256 else "MuJoCo options"
            raise BundleError(f"the bundle's skills {kept} were trained with another {what} than this tt-deploy's; "
                              "export to a new --bundle dir or re-export all skills")  # fmt: skip
        src = old_dir / prev.mjcf
        if not src.is_file() or sha256_file(src) != prev.mjcf_sha256:
            raise BundleError(f"existing bundle file {src} is missing or modified; export to a new bundle dir")
        link(src, dst)
    else:
        shutil.copyfile(source, dst)
    if sha256_file(dst) != sim.mjcf_sha256:
        raise BundleError(f"internal: {dst} does not hash to the MJCF it was copied from")
    return sim, fall_rule(skills)


__all__ = ["simulator_spec", "physics_spec", "fall_rule", "object_spec", "write_simulator", "enum_word"]
