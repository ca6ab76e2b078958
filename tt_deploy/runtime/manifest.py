"""The deploy-bundle contract: frozen dataclasses <-> JSON, shared by the exporter and the runtime.

One source for both sides: the exporter fills these dataclasses (from tt_deploy.spec and the
models) and writes them; the runtime reads them back and refuses anything that does not match.
Importable without torch and without numpy, so a robot controller can read a bundle with the
standard library only.

Bundle layout (DESIGN.md section 5, file names are the constants below):

    <bundle>/manifest.json                  BundleManifest; its `content` names the version dir below
    <bundle>/v<N>/                          one immutable version (`content`); every graph and skill
                                            path of the manifest is relative to it:
      bfm.onnx, bfm.batch.onnx              frozen BFM, static batch 1 / dynamic batch
      bfm.<g1>+<g2>...[.batch].onnx         the BFM specialised to one set of visible groups, shared
                                            by every skill with that set (role "bfm-specialised")
      skills/<name>/encoder[.batch].onnx, fused[.batch].onnx
      skills/<name>/fused.<precision>[.batch].onnx   optional reduced-precision fused graphs (export --precision)
      skills/<name>/skill.json              SkillManifest
      sim/humanoid.xml                      the humanoid MJCF the skills were trained on (SimulatorSpec.mjcf)
    <bundle>/engines/                       optional TensorRT engines + index.json (EngineSpec), shared
                                            by versions (engines are keyed by their graph's hash)

Why versions: an export builds the next version beside the current one and then replaces
manifest.json in one rename, so a reader that reads the manifest first and then only the version it
names never sees a missing or mixed bundle, and a crash at any instant leaves the old or the new
manifest complete. The version before the current one is kept until the next export (a runtime that
read the old manifest an instant before the swap can finish loading). Bundles exported before
versions existed have `content` "" (files at the bundle root) and are read as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tt_deploy.atomic import atomic_write_text
from tt_deploy.errors import BundleError
from tt_deploy.hashing import sha256_file  # noqa: F401 - re-exported for runtime users

SCHEMA = "tt-deploy.bundle/1"
MANIFEST_FILE = "manifest.json"
SKILLS_DIR = "skills"
SKILL_FILE = "skill.json"
SIM_DIR = "sim"  # version-relative dir of the simulator's files (the MJCF)
MASK_SEMANTICS = "bool, True = visible"
BATCH_DIM = "batch"  # symbolic name of the batch axis in dynamic graphs
STATIC_SUFFIX, DYNAMIC_SUFFIX = ".onnx", ".batch.onnx"
# "bfm-specialised" (added within schema 1, older readers ignore it): the BFM without the token groups
# a set of skills always hides; fused-mode runtimes share one session of it between those skills.
GRAPH_ROLES = ("bfm", "encoder", "fused", "bfm-specialised")
SPECIALISED_ROLE = "bfm-specialised"


PRECISIONS = ("fp32", "int8")  # fp32: the reference every other precision is checked against


def graph_file(role: str, dynamic: bool, precision: str = "fp32") -> str:
    """File name of a graph: `bfm.onnx` (static batch 1), `bfm.batch.onnx` (dynamic batch); a reduced
    precision adds its name: `fused.int8.onnx`."""
    return role + ("" if precision == "fp32" else f".{precision}") + (DYNAMIC_SUFFIX if dynamic else STATIC_SUFFIX)


def specialised_bfm_file(visible_groups: tuple[str, ...] | list[str], dynamic: bool) -> str:
    """Bundle-relative file of the BFM specialised to `visible_groups` (spec order), e.g.
    `bfm.obs+historical_pose_obs+terrain.onnx`: the name says which groups it keeps."""
    return "bfm." + "+".join(visible_groups) + (DYNAMIC_SUFFIX if dynamic else STATIC_SUFFIX)


def skill_dir(skill: str) -> str:
    """Content-relative POSIX directory of a skill."""
    return f"{SKILLS_DIR}/{skill}"


VERSION_RE = re.compile(r"v([1-9][0-9]*)")  # content dir names: v1, v2, ...
LOCK_SUFFIX = ".lock"  # `.<bundle name>.lock` beside the bundle: the export lock


def version_name(number: int) -> str:
    return f"v{number}"


def version_number(content: str) -> int:
    """1, 2, ... for "v1", "v2", ...; 0 for "" (a bundle exported before versions existed)."""
    if content == "":
        return 0
    m = VERSION_RE.fullmatch(content)
    if m is None:
        raise BundleError(f"manifest content {content!r} is not a version dir name (v1, v2, ...); re-export the bundle")
    return int(m.group(1))


def content_dir(bundle_dir: str | os.PathLike, manifest: BundleManifest | None = None) -> Path:
    """The version directory holding the graphs, skills and priors `manifest` (default: the current
    manifest.json) lists. Read the manifest once and pass it on: a second read may already name the
    next version."""
    manifest = read_manifest(bundle_dir) if manifest is None else manifest
    version_number(manifest.content)  # validates the name: no paths out of the bundle
    return Path(bundle_dir) / manifest.content


@contextlib.contextmanager
def bundle_lock(bundle_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the bundle's writer lock (an flock on `.<name>.lock` beside it) around a read-modify-write.

    Why: two exports into one bundle each read the old manifest, add their skill and swap in their
    version; without the lock the second swap dropped the first one's skill (4 of 4 tries, both exits
    0). Readers never take it. POSIX only (fcntl); the runtime's readers do not need it."""
    import fcntl

    bundle = Path(bundle_dir)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    with open(bundle.with_name(f".{bundle.name}{LOCK_SUFFIX}"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- dataclasses ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    """One graph input/output: name, shape (ints, or "batch" for the dynamic axis), numpy dtype name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str  # "float32" | "bool"


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX file of the bundle, with the hash and I/O the runtime checks before running it."""

    path: str  # POSIX path relative to the version dir (`content`)
    role: str  # "bfm" | "encoder" | "fused" | "bfm-specialised"
    skill: str | None  # None for the shared bfm graphs
    batch: str  # "static" (batch 1, deployment) | "dynamic" (batched evaluation)
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    export_parity_max_abs: float | None = None  # ONNX Runtime vs PyTorch on the tracing inputs
    precision: str = "fp32"  # "fp32" (the reference) | "int8" (weights quantized: `quantization` says how)
    quantization: dict | None = None  # tool, version and settings that made a reduced-precision graph


@dataclass(frozen=True)
class TokenGroupSpec:
    """One BFM token group: graph input `name` (B, n_tokens, feat_dim), optional bool mask (B, n_tokens)."""

    name: str
    n_tokens: int
    feat_dim: int
    mask_name: str | None
    mask_semantics: str | None  # MASK_SEMANTICS when mask_name is set


@dataclass(frozen=True)
class BFMInfo:
    """Which BFM the bundle was exported from; every skill of a bundle must share it."""

    id: str  # human-readable id: checkpoint file name or "embedded-small"
    sha256: str  # of the .safetensors file, or of the state (see sha256_of)
    sha256_of: str  # "file" | "state_hash" (in-memory default BFM: hash over tensors)
    config_name: str
    param_count: int
    source: str  # "checkpoint <path>" | "embedded pretrained" | "fresh seeded init (untrained) seed N"


@dataclass(frozen=True)
class ToolVersions:
    """Versions of the tools that produced the graphs (for reproducing an export)."""

    torch: str
    onnx: str
    onnxruntime: str
    tt_deploy: str
    exporter: str  # e.g. "torch.onnx.export(dynamo=False) + onnxscript.optimizer"


@dataclass(frozen=True)
class ProfileShape:
    """One input's TensorRT optimisation-profile shapes (min = opt = max for static deploy engines)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class EngineSpec:
    """One TensorRT engine built from a bundle graph (`ttdeploy export --format trt`); GPU-specific."""

    path: str  # bundle-relative, under engines/ (not inside a version: engines outlive exports)
    graph: str  # version-relative path of the ONNX graph it was built from
    onnx_sha256: str
    key: str  # cache key: sha256 over onnx sha256 + TensorRT version + GPU name + precision + profile
    sha256: str  # of the serialized engine file
    precision: str  # "fp32" | "tf32" | "fp16"
    tensorrt: str  # TensorRT version that built it (engines are not portable across versions)
    gpu: str  # CUDA device name it was built on
    profile: tuple[ProfileShape, ...]


@dataclass(frozen=True)
class ActuationSpec:
    """How actions move the joints in the simulator the skills were trained in - what a controller's PD
    loop must reproduce. Arrays are (69,) in `joint_names` order."""

    pd_form: str  # the control law, in words: target, torque and where the damping acts
    kp: tuple[float, ...]  # N m / rad, stiffness of the position target
    kd: tuple[float, ...]  # N m s / rad, damping on the joint velocity
    damping: str  # "joint": kd is MuJoCo joint damping, integrated implicitly; "actuator": actuator kv
    torque_limit: tuple[float, ...] | None  # N m per joint; None = the simulator clips no torque
    physics_dt: float  # s per physics step
    substeps: int  # physics steps per control step (physics_dt * substeps = control_dt)
    integrator: str  # MuJoCo integrator name ("implicitfast")
    reset_root_pos: tuple[float, ...]  # (3,) m: the root at reset (x, y 0; z = lowest geom 2 mm above the floor)
    reset_root_quat: tuple[float, ...]  # (4,) xyzw
    reset_joint_pos: tuple[float, ...]  # (69,) rad: the rest (T) pose, joint angles 0
    mjcf: str  # the humanoid asset it was measured on (file name; the file itself: simulator.mjcf)


@dataclass(frozen=True)
class StateConvention:
    """The body-state convention every observation is built from (tt_deploy.obs.state.BodyState)."""

    frame: str  # world frame and up axis
    quaternion: str  # component order
    lin_vel: str  # which point's velocity, in which frame
    ang_vel: str
    bodies: str  # body order
    read_at: str  # when the state is read, relative to the physics steps


STATE_CONVENTION = StateConvention(
    frame="world, z up, gravity -z, floor at z = 0",
    quaternion="xyzw (w last); MuJoCo's wxyz is converted once, at the simulator boundary",
    lin_vel="velocity of each body frame's origin (not its centre of mass), world-frame vector, m/s (MuJoCo: "
            "mj_objectVelocity with mjOBJ_XBODY and flg_local 0; mjOBJ_BODY gives the centre of mass's)",
    ang_vel="world-frame vector, rad/s",
    bodies="body_names order; body 0 (Pelvis) is the root",
    read_at="after the control step's last physics substep, with positions and velocities recomputed from "
            "that state (MuJoCo: mj_forward after mj_step - mj_step leaves xpos/xquat/cvel one substep behind)",
)


@dataclass(frozen=True)
class PhysicsSpec:
    """Every MuJoCo option (mjModel.opt, by MuJoCo's names) of the model the skills were trained in, plus what
    the simulator sets when it steps: so a controller or another simulator can rebuild the same physics.
    Enums are MuJoCo's enum names without the prefix, lower case (mjSOL_NEWTON -> "newton")."""

    timestep: float  # s per physics step (= ActuationSpec.physics_dt)
    substeps: int  # physics steps per control step, actions held (the simulator's mj_step count, not an option)
    integrator: str  # "euler" | "rk4" | "implicit" | "implicitfast"
    cone: str  # friction cone: "pyramidal" | "elliptic"
    jacobian: str  # constraint Jacobian: "dense" | "sparse" | "auto"
    solver: str  # constraint solver: "pgs" | "cg" | "newton"
    iterations: int  # solver iterations
    tolerance: float  # solver tolerance
    ls_iterations: int  # linesearch iterations
    ls_tolerance: float  # linesearch tolerance
    noslip_iterations: int  # noslip solver iterations (0: off)
    noslip_tolerance: float  # noslip solver tolerance
    ccd_iterations: int  # convex collision detection iterations
    ccd_tolerance: float  # convex collision detection tolerance
    sdf_iterations: int  # SDF collision iterations
    sdf_initpoints: int  # SDF collision starting points
    sleep_tolerance: float  # velocity below which a body may sleep (only with the "sleep" enable flag)
    impratio: float  # frictional-to-normal constraint impedance ratio
    gravity: tuple[float, ...]  # (3,) m/s^2, world frame
    wind: tuple[float, ...]  # (3,) m/s, world frame
    magnetic: tuple[float, ...]  # (3,) global magnetic flux
    density: float  # kg/m^3 of the medium (0: no fluid forces)
    viscosity: float  # Pa s of the medium
    o_margin: float  # contact override margin (used only with the "override" enable flag)
    o_solref: tuple[float, ...]  # contact override solref
    o_solimp: tuple[float, ...]  # contact override solimp
    o_friction: tuple[float, ...]  # contact override friction (5,)
    disableflags: tuple[str, ...]  # MuJoCo features switched off (mjDSBL_CONTACT -> "contact"); () none
    enableflags: tuple[str, ...]  # optional MuJoCo features switched on (mjENBL_ENERGY -> "energy"); () none
    disableactuator: tuple[int, ...]  # actuator groups disabled; () none


@dataclass(frozen=True)
class SceneObjectSpec:
    """One free rigid object a bundled skill's task puts in the scene (the strike pillar), as the simulator adds it
    to the MJCF (it is not in the file), where the task places it and how the task classifies contacts with it."""

    name: str  # its MuJoCo body, free joint and geom name
    skills: tuple[str, ...]  # the bundled skills whose task needs it
    geom: str  # MuJoCo geom type, prefix dropped, lower case ("box")
    size: tuple[float, ...]  # m, MuJoCo geom size (box: half extents x, y, z)
    mass: float  # kg
    inertia: tuple[float, ...]  # kg m^2, principal moments about the centre of mass (body frame = geom frame)
    friction: tuple[float, ...]  # MuJoCo geom friction: sliding, torsional, rolling
    condim: int  # MuJoCo contact dimensionality of the geom
    solref: tuple[float, ...]  # MuJoCo geom solref (time constant s, damping ratio)
    solimp: tuple[float, ...]  # MuJoCo geom solimp
    placement: str  # where the task puts it at each episode reset, in the names of placement_params
    placement_params: dict  # the task's defaults; a skill.json `goals.ranges` entry of the same name overrides one
    contact: str  # how the task classifies contacts with it, in the names of contact_params
    contact_params: dict  # the body sets (body names) and thresholds `contact` names


@dataclass(frozen=True)
class SimulatorSpec:
    """The simulated world the skills were trained in: the humanoid MJCF (a bundle file, hashed), what the
    simulator adds to it, MuJoCo's options and the scene objects. Read from the compiled training model at export."""

    engine: str  # simulator and version the values were read from ("MuJoCo 4.0.1")
    mjcf: str  # version-relative POSIX path of the humanoid MJCF as shipped ("sim/humanoid.xml")
    mjcf_sha256: str  # of that file; tt_deploy.runtime.read_mjcf checks it
    mjcf_use: str  # what the simulator adds to the file before compiling it
    physics: PhysicsSpec  # MuJoCo's options and the substeps
    objects: tuple[SceneObjectSpec, ...]  # every scene object a bundled skill's task needs; () none


@dataclass(frozen=True)
class FallRule:
    """When the training environment ended an episode as a fall (tt_deploy.tasks.env TaskEnv.fallen), in
    measurable terms: what a controller's fall monitor or an evaluation must apply to match the training."""

    formula: str  # one line, in the names of the fields below
    non_foot_bodies: tuple[str, ...]  # the bodies the rule looks at (all but the feet), body_names order
    contact_force_threshold: float  # N: a non-foot body "has contact" when its contact force exceeds this
    contact_force: str  # how a body's contact force is measured
    termination_heights: dict[str, float]  # m above the ground under the body, per non-foot body
    height: str  # how a body's height is measured
    grace_steps: int  # control steps after a reset in which no fall is checked
    voids_success: dict[str, bool]  # per bundled skill: whether a fall cancels the episode's success


@dataclass(frozen=True)
class HistoryEntry:
    """One change to the bundle, newest last in `BundleManifest.history` (the last HISTORY_LIMIT are kept):
    what a fleet operator reads to see how the bundle came to be what it is."""

    version: str  # the version dir the change made current ("v3"), or "" when none ("engines" keeps it)
    event: str  # one of HISTORY_EVENTS
    skills: tuple[str, ...]  # the skills it touched (exported, or whose results it recorded)
    time: str  # UTC, ISO 8601, seconds
    tt_deploy: str  # the tt-deploy version that made it
    note: str = ""  # why, in words: which leftover was restored or not, and because of what


# export: skills exported; record: verify/sim2sim results recorded; engines: TensorRT engines indexed;
# recovered: an interrupted export's bundle moved back; new: the bundle path was empty (first export, or the
# user deleted the bundle: the note says when a leftover of the old one was found and left alone)
HISTORY_EVENTS = ("new", "recovered", "export", "record", "engines")
HISTORY_LIMIT = 100


def history_entry(event: str, version: str, skills=(), note: str = "") -> HistoryEntry:
    """A HistoryEntry stamped now, by this tt-deploy."""
    import datetime

    from tt_deploy import __version__

    if event not in HISTORY_EVENTS:
        raise ValueError(f"history event {event!r} is not one of {HISTORY_EVENTS}")
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return HistoryEntry(version, event, tuple(sorted(skills)), now, __version__, note)


def with_history(history: tuple[HistoryEntry, ...], *entries: HistoryEntry) -> tuple[HistoryEntry, ...]:
    """`history` with `entries` appended, the oldest dropped beyond HISTORY_LIMIT."""
    return (*history, *entries)[-HISTORY_LIMIT:]


@dataclass(frozen=True)
class BundleManifest:
    """`manifest.json`: the bundle contract between export and runtime."""

    schema: str
    bfm: BFMInfo
    token_groups: tuple[TokenGroupSpec, ...]
    token_dim: int  # d of the task token (= BFM d_model)
    task_token_name: str
    task_obs_name: str
    actions_name: str
    action_dim: int
    action_clamp: float  # actions are already clamped to [-clamp, clamp] inside every graph
    control_dt: float  # s per policy step
    joint_names: tuple[str, ...]  # action order
    body_names: tuple[str, ...]  # body order of every observation
    pd_offset: tuple[float, ...] | None  # (69,) rad: PD target = offset + scale * action
    pd_scale: tuple[float, ...] | None
    opset: int
    tools: ToolVersions
    skills: tuple[str, ...]
    graphs: tuple[GraphSpec, ...]
    engines: tuple[EngineSpec, ...] = ()  # optional TensorRT engines (engines/index.json has the same list)
    content: str = ""  # version dir of this manifest's files ("v3"); "" = the bundle root (older bundles)
    default_skill: str | None = None  # the skill SkillRuntime starts with (None: the first resident one)
    actuation: ActuationSpec | None = None  # the PD loop the skills were trained with (None: older bundles)
    state: StateConvention | None = None  # the body-state convention of every observation
    skill_sha256: dict[str, str] | None = None  # sha256 of each skill.json, every skill (None: older bundles)
    history: tuple[HistoryEntry, ...] = ()  # how the bundle got here, oldest first (empty: older bundles)
    simulator: SimulatorSpec | None = None  # the world the skills trained in: MJCF, physics (None: older)
    fall_rule: FallRule | None = None  # when training ended an episode as a fall (None: older bundles)

    def graph(self, role: str, skill: str | None = None, dynamic: bool = False, precision: str = "fp32") -> GraphSpec:
        """The GraphSpec of one role/skill/batch kind/precision; BundleError when the bundle lacks it."""
        want = "dynamic" if dynamic else "static"
        for g in self.graphs:
            if g.role == role and g.skill == skill and g.batch == want and g.precision == precision:
                return g
        how = f"; export it with `ttdeploy export --skill {skill} --precision {precision}`" if precision != "fp32" else ""
        raise BundleError(
            f"manifest lists no {want} {'' if precision == 'fp32' else precision + ' '}{role} graph"
            + (f" for skill {skill!r}" if skill else "") + how
        )

    def reduced_precisions(self, skill: str) -> tuple[str, ...]:
        """The precisions other than fp32 whose graphs the bundle has for `skill` (`export --precision`)."""
        return tuple(sorted({g.precision for g in self.graphs if g.skill == skill} - {"fp32"}))

    def specialised_bfm(self, visible_groups: tuple[str, ...], dynamic: bool = False) -> GraphSpec | None:
        """The shared BFM graph specialised to `visible_groups`, or None (bundles exported before it existed)."""
        path = specialised_bfm_file(visible_groups, dynamic)
        return next((g for g in self.graphs if g.role == SPECIALISED_ROLE and g.path == path), None)


@dataclass(frozen=True)
class EncoderSpec:
    """The task encoder's configuration (models.config.EncoderConfig fields) and size."""

    obs_dim: int
    token_dim: int
    hidden: tuple[int, ...]
    norm_clamp: float | None
    param_count: int


@dataclass(frozen=True)
class SkillManifest:
    """`skills/<name>/skill.json`: one skill's task-obs spec, provenance, graphs and later results."""

    schema: str
    name: str
    task_obs_dim: int
    task_obs_features: tuple[str, ...] | None  # feature names when the task module knows them
    encoder: EncoderSpec
    encoder_source: str  # "trained run <path> steps N" | "fresh seeded init (untrained) seed S"
    encoder_trained: bool
    encoder_weights_sha256: str
    encoder_weights_sha256_of: str  # "file" | "state_hash"
    bfm_sha256: str
    visible_groups: tuple[str, ...]  # token groups the fused graph keeps; others are dropped (= hidden)
    graphs: dict[str, str] = field(default_factory=dict)  # version-relative graph path -> sha256
    task_prior: dict | None = None  # prior prompt trained beside: {name, params, goal_keys}; rebuild with tt_deploy.obs.priors.make_prior and feed it every step
    goals: dict | None = None  # goal preset it was trained on: {preset, ranges, ...} (tasks/goals.py)
    parity: dict | None = None  # written later by `ttdeploy verify`
    sim2sim: dict | None = None  # written later by `ttdeploy sim2sim`
    precision_gates: dict | None = None  # per reduced precision, the closed-loop verdict that lets it ship: {"int8": {"passed": bool, ...}}
    reference_sha256: str | None = None  # sha256 of reference.safetensors: verify inputs + PyTorch actions (runtime/parity.py)


# --- JSON conversion -----------------------------------------------------------------------------
def to_dict(obj: Any) -> Any:
    """Dataclass tree -> JSON-ready dict (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


_JSON_TYPES = {str: (str,), int: (int,), float: (int, float), bool: (bool,), dict: (dict,)}


def _is(tp: Any, value: Any) -> bool:
    """Whether a JSON value has the primitive type `tp` (bool is not an int here, an int is a float)."""
    ok = _JSON_TYPES.get(typing.get_origin(tp) or tp)
    if ok is None:
        return True  # not a primitive: checked by the caller's recursion
    return isinstance(value, ok) and (tp is bool or not isinstance(value, bool))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None:
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            return None
        raise BundleError(f"{where}: null where a {getattr(tp, '__name__', tp)} is required; re-export the bundle")
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        dcs = [a for a in non_none if dataclasses.is_dataclass(a)]
        if dcs:
            return _convert(dcs[0], value, where)
        if not any(_is(a, value) for a in non_none):
            raise BundleError(f"{where}: {value!r} is not a {tp}; re-export the bundle")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise BundleError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if not _is(tp, value):
        raise BundleError(f"{where}: {value!r} is not a {getattr(tp, '__name__', tp)}; re-export the bundle")
    return value


def from_dict(cls: type, data: Any, where: str = "manifest") -> Any:
    """JSON dict -> dataclass `cls`, recursively; BundleError naming the missing/unknown fields."""
    if not isinstance(data, dict):
        raise BundleError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = {
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing, unknown = sorted(required - set(data)), sorted(set(data) - set(fields))
    if missing or unknown:
        raise BundleError(
            f"{where}: missing fields {missing}, unknown fields {unknown}; re-export the bundle"
        )
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def _write_json_atomic(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _read_json(path: Path, what: str, sha256: str | None = None) -> dict:
    if not path.is_file():
        raise BundleError(f"{what} not found: {path}; export a bundle with `ttdeploy export --skill NAME`")
    try:
        raw = path.read_bytes()
        if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
            raise BundleError(f"{path} does not match its sha256 in manifest.json: it was edited - re-export the skill")
        data = json.loads(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); re-export the bundle") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path} holds a JSON {type(data).__name__}, not an object; re-export the bundle")
    return data


def _check_schema(data: dict, path: Path) -> None:
    if data.get("schema") != SCHEMA:
        raise BundleError(
            f"{path} has schema {data.get('schema')!r}, this tt-deploy reads {SCHEMA!r}; "
            "re-export the bundle with this version of tt-deploy"
        )


def write_manifest(bundle_dir: str | os.PathLike, manifest: BundleManifest) -> Path:
    path = Path(bundle_dir) / MANIFEST_FILE
    _write_json_atomic(path, to_dict(manifest))
    return path


def read_manifest(bundle_dir: str | os.PathLike) -> BundleManifest:
    """Parse `<bundle>/manifest.json`; BundleError on a missing file, wrong schema or bad fields."""
    path = Path(bundle_dir) / MANIFEST_FILE
    data = _read_json(path, "bundle manifest")
    _check_schema(data, path)
    return from_dict(BundleManifest, data, str(path))


def write_skill(content: str | os.PathLike, skill: SkillManifest) -> Path:
    """Write `skills/<name>/skill.json` into a version dir (`content_dir`), atomically."""
    path = Path(content) / skill_dir(skill.name) / SKILL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(path, to_dict(skill))
    return path


def read_skill_file(content: str | os.PathLike, name: str, sha256: str | None = None) -> SkillManifest:
    """Parse `skills/<name>/skill.json` of a version dir (`content_dir`); with `sha256`, the bytes parsed
    must hash to it (BundleError otherwise)."""
    path = Path(content) / skill_dir(name) / SKILL_FILE
    data = _read_json(path, f"skill manifest of {name!r}", sha256)
    _check_schema(data, path)
    if data.get("prior") is not None:  # static prior tokens: schema 1 had them, no producer ever wrote them
        raise BundleError(f"{path}: static prior tokens (prior.npz) are no longer read; re-export skill {name!r} "
                          "and feed its task_prior prompt every step (docs/embedding.md)")
    data.pop("prior", None)  # null in skill.json files of earlier schema-1 exports
    return from_dict(SkillManifest, data, str(path))


def read_skill(
    bundle_dir: str | os.PathLike, name: str, manifest: BundleManifest | None = None
) -> SkillManifest:
    """One skill's skill.json from the version `manifest` (default: the current manifest.json) names, checked
    against the manifest's skill_sha256 (bundles exported before it have none). A manifest that hashes some
    skills must hash every one: a deleted entry would otherwise turn that skill's check off."""
    manifest = read_manifest(bundle_dir) if manifest is None else manifest
    sha = None if manifest.skill_sha256 is None else manifest.skill_sha256.get(name)
    if manifest.skill_sha256 is not None and sha is None:
        raise BundleError(f"{Path(bundle_dir) / MANIFEST_FILE}: skill_sha256 has no entry for skill {name!r}; "
                          "the manifest was edited - re-export the bundle")
    return read_skill_file(content_dir(bundle_dir, manifest), name, sha)


def field_table(cls: type) -> list[tuple[str, str, str]]:
    """(field, type, comment) rows of a manifest dataclass, for docs/bundle.md (kept in sync by a test)."""
    import inspect

    comments: dict[str, str] = {}
    for line in inspect.getsource(cls).splitlines():
        name, _, rest = line.strip().partition(":")
        if "#" in rest and name.isidentifier():
            comments[name] = rest.split("#", 1)[1].strip()
    return [(f.name, str(f.type), comments.get(f.name, "")) for f in dataclasses.fields(cls)]


DOC_CLASSES = ("BundleManifest", "HistoryEntry", "ActuationSpec", "StateConvention", "SimulatorSpec", "PhysicsSpec",
               "SceneObjectSpec", "FallRule", "BFMInfo", "TokenGroupSpec", "GraphSpec", "TensorSpec", "ToolVersions",
               "EngineSpec", "ProfileShape", "SkillManifest", "EncoderSpec")  # fmt: skip


def field_tables_markdown() -> str:
    """The "## Manifest fields" section of docs/bundle.md (`python scripts/bundle_doc_tables.py` writes it)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")  # a literal | inside a markdown table cell

    out = ["## Manifest fields", ""]
    for name in DOC_CLASSES:
        out += [f"### {name}", "", "| field | type | meaning |", "|---|---|---|"]
        out += [f"| `{f}` | `{cell(tp)}` | {cell(comment)} |" for f, tp, comment in field_table(globals()[name])]
        out.append("")
    return "\n".join(out)
