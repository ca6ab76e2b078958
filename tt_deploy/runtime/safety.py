"""`SafetyLayer`: the guards between a `SkillRuntime`'s actions and a robot's PD targets (opt-in).

SkillRuntime on its own checks only that its actions are finite and inside [-1, 1]; every guard below is
extra and changes nothing unless a controller wraps its runtime in a SafetyLayer (SkillRuntime's own
behaviour and numbers are the same with or without this module). Per control step, `act` takes the
policy inputs plus the measured joint state and a state stamp, and writes PD targets (rad) that passed:

- state checks: the joint state must be finite (fault `nonfinite_state`), every measured joint inside its
  MJCF range widened by `breach_tolerance` (fault `joint_breach`: a sensor or calibration fault), and the
  stamp must advance: `watchdog_periods` calls in a row without a fresh stamp are the fault `stale_state`;
- the policy: `SkillRuntime.act_into`; NaN/inf inputs (fault `nonfinite_input`), NaN/inf actions (fault
  `nonfinite_action`) or any other typed runtime error (fault `runtime_error`) never reach a target
  (`filter_actions`, for actions from another source, adds `action_range`: actions outside the clamp);
- the mode's target (`Mode`): standby holds the pose measured when standby began; ramp (the soft start) moves
  linearly from the pose measured when it began to the default pose over `ramp_seconds`, then blends from the
  default pose into the policy's target over `blend_seconds`; policy passes the policy's target; damping targets
  the default pose (manifest `actuation.reset_joint_pos`; `damping_target="hold"`: the last target sent);
- the target guards, in this order: rate limit (each joint's target moves at most `rate_limit` rad per
  control step from the last target sent; `damping_rate_limit` in damping), torque limit (where the manifest or
  the config gives one: the target is clipped so that kp (target - q) - kd qdot stays inside +-limit), position
  limits (the target is clipped to the MJCF joint range shrunk by `position_margin`: last, so it always holds);
  a target that is still not finite (it cannot be, by construction) is replaced by the last one sent.

Why the soft start goes through the default pose: blending the measured pose straight into the running policy's
targets over 1 s made the shipped skills fall (MuJoCo, 4 seeds: reach 2, steering 4 of 4): the closed-loop policy
sees its actions only partly applied and winds up. The default pose is the pose every training episode started
from, so the policy takes over from it (docs/embedding.md, "Safety layer", has the numbers).

Any fault switches to damping at once, in the call that saw it. Damping latches: `resume()` (or, with
`resume_periods`, that many consecutive healthy calls) leaves it through a soft start from the measured pose.
What damping means for the joint controller: the layer keeps the PD law of the manifest (same kp, same kd) and
moves the target to the default pose, rate-limited, so the humanoid holds that pose with the manifest's kd as
the damping. A robot whose drivers offer a pure damping mode may instead send kp = 0 and the manifest's kd
while `mode is Mode.DAMPING` (the robot then sinks instead of holding a pose; not what the tests measure).

Configured from the bundle (`SafetyConfig.from_bundle`): joint ranges from the bundle's verified MJCF (parsed
with xml.etree: this module imports neither torch nor mujoco), kp / kd / torque limits / the default pose /
the action -> target map (pd_offset, pd_scale, action_clamp) from manifest.json, and the documented defaults
of the tunables below (the manifest has no safety section). The hot path allocates no arrays (preallocated
float64 buffers, `out=` ufuncs); only a fault's diagnosis does.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tt_deploy.errors import BundleError, InputError, NonFiniteActionsError, TTDeployError
from tt_deploy.runtime import manifest as mf

log = logging.getLogger(__name__)

# documented defaults (docs/embedding.md, "Safety layer"); every one is a SafetyConfig field
RATE_LIMIT = 1.0  # rad per control step (30 rad/s at 30 Hz)
DAMPING_RATE_LIMIT = 1.0  # rad per control step in damping: the way to the default pose
WATCHDOG_PERIODS = 3  # calls without a fresh state stamp before damping (0.1 s at 30 Hz)
RAMP_SECONDS = 1.0  # s, the measured pose -> the default pose (soft start, phase 1)
BLEND_SECONDS = 0.2  # s, the default pose -> the policy's target (soft start, phase 2)
POSITION_MARGIN = 0.0  # rad, each joint range shrunk by this on both sides for the targets
BREACH_TOLERANCE = 0.25  # rad, a measured joint this far outside its range is a fault


class Mode(str, enum.Enum):
    """What the layer sends (see the module docstring)."""

    STANDBY = "standby"
    RAMP = "ramp"
    POLICY = "policy"
    DAMPING = "damping"


# the faults that switch to damping, and the guards that changed a target (counted per call)
FAULTS = ("stale_state", "nonfinite_state", "joint_breach", "nonfinite_input", "nonfinite_action", "action_range",
          "runtime_error")
_RANGE_SLACK = 1e-6  # relative: filter_actions' actions may exceed action_clamp by float rounding only
CLIPS = ("rate", "torque", "position", "nonfinite_target")


# --- MJCF joint ranges ------------------------------------------------------------------------------
def _truthy(value: str | None, autolimits: bool, has_range: bool) -> bool:
    if value in (None, "auto"):
        return has_range if autolimits else False
    return value.strip().lower() == "true"


def joint_limits(mjcf: bytes | str, joint_names) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) rad, each (len(joint_names),), of the named hinges of an MJCF; -inf / +inf for an unlimited
    joint. Reads what MuJoCo's compiler reads for a joint's limits: `range` and `limited` on the joint, else from
    its default class chain (its `class`, else the nearest body `childclass`, else "main"), `compiler angle`
    (MuJoCo's default: degree) and `compiler autolimits` (default true). BundleError for a name it lacks."""
    try:
        root = ET.fromstring(mjcf)
    except ET.ParseError as exc:
        raise BundleError(f"the bundle's MJCF is not valid XML ({exc}); re-export the bundle") from exc
    degree, autolimits = True, True
    for c in root.iter("compiler"):
        degree = c.get("angle", "degree" if degree else "radian").lower() != "radian"
        autolimits = c.get("autolimits", "true" if autolimits else "false").lower() == "true"
    classes: dict[str, tuple[str | None, dict[str, str]]] = {}

    def walk_defaults(node, parent: str | None) -> None:
        name = node.get("class", "main")
        joint = node.find("joint")
        classes[name] = (parent, dict(joint.attrib) if joint is not None else {})
        for child in node.findall("default"):
            walk_defaults(child, name)

    for d in root.findall("default"):
        walk_defaults(d, None)

    def attr(cls: str | None, key: str) -> str | None:
        while cls is not None and cls in classes:
            parent, attrs = classes[cls]
            if key in attrs:
                return attrs[key]
            cls = parent
        return None

    found: dict[str, tuple[float, float]] = {}

    def walk_bodies(node, childclass: str) -> None:
        for child in node:
            if child.tag == "joint" and child.get("name") is not None:
                cls = child.get("class", childclass)
                rng = child.get("range", attr(cls, "range"))
                if _truthy(child.get("limited", attr(cls, "limited")), autolimits, rng is not None) and rng:
                    lo, hi = (float(v) for v in rng.split())
                    if degree:
                        lo, hi = math.radians(lo), math.radians(hi)
                    found[child.get("name")] = (lo, hi)
                else:
                    found[child.get("name")] = (-math.inf, math.inf)
            elif child.tag in ("body", "worldbody", "frame"):
                walk_bodies(child, child.get("childclass", childclass))

    for wb in root.findall("worldbody"):
        walk_bodies(wb, "main")
    missing = [n for n in joint_names if n not in found]
    if missing:
        raise BundleError(f"the bundle's MJCF has no joints {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
                          "re-export the bundle")  # fmt: skip
    lo, hi = np.array([found[n] for n in joint_names], np.float64).T
    return lo, hi


# --- configuration ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SafetyConfig:
    """Every setting of a SafetyLayer. Bundle facts (ranges, gains, default pose, the action map) come from
    `from_bundle`; the tunables have the module's documented defaults. A guard set to None (or False) is off.
    Arrays are tuples of floats in the manifest's `joint_names` order."""

    lower: tuple[float, ...]  # rad, MJCF joint range (-inf: unlimited)
    upper: tuple[float, ...]  # rad
    kp: tuple[float, ...]  # N m / rad (manifest actuation.kp)
    kd: tuple[float, ...]  # N m s / rad (manifest actuation.kd)
    default_pose: tuple[float, ...]  # rad, damping's target (manifest actuation.reset_joint_pos)
    pd_offset: tuple[float, ...]  # rad: target = pd_offset + pd_scale * clamp(action) (manifest)
    pd_scale: tuple[float, ...]
    action_clamp: float  # manifest action_clamp
    control_dt: float  # s per call (manifest control_dt)
    torque_limit: tuple[float, ...] | None = None  # N m per joint (manifest actuation.torque_limit; None: off)
    rate_limit: float | None = RATE_LIMIT  # rad per control step, every mode but damping
    damping_rate_limit: float | None = DAMPING_RATE_LIMIT  # rad per control step in damping
    damping_target: str = "default"  # "default": the default pose; "hold": the last target sent before damping
    watchdog_periods: int | None = WATCHDOG_PERIODS  # calls without a fresh stamp -> damping
    ramp_seconds: float = RAMP_SECONDS  # soft start: measured pose -> default pose, s (0: skip)
    blend_seconds: float = BLEND_SECONDS  # soft start: default pose -> policy target, s (0: a step)
    position_limits: bool = True  # clip targets to [lower + margin, upper - margin]
    position_margin: float = POSITION_MARGIN  # rad
    breach_tolerance: float | None = BREACH_TOLERANCE  # rad outside the range a measured joint may be
    resume_periods: int | None = None  # healthy calls in damping before a ramp back (None: only resume())

    @classmethod
    def from_bundle(cls, bundle_dir: str | os.PathLike, manifest: mf.BundleManifest | None = None,
                    **overrides) -> SafetyConfig:
        """The config of a bundle: MJCF ranges (hash-checked, runtime.read_mjcf), manifest gains, default pose
        and action map, the documented defaults for the rest; `overrides` replace any field by name."""
        from tt_deploy.runtime.simulator import read_mjcf

        manifest = mf.read_manifest(bundle_dir) if manifest is None else manifest
        act = manifest.actuation
        if act is None or manifest.pd_offset is None or manifest.pd_scale is None:
            raise BundleError(f"{Path(bundle_dir) / mf.MANIFEST_FILE} has no actuation / PD map (exported before "
                              "bundles carried them); re-export the bundle with this tt-deploy")  # fmt: skip
        lo, hi = joint_limits(read_mjcf(bundle_dir, manifest), manifest.joint_names)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(f"unknown SafetyConfig fields {sorted(unknown)}")
        floats = lambda v: None if v is None else tuple(float(x) for x in v)  # noqa: E731
        values = dict(lower=floats(lo), upper=floats(hi), kp=floats(act.kp), kd=floats(act.kd),
                      default_pose=floats(act.reset_joint_pos), pd_offset=floats(manifest.pd_offset),
                      pd_scale=floats(manifest.pd_scale), action_clamp=float(manifest.action_clamp),
                      control_dt=float(manifest.control_dt), torque_limit=floats(act.torque_limit))  # fmt: skip
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        n = len(self.kp)
        sizes = {k: len(getattr(self, k)) for k in ("lower", "upper", "kd", "default_pose", "pd_offset", "pd_scale")}
        if self.torque_limit is not None:
            sizes["torque_limit"] = len(self.torque_limit)
        if any(s != n for s in sizes.values()):
            raise InputError(f"SafetyConfig arrays must all have {n} joints; got {sizes}")
        if self.damping_target not in ("default", "hold"):
            raise InputError(f"SafetyConfig.damping_target must be 'default' or 'hold'; got {self.damping_target!r}")
        for name in ("rate_limit", "damping_rate_limit", "position_margin", "breach_tolerance"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise InputError(f"SafetyConfig.{name} must be a finite number >= 0 or None; got {v!r}")
        for name in ("ramp_seconds", "blend_seconds"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise InputError(f"SafetyConfig.{name} must be a finite number >= 0; got {v!r}")
        for name in ("watchdog_periods", "resume_periods"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise InputError(f"SafetyConfig.{name} must be an int >= 1 or None; got {v!r}")
        if self.torque_limit is not None and any(not t > 0 for t in self.torque_limit):
            raise InputError("SafetyConfig.torque_limit must be > 0 on every joint (inf: no limit)")


# --- the layer --------------------------------------------------------------------------------------
def _finite_inputs(inputs, task_obs) -> bool:
    arrays = [task_obs, *(inputs.values() if isinstance(inputs, Mapping) else ())]
    for x in arrays:
        if isinstance(x, np.ndarray) and x.dtype.kind == "f" and not np.isfinite(x).all():
            return False
    return True


class SafetyLayer:
    """Guards a SkillRuntime's actions on their way to PD targets (module docstring). One per runtime and
    control loop; not thread-safe (nor is the runtime).

    runtime: the SkillRuntime (its `switch` stays usable; `layer.switch` is the same call). config: None =
    `SafetyConfig.from_bundle(runtime.bundle_dir, runtime.manifest)`. The layer starts in standby: call
    `start()` to ramp into the policy.
    """

    def __init__(self, runtime, config: SafetyConfig | None = None) -> None:
        self.runtime = runtime
        self.config = cfg = config or SafetyConfig.from_bundle(runtime.bundle_dir, runtime.manifest)
        n = self.num_joints = len(cfg.kp)
        if runtime.manifest.action_dim != n:
            raise InputError(f"SafetyConfig has {n} joints, the runtime's actions {runtime.manifest.action_dim}")
        f = lambda v: np.array(v, np.float64)  # noqa: E731
        self._offset, self._scale, self._default = f(cfg.pd_offset), f(cfg.pd_scale), f(cfg.default_pose)
        self._kd = f(cfg.kd)
        kp = f(cfg.kp)
        self._inv_kp = np.divide(1.0, kp, out=np.zeros(n), where=kp > 0)
        self._tau = None if cfg.torque_limit is None else f(cfg.torque_limit) * self._inv_kp  # rad of target
        if self._tau is not None:
            self._tau[kp <= 0] = np.inf
        lo, hi = f(cfg.lower), f(cfg.upper)
        m = cfg.position_margin
        self._lo, self._hi = np.minimum(lo + m, (lo + hi) / 2), np.maximum(hi - m, (lo + hi) / 2)
        if cfg.breach_tolerance is not None:
            self._breach_lo, self._breach_hi = lo - cfg.breach_tolerance, hi + cfg.breach_tolerance
        self._ramp_steps = round(cfg.ramp_seconds / cfg.control_dt)  # phase 1 calls (0: none)
        self._blend_steps = max(1, round(cfg.blend_seconds / cfg.control_dt))  # phase 2 calls (the last: policy)
        # preallocated buffers: the hot path writes into these
        self._q, self._qd = np.zeros(n), np.zeros(n)
        self._raw = np.zeros((1, n), np.float32)  # the policy's actions
        self._policy = np.zeros(n)  # the policy's PD targets
        self._want = np.zeros(n)  # the mode's target before the guards
        self._prev = np.zeros(n)  # the guarded target before a guard (change detection)
        self._a, self._b = np.zeros(n), np.zeros(n)
        self._amax = np.full(n, float(cfg.action_clamp))  # array bounds: np.clip with scalar ones allocates
        self._amin = -self._amax
        self._ok = np.zeros(n, np.bool_)
        self._from = np.zeros(n)  # ramp start / standby hold pose
        self._hold = np.zeros(n)  # damping_target "hold": the last target sent before damping
        self.targets = np.zeros(n)  # the last PD targets sent, rad
        self.actions = np.zeros((1, n), np.float32)  # the same targets as actions, for an action-taking driver
        self._has_last = False
        self.mode = Mode.STANDBY
        self._hold_pending = True  # standby: capture the pose at the next call
        self._ramp_k = 0
        self._start_pending = False
        self._resume_pending = False
        self._stamp = -math.inf
        self._stale = 0
        self._healthy = 0
        self._fault_call = -1  # the call index of the last fault
        self.steps = 0
        self.faults = dict.fromkeys(FAULTS, 0)
        self.clips = dict.fromkeys(CLIPS, 0)
        self.entries = dict.fromkeys((m.value for m in Mode), 0)
        self.entries[Mode.STANDBY.value] = 1
        self.last_fault: str | None = None
        self.last_error: str | None = None
        self.damping_step: int | None = None  # the call (1 = the first) of the last entry into damping

    # --- commands -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Leave standby: the next call ramps from the measured pose to the policy over ramp_seconds."""
        if self.mode is Mode.STANDBY:
            self._start_pending = True

    def resume(self) -> None:
        """Leave damping (latched): the next healthy call ramps from the measured pose to the policy."""
        if self.mode is Mode.DAMPING:
            self._resume_pending = True

    def standby(self) -> None:
        """Hold the pose measured at the next call until start()."""
        self._enter(Mode.STANDBY)
        self._hold_pending, self._start_pending = True, False

    def damp(self) -> None:
        """Operator stop: damping now (not counted as a fault); resume() leaves it."""
        self._enter(Mode.DAMPING, "operator")

    def switch(self, skill: str) -> None:
        """`runtime.switch(skill)`: the rate limit bounds the target jump it causes."""
        self.runtime.switch(skill)

    def _enter(self, mode: Mode, why: str = "") -> None:
        if mode is not self.mode:
            self.mode = mode
            self.entries[mode.value] += 1
            if mode is Mode.DAMPING:
                self.damping_step = self.steps
                np.copyto(self._hold, self.targets if self._has_last else self._default)
                log.warning("safety layer: damping at call %d (%s)", self.steps, why)
            self._start_pending = self._resume_pending = False
            self._healthy = 0

    def _begin_ramp(self, state_ok: bool) -> None:
        np.copyto(self._from, self._q if state_ok else self.targets)
        self._enter(Mode.RAMP)
        self._ramp_k = 0

    def _fault(self, kind: str) -> None:
        self.faults[kind] += 1
        self.last_fault, self._fault_call = kind, self.steps
        self._enter(Mode.DAMPING, kind)
        self._healthy = 0
        self._start_pending = self._resume_pending = False  # a resume() before a fault clears does not count

    # --- one control step -------------------------------------------------------------------------------
    def act(self, inputs: Mapping[str, np.ndarray], task_obs: np.ndarray, out: np.ndarray | None = None, *,
            joint_pos: np.ndarray, joint_vel: np.ndarray, stamp: float) -> np.ndarray:
        """One control step: run the policy on (inputs, task_obs) and return guarded PD targets (rad), written
        into `out` ((n,) or (1, n) float buffer; None: `self.targets`). joint_pos / joint_vel: the measured
        joint state (rad, rad/s) the inputs were built from; stamp: a number that increases with every fresh
        state (a sensor timestamp or a sequence counter), checked by the watchdog. `self.actions` holds the same
        targets as actions for a driver that takes actions. Never raises for a fault; never writes NaN."""
        state_ok = self._read_state(joint_pos, joint_vel, stamp)
        policy_ok = False
        try:
            before = self.runtime.nonfinite_count
            self.runtime.act_into(inputs, task_obs, self._raw)
            if self.runtime.nonfinite_count != before:  # a nonfinite="zeros" runtime: zeros, not the policy
                self._fault("nonfinite_action")
            else:
                policy_ok = True
        except NonFiniteActionsError as exc:
            self.last_error = str(exc)
            self._fault("nonfinite_action")
        except InputError as exc:
            self.last_error = str(exc)
            self._fault("nonfinite_input" if not _finite_inputs(inputs, task_obs) else "runtime_error")
        except TTDeployError as exc:
            self.last_error = str(exc)
            self._fault("runtime_error")
        return self._step(policy_ok, state_ok, out)

    def filter_actions(self, actions: np.ndarray, out: np.ndarray | None = None, *, joint_pos: np.ndarray,
                       joint_vel: np.ndarray, stamp: float) -> np.ndarray:
        """`act` for actions from any other source (another policy, a teleoperator, a test): the same state
        checks, modes and guards; non-finite actions are the `nonfinite_action` fault, actions outside
        [-action_clamp, action_clamp] the `action_range` fault (a SkillRuntime's never are: its graphs clamp)."""
        state_ok = self._read_state(joint_pos, joint_vel, stamp)
        a = np.asarray(actions)
        if a.size != self.num_joints:
            raise InputError(f"actions must have {self.num_joints} values; got shape {a.shape}")
        np.copyto(self._raw, a.reshape(1, -1), casting="unsafe")
        policy_ok = bool(np.isfinite(self._raw[0], out=self._ok).all())
        if not policy_ok:
            self._fault("nonfinite_action")
        elif np.abs(self._raw[0]).max() > self.config.action_clamp * (1 + _RANGE_SLACK):
            policy_ok = False
            self._fault("action_range")
        return self._step(policy_ok, state_ok, out)

    def _read_state(self, joint_pos, joint_vel, stamp) -> bool:
        """Copy the joint state in; the state faults (damping) of this call. True when q and qdot are finite."""
        n = self.num_joints
        for name, x in (("joint_pos", joint_pos), ("joint_vel", joint_vel)):
            if not isinstance(x, np.ndarray) or x.size != n:
                raise InputError(f"{name} must be a numpy array of {n} values")
        np.copyto(self._q, joint_pos.reshape(n), casting="unsafe")
        np.copyto(self._qd, joint_vel.reshape(n), casting="unsafe")
        self.steps += 1
        cfg = self.config
        try:
            fresh = float(stamp) > self._stamp
        except (TypeError, ValueError):
            fresh = False
        if fresh:
            self._stamp, self._stale = float(stamp), 0
        else:
            self._stale += 1
        ok = bool(np.isfinite(self._q, out=self._ok).all() and np.isfinite(self._qd, out=self._ok).all())
        if not ok:
            self._fault("nonfinite_state")
        elif cfg.breach_tolerance is not None and not (
            np.greater_equal(self._q, self._breach_lo, out=self._ok).all()
            and np.less_equal(self._q, self._breach_hi, out=self._ok).all()
        ):
            self._fault("joint_breach")
        if cfg.watchdog_periods is not None and self._stale >= cfg.watchdog_periods:
            self._fault("stale_state")
        return ok

    def _step(self, policy_ok: bool, state_ok: bool, out) -> np.ndarray:
        cfg = self.config
        if policy_ok:  # the policy's PD targets
            np.copyto(self._a, self._raw[0])
            np.clip(self._a, self._amin, self._amax, out=self._a)
            np.multiply(self._scale, self._a, out=self._policy)
            np.add(self._policy, self._offset, out=self._policy)
        healthy = policy_ok and state_ok and self._fault_call != self.steps
        if self.mode is Mode.DAMPING and healthy:
            self._healthy += 1
            if self._resume_pending or (cfg.resume_periods is not None and self._healthy >= cfg.resume_periods):
                self._begin_ramp(state_ok)
        elif self.mode is Mode.STANDBY and self._start_pending and healthy:
            self._begin_ramp(state_ok)
        if self.mode is Mode.STANDBY and self._hold_pending:
            np.copyto(self._from, self._q if state_ok else (self.targets if self._has_last else self._default))
            self._hold_pending = False
        # the mode's target
        mode = self.mode
        if mode is Mode.DAMPING:
            np.copyto(self._want, self._hold if cfg.damping_target == "hold" else self._default)
        elif mode is Mode.STANDBY:
            np.copyto(self._want, self._from)
        elif mode is Mode.RAMP:  # phase 1: measured pose -> default pose; phase 2: default pose -> policy
            self._ramp_k += 1
            k, n1 = self._ramp_k, self._ramp_steps
            if k <= n1:
                start, end, alpha = self._from, self._default, k / n1
            else:
                start, end, alpha = self._default, self._policy, min(1.0, (k - n1) / self._blend_steps)
            np.subtract(end, start, out=self._want)
            np.multiply(self._want, alpha, out=self._want)
            np.add(self._want, start, out=self._want)
            if k >= n1 + self._blend_steps:
                self._enter(Mode.POLICY)
        else:
            np.copyto(self._want, self._policy)
        self._guard(state_ok)
        if out is not None:
            if not isinstance(out, np.ndarray) or out.size != self.num_joints or not out.flags.c_contiguous:
                raise InputError(f"out must be a C-contiguous numpy array of {self.num_joints} values")
            np.copyto(out.reshape(self.num_joints), self.targets, casting="same_kind")
            return out
        return self.targets

    def _changed(self, kind: str, x: np.ndarray) -> None:
        if not np.equal(x, self._prev, out=self._ok).all():
            self.clips[kind] += 1

    def _guard(self, state_ok: bool) -> None:
        """rate -> torque -> position limits on self._want, into self.targets / self.actions."""
        cfg, x = self.config, self._want
        if not self._has_last:  # the first target moves from the measured pose (or the default pose)
            np.copyto(self.targets, self._q if state_ok else self._default)
        rate = cfg.damping_rate_limit if self.mode is Mode.DAMPING else cfg.rate_limit
        if rate is not None:
            np.copyto(self._prev, x)
            np.subtract(self.targets, rate, out=self._a)
            np.add(self.targets, rate, out=self._b)
            np.clip(x, self._a, self._b, out=x)
            self._changed("rate", x)
        if self._tau is not None and state_ok:  # kp (t - q) - kd qd in [-tau, tau]
            np.copyto(self._prev, x)
            np.multiply(self._kd, self._qd, out=self._a)
            np.multiply(self._a, self._inv_kp, out=self._a)
            np.add(self._a, self._q, out=self._a)  # q + kd qd / kp: the zero-torque target
            np.subtract(self._a, self._tau, out=self._b)
            np.add(self._a, self._tau, out=self._a)
            np.clip(x, self._b, self._a, out=x)
            self._changed("torque", x)
        if cfg.position_limits:
            np.copyto(self._prev, x)
            np.clip(x, self._lo, self._hi, out=x)
            self._changed("position", x)
        if not np.isfinite(x, out=self._ok).all():  # cannot happen by construction; never send it
            self.clips["nonfinite_target"] += 1
            np.copyto(x, self.targets if self._has_last else self._default)
        np.copyto(self.targets, x)
        self._has_last = True
        np.subtract(x, self._offset, out=self._a)
        np.divide(self._a, self._scale, out=self._a)
        np.clip(self._a, self._amin, self._amax, out=self._a)
        np.copyto(self.actions[0], self._a, casting="same_kind")

    # --- status -------------------------------------------------------------------------------------
    def status(self) -> dict:
        """Mode, fault counters (calls that saw each fault), guard counters (calls where a guard changed a
        target), mode entries, the call count, the stale periods now and the last fault / error."""
        return {
            "mode": self.mode.value, "steps": self.steps, "faults": dict(self.faults), "clips": dict(self.clips),
            "entries": dict(self.entries), "stale_periods": self._stale, "last_fault": self.last_fault,
            "last_error": self.last_error, "damping_step": self.damping_step,
        }  # fmt: skip


__all__ = ["SafetyLayer", "SafetyConfig", "Mode", "FAULTS", "CLIPS", "joint_limits"]
