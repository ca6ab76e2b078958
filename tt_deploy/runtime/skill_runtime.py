"""`SkillRuntime`: torch-free, low-latency actions from a deploy bundle for a robot controller.

All loading and checking happens in the constructor (manifest schema; the sha256 of every graph it
loads - ONNX file or TensorRT engine - and of each loaded skill's skill.json where the manifest records
one; graph metadata and I/O); a bundle file it does not load is not checked. The call path only
validates the caller's arrays and runs ONNX Runtime. Several skills stay resident: `switch(skill)`
swaps a pointer, never a session.

Batch-1 fast path (`act_into`): per skill, one C-contiguous buffer per graph input (the float32 ones in one
arena) and one output buffer are bound to the session once (IOBinding, at the skill's first act_into); a call
checks each array's type, dtype and shape, copies it into its buffer, checks the whole float arena for NaN/inf
in one pass, runs the binding and copies the actions out. Whatever that path does not accept - an unknown or
missing name, a wrong dtype or shape, NaN/inf, a visible token the graph would drop, a hidden prior prompt -
goes to the full path (`_run`), which raises the same typed error it always did.

Modes: "fused" runs one graph per skill (encoder + BFM, specialised to the skill's visible
token groups); "split" runs the skill's encoder.onnx then the shared bfm.onnx (one BFM session
for every skill). Both give the same actions for the same inputs.

Shared BFM in fused mode (`share_bfm`): each fused graph carries its own copy of the BFM weights and
ONNX Runtime pre-packs every copy per session (a paper-size BFM: ~50 MB + ~50 MB per skill). Python
ONNX Runtime cannot share pre-packed weights between sessions (no PrepackedWeightsContainer), and
sharing plain initializers with pre-packing disabled measured ~60 % slower. So skills with the same
visible groups instead run encoder.onnx into one session of the bundle's specialised BFM graph
(the same graph minus the encoder: identical actions, one extra small session run per call).

Input semantics (same as the PyTorch BFM): a maskable group that is absent is hidden; a group
given without its mask is visible; obs and terrain are required. A graph that dropped a group
accepts it only if it is fully hidden: visible tokens are never dropped silently.

Prior prompts: a skill trained with its prior prompt visible (skill.json `task_prior`) must get it at
every call - `masked_mimic_target_poses` with some visible token in every sample, built by
`tt_deploy.obs.priors.make_prior(task_prior["name"], num_envs, **task_prior["params"])`. A call
without it raises InputError, unless the runtime was opened with `allow_hidden_prior=True` (a
documented opt-out: the skill then runs off its training distribution).

Safety: every call checks the actions it returns; NaN or inf raises NonFiniteActionsError naming the
skill (`nonfinite="raise"`), or, with `nonfinite="zeros"`, returns all-zero actions - PD targets at
the default pose offsets, the documented safe fallback - and counts it in `nonfinite_count`. A runtime
is not thread-safe: a call that overlaps another call on the same runtime raises ConcurrentUseError
(one non-blocking lock check per call) instead of returning silently wrong actions; use one runtime
per thread.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from tt_deploy.errors import (
    BundleError,
    ConcurrentUseError,
    InputError,
    NonFiniteActionsError,
    TTDeployError,
    UnknownNameError,
)
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.base import ChainedRunner, GraphRunner
from tt_deploy.runtime.session import GraphSession, SessionConfig, resolve_backend
from tt_deploy.runtime.verdicts import gate_problems

_DTYPES = {"float32": np.dtype(np.float32), "bool": np.dtype(np.bool_)}

log = logging.getLogger(__name__)
MODES = ("fused", "split")
NONFINITE = ("raise", "zeros")  # what a call does when a graph returns NaN/inf actions


_ALIGN = 16  # float32 elements: every bound buffer in a _BoundCall arena starts on a 64-byte boundary
_PRIOR_PROMPT = ("masked_mimic_target_poses", "masked_mimic_target_poses_masks")  # what a task prior fills
_MAX_PLANS = 32  # input-name tuples a _BoundCall remembers (a controller uses one or two)


def _bind_runner(runner: GraphRunner, feeds: dict[str, np.ndarray], out: np.ndarray):
    """A no-argument call running `runner` from the fixed buffers `feeds` into `out`.

    Bound once where the runner offers it (`GraphSession.bound_runner`: CPU execution provider; GPU providers
    rebind per call because they copy a bound host input at bind time); an ONNX Runtime encoder + head chain is
    bound as two bindings sharing a token buffer; any other runner (TensorRT, OpenVINO) gets `run_into` on the
    same buffers."""
    if isinstance(runner, ChainedRunner) and all(hasattr(r, "bound_runner") for r in (runner.encoder, runner.head)):
        (token_spec,) = runner.encoder.outputs
        token = np.zeros((1, int(token_spec.shape[-1])), np.float32)
        encode = runner.encoder.bound_runner({t.name: feeds[t.name] for t in runner.encoder.inputs}, token)
        head_feeds = {n: token if n == runner.token_name else feeds[n] for n in runner.head.input_names}
        head = runner.head.bound_runner(head_feeds, out)

        def chained() -> None:
            encode()
            head()

        return chained
    bind = getattr(runner, "bound_runner", None)
    if bind is not None:
        return bind(feeds, out)
    return functools.partial(runner.run_into, feeds, out)


class _Plan:
    """What act_into does for one tuple of input names (built once per tuple, by `_BoundCall._plan`).

    entries: per caller input, in the caller's order, (dtype, sample shape, batch-1 shape, bound buffer or None
    when the graph does not take it). floats_unbound / hidden / shown: indices of the caller arrays that are
    only checked for NaN/inf / must have no visible token / must show some token (prior prompt). defaults:
    (buffer, fill) of the graph inputs the caller left out, written when the plan changes - exactly what
    `SkillRuntime._default` feeds (hidden group: zeros and mask False; a group given without its mask: True)."""

    __slots__ = ("entries", "floats_unbound", "hidden", "shown", "defaults")

    def __init__(self, entries, floats_unbound, hidden, shown, defaults):
        self.entries, self.floats_unbound, self.hidden, self.shown = entries, floats_unbound, hidden, shown
        self.defaults = defaults


class _BoundCall:
    """act_into's batch-1 fast path for one skill's runner: bound buffers, the checks it can make without
    building feeds, and its stages (`check`, `fill`, `finite`, `run`, `read`; ttdeploy bench --breakdown times
    each). Every method returns None / False instead of raising: the caller then takes the full path, which
    raises the typed error."""

    def __init__(self, rt: SkillRuntime, skill: str, runner: GraphRunner):
        sk = rt.skills[skill]
        self.task_obs_name = rt.manifest.task_obs_name
        expected = {**rt._expected_io, self.task_obs_name: ((sk.task_obs_dim,), "float32")}
        names = tuple(runner.input_names)
        self.usable = all(n in expected for n in names) and self.task_obs_name in names
        if not self.usable:
            return
        self._expected = {k: (_DTYPES[dt], sample, (1, *sample)) for k, (sample, dt) in expected.items()}
        self._groups, self._masks, self._takes = rt._groups, rt._masks, set(names)
        self._prior = sk.task_prior is not None and not rt.allow_hidden_prior
        floats = [n for n in names if self._expected[n][0] == np.float32]
        sizes = {n: int(np.prod(self._expected[n][2])) for n in floats}
        total = sum(-(-sizes[n] // _ALIGN) * _ALIGN for n in floats)
        raw = np.zeros(total + _ALIGN, np.float32)
        start = (-raw.ctypes.data % (4 * _ALIGN)) // 4
        self._arena = raw[start : start + total]  # every float32 input: one NaN/inf check per call
        self._fin = np.empty(total, np.bool_)
        self.buffers: dict[str, np.ndarray] = {}
        offset = 0
        for n in names:
            dtype, _, shape = self._expected[n]
            if n in sizes:
                self.buffers[n] = self._arena[offset : offset + sizes[n]].reshape(shape)
                offset += -(-sizes[n] // _ALIGN) * _ALIGN
            else:
                self.buffers[n] = np.zeros(shape, dtype)
        self._obs = self.buffers[self.task_obs_name]
        self._obs_expect = self._expected[self.task_obs_name]
        self._out = np.zeros((1, rt.manifest.action_dim), np.float32)
        self._flat, self._fin_out = self._out[0], np.empty(rt.manifest.action_dim, np.bool_)
        self.run = _bind_runner(runner, self.buffers, self._out)
        self._plans: dict[tuple, _Plan | None] = {}
        self._last: _Plan | None = None  # the plan whose defaults the buffers hold

    def _plan(self, keys: tuple) -> _Plan | None:
        """The plan for these caller input names, or None where the full path must decide (it raises or runs)."""
        given = set(keys)
        if len(given) != len(keys) or not all(type(k) is str and k in self._expected for k in keys):
            return None
        if self.task_obs_name in given:  # task_obs is its own argument; the full path names the mistake
            return None
        entries = tuple((*self._expected[k], self.buffers.get(k)) for k in keys)
        floats_unbound = tuple(i for i, (dt, _, _, buf) in enumerate(entries) if buf is None and dt == np.float32)
        index = {k: i for i, k in enumerate(keys)}
        hidden = []
        for g in self._groups.values():
            data, mask = g.name in given, g.mask_name is not None and g.mask_name in given
            taken = g.name in self._takes
            if data and not mask and not taken:  # visible tokens the graph drops
                return None
            if mask and (not data or not taken):  # mask without data, or a dropped group: must be all hidden
                hidden.append(index[g.mask_name])
            if g.mask_name is None and taken and not data:  # a required group is missing
                return None
        shown = []
        if self._prior:
            g, m = _PRIOR_PROMPT
            if g not in given:
                return None
            if m in given:
                shown.append(index[m])
        defaults = []
        for n in self.buffers:
            if n in given or n == self.task_obs_name:
                continue
            visible = n in self._masks and self._masks[n].name in given  # a group given without its mask
            defaults.append((self.buffers[n], visible))
        return _Plan(entries, floats_unbound, tuple(hidden), tuple(shown), tuple(defaults))

    def check(self, inputs, task_obs):
        """(plan, the caller's arrays) when every type, dtype, shape, name and mask rule holds; else None."""
        if type(inputs) is not dict and not isinstance(inputs, Mapping):
            return None
        keys = tuple(inputs)
        plan = self._plans.get(keys, self)  # self: not planned yet
        if plan is self:
            plan = self._plan(keys)
            if len(self._plans) < _MAX_PLANS:
                self._plans[keys] = plan
        if plan is None:
            return None
        values = tuple(inputs.values())
        if len(values) != len(plan.entries):
            return None
        for (dtype, sample, batched, _), x in zip(plan.entries, values):
            if type(x) is not np.ndarray or x.dtype is not dtype or (x.shape != sample and x.shape != batched):
                return None
        dtype, sample, batched = self._obs_expect
        x = task_obs
        if type(x) is not np.ndarray or x.dtype is not dtype or (x.shape != sample and x.shape != batched):
            return None
        for i in plan.floats_unbound:  # given but not fed (a hidden, dropped group): still no NaN/inf
            if not np.isfinite(values[i]).all():
                return None
        for i in plan.hidden:
            if values[i].any():
                return None
        for i in plan.shown:
            if not values[i].any():
                return None
        return plan, values

    def fill(self, plan: _Plan, values: tuple, task_obs: np.ndarray) -> None:
        """Copy the caller's arrays into the bound buffers; the left-out inputs' defaults when the plan changed."""
        if plan is not self._last:
            for buf, fill in plan.defaults:
                buf.fill(fill)
            self._last = plan
        for (_, _, _, buf), x in zip(plan.entries, values):
            if buf is not None:
                np.copyto(buf, x)
        np.copyto(self._obs, task_obs)

    def finite(self) -> bool:
        """No NaN/inf in any bound float32 input (one pass over the arena)."""
        return np.count_nonzero(np.isfinite(self._arena, out=self._fin)) == self._fin.size  # ~0.8 us under .all()

    def read(self, out: np.ndarray) -> bool:
        """Copy the actions into `out`; True when they are all finite."""
        np.copyto(out, self._flat)
        return np.count_nonzero(np.isfinite(self._flat, out=self._fin_out)) == self._fin_out.size


def release_freed_heap() -> None:
    """Give heap memory freed while loading (graph bytes, protobuf parse buffers) back to the OS.

    Why: glibc keeps it, so the RSS of identically loaded runtimes varied by +-20 MB with a paper-size
    BFM, hiding what a resident skill really costs. glibc only (malloc_trim); a no-op elsewhere.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


TRT_PRECISIONS = ("tf32", "fp16")  # TensorRT's build precisions of the fp32 graphs (native engines / TRT EP)
# the graph precisions, bf16 (OpenVINO's compile option on fp32 graphs) and TensorRT's
PRECISIONS = (*mf.PRECISIONS, "bf16", *TRT_PRECISIONS)


def _check_precision(precision: str, backend: str, mode: str, share_bfm: bool | None,
                     config: SessionConfig | None = None) -> str:
    """The precision this runtime computes in; its closed-loop gate applies whenever it is not fp32.

    int8 runs the skills' own int8 fused graphs on ONNX Runtime; bf16 compiles the fp32 graphs with OpenVINO;
    tf32 / fp16 are TensorRT's (native engines built at that precision, or fp16 in ONNX Runtime's TensorRT EP).
    A TensorRT precision asked through SessionConfig(trt_precision=...) counts as asked: it is gated too."""
    if precision not in PRECISIONS:
        raise UnknownNameError("precision", precision, PRECISIONS)
    asked = (config.trt_precision if config is not None else None) or "fp32"
    if precision == "fp32" and backend in ("trt", "ort-trt") and asked in TRT_PRECISIONS:
        precision = asked
    elif precision in TRT_PRECISIONS and asked not in ("fp32", precision):
        raise InputError(f"precision {precision!r} and SessionConfig(trt_precision={asked!r}) disagree: pass one")
    if precision == "bf16" and backend != "openvino":
        raise InputError("precision 'bf16' is OpenVINO's: open the runtime with backend='openvino'")
    if precision in TRT_PRECISIONS:
        if backend not in ("trt", "ort-trt"):
            raise InputError(f"precision {precision!r} is TensorRT's: open the runtime with backend='trt' (engines "
                             f"built with `ttdeploy export --format trt --precision {precision}`) or 'ort-trt'")
        if backend == "ort-trt" and precision != "fp16":
            raise InputError(f"ONNX Runtime's TensorRT EP offers fp16 only (trt_fp16_enable); {precision!r} needs "
                             "backend='trt'")
    if precision in mf.PRECISIONS and precision != "fp32":
        if backend in ("trt", "openvino"):
            raise InputError(f"precision {precision!r} runs ONNX Runtime graphs (backend auto / ort-*); TensorRT "
                             f"runs {' / '.join(TRT_PRECISIONS)}")
        if mode != "fused" or share_bfm:
            raise InputError(f"precision {precision!r} exists for fused graphs only: use mode='fused' without share_bfm")
    return precision


def _require_precision_gate(sk: mf.SkillManifest, precision: str, manifest: mf.BundleManifest) -> None:
    """A reduced-precision skill ships only with a passing closed-loop verdict in its skill.json that measured
    these very graphs, with at least the documented evidence (runtime/verdicts.py)."""
    problems = gate_problems((sk.precision_gates or {}).get(precision), sk, manifest)
    if problems:
        raise InputError(
            f"skill {sk.name!r} at {precision} has no closed-loop verdict that unlocks it (skill.json precision_gates: "
            f"{'; '.join(problems)}); run `ttdeploy sim2sim --skill {sk.name} --precision {precision}"
            f"{' --backend openvino' if precision == 'bf16' else ' --backend trt' if precision in TRT_PRECISIONS else ''}"
            "` first, or open the runtime "
            "with allow_unverified_precision=True to measure it"
        )


class SkillRuntime:
    """Actions (69,) in [-1, 1] from observations, for one active skill of a bundle.

    bundle_dir: exported bundle. backend: "auto" | "trt" | "ort-trt" | "ort-cuda" | "ort-cpu" (the pick is
    `self.backend`). skills: resident skills (None = all). mode: "fused" | "split". batch: 1 loads
    the static batch-1 graphs; any other int or None loads the dynamic-batch graphs (act_batch).
    share_bfm (fused mode, ONNX Runtime backends): None = share one specialised BFM session between
    resident skills with the same visible groups when there are two or more of them; True = always
    (also for one skill); False = never (one self-contained fused graph per skill).
    nonfinite: "raise" (NonFiniteActionsError) or "zeros" (all-zero actions = the default pose) when a
    graph returns NaN/inf actions.
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        backend: str = "auto",
        skills: list[str] | tuple[str, ...] | None = None,
        mode: str = "fused",
        batch: int | None = 1,
        *,
        config: SessionConfig | None = None,
        share_bfm: bool | None = None,
        allow_hidden_prior: bool = False,
        nonfinite: str = "raise",
        precision: str = "fp32",
        allow_unverified_precision: bool = False,
    ) -> None:
        if mode not in MODES:
            raise UnknownNameError("runtime mode", mode, MODES)
        if nonfinite not in NONFINITE:
            raise UnknownNameError("nonfinite policy", nonfinite, NONFINITE)
        self.nonfinite, self.nonfinite_count = nonfinite, 0
        self._busy = threading.Lock()  # detects overlapping calls; never waited on
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise InputError(f"batch must be a positive int or None; got {batch!r}")
        self.bundle_dir, self.mode, self.batch = Path(bundle_dir), mode, batch
        self.allow_hidden_prior = bool(allow_hidden_prior)
        self.manifest = mf.read_manifest(self.bundle_dir)
        self.backend, self.provider = resolve_backend(backend, self.manifest)
        self.config = config or SessionConfig()
        self.precision = _check_precision(precision, self.backend, mode, share_bfm, self.config)
        if self.backend in ("trt", "ort-trt"):  # TensorRT builds at exactly the gated precision, fp32 by default
            self.config = replace(self.config, trt_precision=self.precision if self.precision in TRT_PRECISIONS
                                  else "fp32")
        names = list(self.manifest.skills if skills is None else skills)
        for s in names:
            if s not in self.manifest.skills:
                raise UnknownNameError("skill", s, self.manifest.skills)
        if not names:
            raise InputError("no skills to load: the bundle or the skills argument is empty")
        self._groups = {g.name: g for g in self.manifest.token_groups}
        self._masks = {g.mask_name: g for g in self.manifest.token_groups if g.mask_name}
        # per-sample (shape, dtype) of every group and mask input, built once: act looks it up per input
        self._expected_io: dict[str, tuple[tuple[int, ...], str]] = {
            **{g.name: ((g.feat_dim,) if g.n_tokens == 1 else (g.n_tokens, g.feat_dim), "float32")
               for g in self.manifest.token_groups},
            **{name: ((g.n_tokens,), "bool") for name, g in self._masks.items()},
        }  # fmt: skip
        self.skills: dict[str, mf.SkillManifest] = {s: self._load_skill(s) for s in names}
        if self.precision != "fp32" and not allow_unverified_precision:
            for s in names:
                _require_precision_gate(self.skills[s], self.precision, self.manifest)
        self._trt = None
        if self.backend == "trt" and share_bfm:
            raise InputError("share_bfm=True needs an ONNX Runtime backend, not native TensorRT")
        self._runners: dict[str, GraphRunner] = self._build_runners(names, share_bfm, dynamic=batch != 1)
        self._zeros: dict[str, np.ndarray] = {}
        self._bound: dict[str, _BoundCall] = {}  # skill -> act_into's bound fast path, built at its first call
        self._active = self.manifest.default_skill if self.manifest.default_skill in names else names[0]
        self._closed = False
        release_freed_heap()
        log.info(
            "SkillRuntime: %s, mode %s, backend %s, skills %s, shared BFM for %s", self.bundle_dir, mode,
            self.backend, names, sorted(s for s, r in self._runners.items() if self.mode == "fused" and
                                        isinstance(r, ChainedRunner)) or "none",
        )

    # --- loading ----------------------------------------------------------------------------------
    def _build_runners(self, names: list[str], share_bfm: bool | None, dynamic: bool) -> dict[str, GraphRunner]:
        """skill -> the GraphRunner its calls go through: chosen here, once, by backend and mode."""
        if self.backend == "trt":  # native TensorRT engines (trt_backend): fused or device-chained split
            from tt_deploy.runtime.trt_backend import TrtBackend

            self._trt = TrtBackend(self.bundle_dir, self.manifest, names, mode=self.mode, dynamic=dynamic,
                                   precision=self.config.trt_precision)  # fmt: skip
            return dict(self._trt.sessions)
        names_ = {"task_obs_name": self.manifest.task_obs_name, "token_name": self.manifest.task_token_name}
        if self.mode == "split":  # every skill's encoder into the one full BFM session
            bfm = self._session("bfm", None, dynamic)
            return {s: ChainedRunner(self._session("encoder", s, dynamic), bfm, **names_) for s in names}
        shared = self._shared_heads(self._shared_skills(names, share_bfm, dynamic), dynamic)
        return {
            s: ChainedRunner(self._session("encoder", s, dynamic), shared[s], **names_) if s in shared
            else self._session("fused", s, dynamic)
            for s in names
        }  # fmt: skip

    def _session(self, role: str, skill: str | None, dynamic: bool) -> GraphSession:
        # int8 has fused graph files of its own; bf16 compiles the fp32 files (OpenVINO)
        own_file = role == "fused" and self.precision in mf.PRECISIONS
        spec = self.manifest.graph(role, skill, dynamic, self.precision if own_file else "fp32")
        # an encoder is a small MLP: one thread, so that with spinning enabled its idle pool does not
        # spin against the BFM session's (measured, paper BFM, 2 cores: the chained encoder + BFM went
        # from 3.3 to 7.0 ms p50 when both pools spun)
        return self._open(spec, replace(self.config, intra_op_threads=1) if role == "encoder" else self.config)

    def _open(self, spec: mf.GraphSpec, config: SessionConfig):
        """One graph as a runner of this runtime's backend: ONNX Runtime, or OpenVINO at the asked precision."""
        if self.backend == "openvino":
            from tt_deploy.runtime.openvino_backend import OpenVinoSession

            return OpenVinoSession(self.bundle_dir, spec, config, self.manifest.bfm.sha256, self.manifest.content,
                                   precision="bf16" if self.precision == "bf16" else "fp32")  # fmt: skip
        return GraphSession(
            self.bundle_dir, spec, self.provider, config, self.manifest.bfm.sha256, self.manifest.content
        )

    def _shared_skills(self, names: list[str], share_bfm: bool | None, dynamic: bool) -> set[str]:
        """Resident skills that will run encoder.onnx + a shared specialised BFM session."""
        if share_bfm is False or self.precision == "int8":  # int8 graphs: the skills' own fused ones
            return set()
        by_groups: dict[tuple[str, ...], list[str]] = {}
        for s in names:
            by_groups.setdefault(self.skills[s].visible_groups, []).append(s)
        shared = set()
        for groups, members in by_groups.items():
            if share_bfm is None and len(members) < 2:
                continue
            if self.manifest.specialised_bfm(groups, dynamic) is None:
                if share_bfm:
                    raise BundleError(
                        f"bundle {self.bundle_dir} has no {mf.specialised_bfm_file(groups, dynamic)} (exported "
                        "before shared BFM graphs existed); re-export it to use share_bfm"
                    )
                log.info("no specialised BFM graph for %s in this bundle: one fused graph per skill", groups)
                continue
            shared.update(members)
        return shared

    def _shared_heads(self, shared: set[str], dynamic: bool) -> dict[str, GraphSession]:
        """skill -> its specialised BFM session; one session per distinct visible-group set."""
        sessions: dict[str, GraphSession] = {}
        heads = {}
        for s in sorted(shared):
            spec = self.manifest.specialised_bfm(self.skills[s].visible_groups, dynamic)
            if spec.path not in sessions:
                sessions[spec.path] = self._open(spec, self.config)
            heads[s] = sessions[spec.path]
        return heads

    def _load_skill(self, name: str) -> mf.SkillManifest:
        sk = mf.read_skill(self.bundle_dir, name, self.manifest)  # the version this manifest names
        if sk.bfm_sha256 != self.manifest.bfm.sha256:
            raise BundleError(f"skill {name!r} was exported for another BFM; re-export it into this bundle")
        encoder = self.manifest.graph("encoder", name, False)
        width = {t.shape[-1] for t in encoder.inputs if t.name == self.manifest.task_obs_name}
        if width != {sk.task_obs_dim} or sk.encoder.obs_dim != sk.task_obs_dim:
            raise BundleError(
                f"skill {name!r}: skill.json says task_obs_dim {sk.task_obs_dim} (encoder obs_dim {sk.encoder.obs_dim}) "
                f"but its encoder graph takes {sorted(width)}; skill.json was edited - re-export the skill"
            )
        fused = self.manifest.graph("fused", name, False)
        takes = {t.name for t in fused.inputs} - {self.manifest.task_obs_name} - set(self._masks)
        if takes != set(sk.visible_groups):
            raise BundleError(
                f"skill {name!r}: skill.json says the visible token groups are {sorted(sk.visible_groups)} but its fused "
                f"graph takes {sorted(takes)}; skill.json or manifest.json was edited - re-export the skill"
            )
        listed = {g.path: g.sha256 for g in self.manifest.graphs if g.skill == name}
        if sk.graphs != listed:
            raise BundleError(
                f"skill {name!r}: graph hashes in skill.json and manifest.json disagree; a file was "
                "replaced or a manifest edited - re-export the skill"
            )
        return sk

    # --- metadata ---------------------------------------------------------------------------------
    @property
    def active(self) -> str:
        """The skill whose encoder currently produces the task token."""
        return self._active

    def _require_open(self) -> None:
        if self._closed:
            raise TTDeployError("this SkillRuntime is closed; create a new one")

    @property
    def inputs(self) -> tuple[mf.TensorSpec, ...]:
        """Inputs of the active skill's graph chain ("batch" = batch axis; act() takes them without it)."""
        self._require_open()
        return self._runners[self._active].inputs

    @property
    def outputs(self) -> tuple[mf.TensorSpec, ...]:
        """(actions,) of shape (batch, 69), float32, already clamped to [-1, 1]."""
        self._require_open()
        return self._runners[self._active].outputs

    def graphs(self, skill: str | None = None) -> tuple[str, ...]:
        """Bundle-relative graph files a skill (default: the active one) runs, in order, e.g.
        ("skills/reach/encoder.onnx", "bfm.obs+historical_pose_obs+terrain.onnx") when its BFM is shared."""
        self._require_open()
        skill = self._active if skill is None else skill
        if skill not in self._runners:
            raise UnknownNameError("resident skill", skill, self._runners)
        return self._runners[skill].graphs

    def threads(self, skill: str | None = None) -> dict[str, int | None]:
        """Intra-op threads of each graph a skill (default: the active one) runs: calibrated at load for a
        static graph on CPU when SessionConfig.intra_op_threads is None (runtime/session.py); None where the
        backend chooses (OpenVINO, TensorRT)."""
        self._require_open()
        skill = self._active if skill is None else skill
        if skill not in self._runners:
            raise UnknownNameError("resident skill", skill, self._runners)
        r = self._runners[skill]
        parts = (r.encoder, r.head) if isinstance(r, ChainedRunner) else (r,)
        return {g: getattr(p, "intra_op_threads", None) for p in parts for g in p.graphs}

    # --- skill switching --------------------------------------------------------------------------
    def switch(self, skill: str) -> None:
        """Make `skill` active. O(1): every resident skill's session was created in the constructor."""
        self._require_open()
        if skill not in self._runners:
            raise UnknownNameError("resident skill", skill, self._runners)
        self._active = skill

    # --- validation -------------------------------------------------------------------------------
    def _expected(self, name: str) -> tuple[tuple[int, ...], str]:
        """Per-sample shape and dtype of a token-group or mask input."""
        if name in self._expected_io:
            return self._expected_io[name]
        known = [*self._groups, *self._masks]
        raise InputError(
            f"unknown input {name!r}; inputs are {', '.join(known)} and task_obs (separate argument)"
        )

    def _check(self, name: str, x, sample: tuple[int, ...], dtype: str, batch: int | None) -> np.ndarray:
        """Validated array with a leading batch axis; batch None = per-sample or batch-1 (act)."""
        if type(x) is not np.ndarray:  # subclasses (np.ma.MaskedArray) can hide values the graph would read
            raise InputError(
                f"input {name!r} must be a plain numpy.ndarray, got {type(x).__module__}.{type(x).__name__}; "
                "convert it with np.asarray (fill masked values first)"
            )
        if x.dtype != _DTYPES[dtype]:  # dtype objects, not .name: ~3 us a call cheaper
            order = "" if x.dtype.isnative else f" in non-native byte order ({x.dtype.str})"
            raise InputError(
                f"input {name!r} must have dtype {dtype}, got {x.dtype.name}{order}; convert it with x.astype(np.{dtype})"
            )
        if batch is None:
            if x.shape == sample:
                x = x.reshape((1, *sample))
            elif x.shape != (1, *sample):
                raise InputError(f"input {name!r} must have shape {sample} or {(1, *sample)}, got {x.shape}")
        elif x.ndim != len(sample) + 1 or x.shape[1:] != sample:
            raise InputError(
                f"input {name!r} must have shape (B, {', '.join(map(str, sample))}), got {x.shape}"
            )
        if dtype == "float32" and not np.isfinite(x).all():
            raise InputError(f"input {name!r} contains NaN or inf")
        return x

    def _feeds(self, inputs: Mapping[str, np.ndarray], task_obs, batch: int | None, graph: GraphRunner):
        """Feeds for `graph` (task_obs included) after validating every caller array."""
        if not isinstance(inputs, Mapping):
            raise InputError(f"inputs must be a mapping of input name -> array, got {type(inputs).__name__}")
        arrays = {k: self._check(k, v, *self._expected(k), batch) for k, v in inputs.items()}
        sk = self.skills[self._active]
        task_obs = self._check(self.manifest.task_obs_name, task_obs, (sk.task_obs_dim,), "float32", batch)
        n = task_obs.shape[0]
        if any(a.shape[0] != n for a in arrays.values()):
            raise InputError(
                f"all inputs need the same batch size; got { ({k: a.shape[0] for k, a in arrays.items()}) }"
            )
        takes = set(graph.input_names)
        self._reject_dropped_visible(arrays, takes)
        if sk.task_prior is not None and not self.allow_hidden_prior:
            self._require_prior(sk, arrays)
        feeds = {}
        for name in graph.input_names:
            if name in arrays:
                feeds[name] = arrays[name]
            elif name in self._groups or name in self._masks:
                feeds[name] = self._default(name, arrays, n)
        feeds[self.manifest.task_obs_name] = task_obs
        return feeds

    @staticmethod
    def _require_prior(sk: mf.SkillManifest, arrays: dict[str, np.ndarray]) -> None:
        """A skill trained beside its prior prompt refuses a call whose prompt is hidden in some sample."""
        g, m = _PRIOR_PROMPT
        shown = g in arrays and (m not in arrays or bool(arrays[m].reshape(arrays[m].shape[0], -1).any(-1).all()))
        if not shown:
            raise InputError(
                f"skill {sk.name!r} was trained with its {sk.task_prior.get('name')!r} prior prompt visible, but this "
                f"call hides {g!r}: build it every step from skill.json's task_prior with tt_deploy.obs.priors."
                "make_prior(task_prior['name'], num_envs, **task_prior['params']) (docs/embedding.md), or open the "
                "runtime with allow_hidden_prior=True"
            )

    def _reject_dropped_visible(self, arrays: dict[str, np.ndarray], takes: set[str]) -> None:
        for g in self._groups.values():
            data, mask = g.name in arrays, g.mask_name is not None and g.mask_name in arrays
            visible = (data and not mask) or (mask and bool(arrays[g.mask_name].any()))
            if mask and not data and visible:
                raise InputError(f"{g.mask_name!r} marks tokens visible but {g.name!r} was not given")
            if visible and g.name not in takes:
                raise InputError(
                    f"input {g.name!r} has visible tokens but skill {self._active!r}'s fused graph drops that group "
                    f"(it keeps {list(self.skills[self._active].visible_groups)}); hide it (mask all False), "
                    "leave it out, or use mode='split'"
                )

    def _default(self, name: str, arrays, n: int) -> np.ndarray:
        """Fill for a graph input the caller left out: a hidden group, or the mask of a given one (visible)."""
        if name in self._groups and self._groups[name].mask_name is None:
            raise InputError(f"input {name!r} is required")
        group = name if name in self._groups else self._masks[name].name
        sample, dtype = self._expected(name)
        if name in self._masks and group in arrays:
            return np.ones((n, *sample), bool)  # group given without its mask: visible
        key = f"{name}/{n}"
        if key not in self._zeros:
            self._zeros[key] = np.zeros((n, *sample), dtype)  # hidden: zeros + mask False
        return self._zeros[key]

    # --- inference --------------------------------------------------------------------------------
    def _acquire(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise ConcurrentUseError(
                "another thread is inside this SkillRuntime; it is not thread-safe - use one runtime per thread"
            )

    def _run(self, inputs, task_obs, batch: int | None, out: np.ndarray | None) -> np.ndarray:
        self._require_open()
        self._acquire()
        try:
            actions = self._run_graphs(inputs, task_obs, batch, out)
        finally:
            self._busy.release()
        if not np.isfinite(actions).all():
            return self._nonfinite(actions)
        return actions

    def _nonfinite(self, actions: np.ndarray) -> np.ndarray:
        self.nonfinite_count += 1
        actions[...] = 0.0  # also when raising: a caller's `out` never holds NaN PD targets
        if self.nonfinite == "raise":
            raise NonFiniteActionsError(
                f"skill {self._active!r} returned NaN/inf actions (call {self.nonfinite_count} with them); the "
                "bundle's weights or the inputs are broken - run `ttdeploy verify`, or open the runtime with "
                "nonfinite='zeros' to fall back to the default pose"
            )
        log.warning("skill %r returned NaN/inf actions: zeros (the default pose) instead", self._active)
        return actions

    def _run_graphs(self, inputs, task_obs, batch: int | None, out: np.ndarray | None) -> np.ndarray:
        runner = self._runners[self._active]
        feeds = self._feeds(inputs, task_obs, batch, runner)
        return runner.run(feeds) if out is None else runner.run_into(feeds, out)

    def act(self, inputs: Mapping[str, np.ndarray], task_obs: np.ndarray) -> np.ndarray:
        """(69,) float32 actions for one sample (a new array). Arrays with or without the batch-1 axis."""
        return self._run(inputs, task_obs, None, None)[0]

    def act_into(self, inputs: Mapping[str, np.ndarray], task_obs: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fast path of `act`: writes into `out`, a C-contiguous float32 (1, 69) or (69,) buffer, and returns it.

        The active skill's graph runs from buffers bound once (IOBinding): a call checks each array's type,
        dtype and shape, copies it in, checks every float input for NaN/inf in one pass, runs and copies the
        actions out; the same actions as `act`, bit for bit. Inputs that path does not accept go through the
        full one, which raises the typed InputError `act` raises.
        """
        self._check_out(out)
        self._require_open()
        call = self._bound.get(self._active) or self._bind(self._active)
        finite = None  # None: the fast path did not take this call
        self._acquire()
        try:
            checked = call.check(inputs, task_obs) if call.usable else None
            if checked is not None:
                call.fill(*checked, task_obs)
                if call.finite():
                    call.run()
                    finite = call.read(out)
        finally:
            self._busy.release()
        if finite is None:
            self._run(inputs, task_obs, None, out.reshape(1, -1))
        elif not finite:
            self._nonfinite(out)
        return out

    def _check_out(self, out) -> None:
        if not (type(out) is np.ndarray and out.dtype == np.float32 and out.flags.c_contiguous):
            raise InputError("out must be a C-contiguous float32 numpy.ndarray")
        if not out.flags.writeable:
            raise InputError("out is read-only; pass a writeable buffer, e.g. np.empty((1, 69), np.float32)")
        if out.size != self.manifest.action_dim:
            raise InputError(
                f"out must have shape (1, {self.manifest.action_dim}) or ({self.manifest.action_dim},)"
            )

    def _bind(self, skill: str) -> _BoundCall:
        """The skill's bound batch-1 fast path (buffers and IOBinding), made once at its first act_into."""
        call = self._bound[skill] = _BoundCall(self, skill, self._runners[skill])
        return call

    def act_into_stages(self, inputs: Mapping[str, np.ndarray], task_obs: np.ndarray, out: np.ndarray):
        """act_into's fast-path stages for these inputs as separate no-argument calls, in call order, for profiling
        (`ttdeploy bench --breakdown`): check (types, dtypes, shapes, names, masks), copy_in, finite (NaN/inf over
        the bound float inputs), run (the bound graph), copy_out (the actions into `out`, and their NaN/inf check).
        Calling them in order is one act_into without its out checks and thread guard. InputError where the fast
        path does not take these inputs."""
        self._check_out(out)
        self._require_open()
        call = self._bound.get(self._active) or self._bind(self._active)
        checked = call.check(inputs, task_obs) if call.usable else None
        if checked is None:
            raise InputError("act_into's fast path does not take these inputs (act_into would use the full path)")
        call.fill(*checked, task_obs)
        if not call.finite():
            raise InputError("the inputs contain NaN or inf")
        return {
            "check": lambda: call.check(inputs, task_obs),
            "copy_in": lambda: call.fill(*checked, task_obs),
            "finite": call.finite,
            "run": call.run,
            "copy_out": lambda: call.read(out),
        }

    def act_batch(self, inputs: Mapping[str, np.ndarray], task_obs: np.ndarray) -> np.ndarray:
        """(B, 69) float32 actions; every array has a leading batch axis B (B = 1 for batch=1 runtimes)."""
        n = task_obs.shape[0] if isinstance(task_obs, np.ndarray) and task_obs.ndim == 2 else None
        if n == 0:
            raise InputError("act_batch needs at least one sample; task_obs has batch 0")
        if self.batch == 1 and n != 1:
            raise InputError(
                "this runtime loaded the static batch-1 graphs; construct it with batch=None for act_batch"
            )
        if self.batch not in (1, None) and n != self.batch:
            raise InputError(f"this runtime was built for batch {self.batch}; task_obs has batch {n}")
        return self._run(inputs, task_obs, -1, None)

    # --- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Release every ONNX Runtime session; later calls raise TTDeployError."""
        if self._trt is not None:
            self._trt.close()
        self._runners.clear()
        self._bound.clear()
        self._closed = True

    def __enter__(self) -> SkillRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SkillRuntime({str(self.bundle_dir)!r}, backend={self.backend!r}, mode={self.mode!r}, active={self._active!r})"
