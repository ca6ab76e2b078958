"""`export_skill`: write (or extend) a deploy bundle atomically (DESIGN.md section 5).

Each export writes the next immutable version dir (`v<N>`, runtime/manifest.py) inside the bundle and
then replaces manifest.json in one rename: a reader sees the old bundle or the new one, a failed or
killed export leaves the old one untouched, and the next export removes what a crash left behind.
Skills already in the bundle are carried over (hard links, their files re-hashed against the old
manifest) as long as they were exported against the same BFM and opset; otherwise the user is told
to export to a new bundle dir or re-export every skill.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import tt_deploy
from tt_deploy import spec
from tt_deploy.errors import BundleError, InputError, TTDeployError, UnknownNameError
from tt_deploy.export.onnx_graphs import ALL_GROUPS, EXPORTER, BFMGraph, EncoderGraph, export_graph
from tt_deploy.export.precision import check_precisions, reduced_graphs
from tt_deploy.export.recorded_reference import write_reference
from tt_deploy.hashing import portable_path
from tt_deploy.models.bfm import BFM, count_parameters
from tt_deploy.models.checkpoints import (
    bfm_sha256,
    load_encoder,
    resolve_bfm,
    seeded_bfm,
    sha256_file,
    state_hash,
)
from tt_deploy.models.config import EncoderConfig
from tt_deploy.models.task_encoder import TaskEncoder
from tt_deploy.runtime import graph_contract as gc
from tt_deploy.runtime import manifest as mf

log = logging.getLogger(__name__)

DEFAULT_VISIBLE_GROUPS = ("obs", "historical_pose_obs", "terrain")  # + the task token


def task_obs_spec(skill: str) -> tuple[int, tuple[str, ...] | None]:
    """(task-obs dim, feature names or None) from the task registry (UnknownNameError lists the skills)."""
    from tt_deploy.tasks import registry

    task = registry.make_task(skill, 1)
    return int(task.obs_dim), task.obs_names


def task_obs_names(skill: str, obs_dim: int) -> tuple[str, ...] | None:
    """"name [unit]: formula" of each column of a `obs_dim`-wide task observation (with the current pose
    when the encoder was trained with it); None for a width the task does not make."""
    from tt_deploy.tasks import registry

    try:
        return registry.make_task_for(skill, 1, obs_dim).obs_names
    except InputError:
        return None


def _bfm_info(bfm: BFM, info: dict) -> mf.BFMInfo:
    """Identity of the BFM: file sha256 when loaded from a checkpoint, else the state hash."""
    path = info.get("path")
    sha, of = bfm_sha256(bfm, info)
    if path:
        # a package file as `tt_deploy/...` (portable_path): bundles travel, the exporting checkout's path does not
        source, ident = f"checkpoint {portable_path(path)}", Path(path).name
    else:
        ident = f"embedded-{bfm.config.name}"
        source = (
            "fresh seeded init (untrained) seed {}".format(info.get("seed"))
            if not info.get("pretrained")
            else "embedded pretrained"
        )
    return mf.BFMInfo(ident, sha, of, bfm.config.name, count_parameters(bfm), source)


def report_goal_records(goals: dict[str, dict | None], bfm_path, what: str) -> None:
    """Log, per trained skill, where its `goals` record names another abilities file than the one beside
    `bfm_path` now (tasks/goals.py check_goal_record): WARNING if that file would set other goals, else INFO."""
    from tt_deploy.tasks.goals import check_goal_record

    for skill, record in goals.items():
        found = check_goal_record(skill, record, bfm_path)
        if found is not None:
            log.log(found[0], "%s: %s", what, found[1])


def skill_seed(skill: str, seed: int) -> int:
    """Torch seed of a fresh encoder: mixes in the skill name so two untrained skills differ."""
    return (seed * 1_000_003 + zlib.crc32(skill.encode())) % 2**31


def _find_checkpoint(run_dir: Path) -> Path:
    for name in ("best.safetensors", "last.safetensors"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    raise BundleError(
        f"no checkpoints/best.safetensors or last.safetensors in run dir {run_dir}; train first"
    )


def build_encoder(skill, run_dir, bfm: BFM, bfm_sha: str, seed: int, obs_dim: int):
    """(encoder, EncoderInfo or None (fresh init), source text, weights sha256, sha256_of) from a run dir or a
    seeded fresh init."""
    if run_dir is None:
        torch_seed = skill_seed(skill, seed)
        torch.manual_seed(torch_seed)
        enc = TaskEncoder(EncoderConfig(obs_dim=obs_dim, token_dim=bfm.token_dim)).eval()
        source = f"fresh seeded init (untrained) seed {seed} (torch seed {torch_seed})"
        return enc, None, source, state_hash(enc), "state_hash"
    ckpt = _find_checkpoint(Path(run_dir))
    enc, info = load_encoder(ckpt)
    if info is None:
        raise BundleError(f"{ckpt} carries no training info (skill, BFM): not an encoder tt-deploy trained")
    if info.bfm_sha256 != bfm_sha:
        raise BundleError(
            f"{ckpt} was trained on BFM {info.bfm_sha256[:12]}..., but the BFM being exported is "
            f"{bfm_sha[:12]}...; pass the training BFM with --bfm"
        )
    if info.skill != skill:
        raise InputError(f"{ckpt} is a {info.skill!r} encoder, not {skill!r}")
    if enc.config.token_dim != bfm.token_dim:
        raise BundleError(f"{ckpt}: token_dim {enc.config.token_dim} != BFM d_model {bfm.token_dim}")
    steps = "unknown" if info.env_steps is None else info.env_steps
    source = f"trained run {portable_path(Path(run_dir))} steps {steps}"  # a package run as `tt_deploy/...`
    return enc.eval(), info, source, sha256_file(ckpt), "file"


def _visible_groups(trained_with: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Groups the fused graph keeps: the defaults and every group the encoder was trained to see (a run
    with its prior prompt records the target-pose group, which the controller then feeds each step)."""
    unknown = set(trained_with) - set(ALL_GROUPS)
    if unknown:
        raise BundleError(f"the run's visible_groups {sorted(unknown)} are not BFM token groups {list(ALL_GROUPS)}")
    keep = set(DEFAULT_VISIBLE_GROUPS) | set(trained_with)
    return tuple(g for g in ALL_GROUPS if g in keep)


def _export_graphs(
    out: Path, rel_dir: str, role_modules, *, opset, manifest, skill, task_prior=None, file_name=mf.graph_file
) -> list[mf.GraphSpec]:
    """Static and dynamic variant of each (role, module, last_dim) into out/rel_dir/file_name(role, dynamic),
    each stamped with the contract of `manifest` (and of the skill's `task_prior`): runtime/graph_contract.py."""
    specs = []
    for role, module, last_dim in role_modules:
        for dynamic in (False, True):
            rel = f"{rel_dir}/{file_name(role, dynamic)}".lstrip("/")
            meta = gc.expected_metadata(manifest, role, skill, task_prior)
            ins, outs, err = export_graph(
                module, out / rel, dynamic=dynamic, opset=opset, last_dim=last_dim, metadata=meta
            )
            batch = "dynamic" if dynamic else "static"
            specs.append(mf.GraphSpec(rel, role, skill, batch, sha256_file(out / rel), ins, outs, err))
    return specs


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard link (versions share unchanged files for free; every write here makes a new file, so a
    link is never modified through the other version), or a copy where the filesystem has none."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _carry_over(old_dir: Path, old: mf.BundleManifest, new_dir: Path, replaced: set[str]) -> list[mf.GraphSpec]:
    """Carry the bfm graphs and every skill not being replaced of the old version into new_dir, re-checking
    hashes."""
    kept = [g for g in old.graphs if g.skill not in replaced]
    for g in kept:
        src = old_dir / g.path
        if not src.is_file() or sha256_file(src) != g.sha256:
            raise BundleError(
                f"existing bundle file {src} is missing or modified; export to a new bundle dir"
            )
    for other in old.skills:
        if other not in replaced:
            shutil.copytree(old_dir / mf.skill_dir(other), new_dir / mf.skill_dir(other), copy_function=_link_or_copy)
    for g in kept:
        if g.skill is None:  # bfm + specialised bfm graphs at the version root
            _link_or_copy(old_dir / g.path, new_dir / g.path)
    return kept


def _check_carried(old_dir: Path, manifest: mf.BundleManifest, kept: list[mf.GraphSpec]) -> None:
    """The graphs carried over must carry the contract the new manifest states (BundleError otherwise: their
    skills were exported against other gains, pose or layout). Graphs exported before the contract was stamped
    carry none: kept, with a warning, as the runtime still loads them."""
    legacy = gc.check_graphs(old_dir, manifest, kept, lambda s: mf.read_skill_file(old_dir, s).task_prior,
                             "export to a new --bundle dir or re-export every skill")  # fmt: skip
    if legacy:
        log.warning("kept %d graph(s) that carry no contract metadata (%s); re-export their skills so each graph "
                    "describes itself", len(legacy), ", ".join(legacy))  # fmt: skip


def _kept_engines(old: mf.BundleManifest | None, graphs) -> tuple:
    """Engine records of the old manifest whose ONNX graph is still in the bundle, unchanged."""
    if old is None:
        return ()
    current = {g.path: g.sha256 for g in graphs}
    return tuple(e for e in old.engines if current.get(e.graph) == e.onnx_sha256)


def _specialised_graphs(tmp: Path, bfm: BFM, graphs, skills: set[str], *, opset, manifest) -> list[mf.GraphSpec]:
    """`graphs` with one specialised BFM (static + dynamic) per distinct visible-group set of `skills`.

    Why: fused graphs each carry a private copy of the BFM weights (and ONNX Runtime pre-packs
    every copy), so a fused-mode runtime with several resident skills instead runs their encoders
    into one shared session of this graph. Sets no skill uses any more are dropped.
    """
    wanted = {mf.read_skill_file(tmp, s).visible_groups for s in skills}
    keep = [g for g in graphs if g.role != mf.SPECIALISED_ROLE]
    have = {g.path: g for g in graphs if g.role == mf.SPECIALISED_ROLE}
    for visible in sorted(wanted):
        paths = [mf.specialised_bfm_file(visible, dyn) for dyn in (False, True)]
        found = [have.pop(p) for p in paths if p in have]
        if len(found) == len(paths):
            keep += found
            continue
        keep += _export_graphs(
            tmp, "", [(mf.SPECIALISED_ROLE, BFMGraph(bfm, visible), bfm.token_dim)], opset=opset,
            manifest=manifest, skill=None, file_name=lambda _role, dyn, v=visible: mf.specialised_bfm_file(v, dyn),
        )  # fmt: skip
    for g in have.values():  # carried over, but no skill uses that set any more
        (tmp / g.path).unlink(missing_ok=True)
    return keep


def _check_compatible(old: mf.BundleManifest, bfm_sha: str, opset: int, bundle: Path) -> None:
    if old.bfm.sha256 != bfm_sha:
        raise BundleError(
            f"bundle {bundle} was exported with BFM {old.bfm.sha256[:12]}... but this export uses "
            f"{bfm_sha[:12]}...; export to a new --bundle dir or re-export all skills ({', '.join(old.skills)})"
        )
    if old.opset != opset:
        raise BundleError(f"bundle {bundle} uses opset {old.opset}, not {opset}; use one opset per bundle")


def _floats(x) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(x).ravel())


def _actuation() -> tuple[tuple[float, ...] | None, tuple[float, ...] | None, mf.ActuationSpec | None]:
    """PD offset/scale and the actuation contract, read off the simulator model the skills train in
    (left empty, with a warning, without MuJoCo)."""
    try:
        from tt_deploy.sim.humanoid_model import build_model, integrator_name, standing_qpos

        hm = build_model()
    except (ImportError, TTDeployError) as exc:
        log.warning("PD offset/scale and actuation left empty: %s", exc)
        return None, None, None
    m = hm.model
    limited = m.actuator_forcelimited[hm.actuator_ids].astype(bool)
    torque = _floats(np.where(limited, m.actuator_forcerange[hm.actuator_ids, 1], np.inf)) if limited.any() else None
    where = "MuJoCo joint damping, integrated implicitly" if hm.damping == "joint" else "the actuator's kv"
    qpos = standing_qpos(hm)
    kp, kd = np.array(spec.PD_GAINS).T
    actuation = mf.ActuationSpec(
        pd_form=f"target = pd_offset + pd_scale * action (rad); torque = kp (target - q) - kd qdot, the kd term as {where}; "
                "actions held for the substeps of one control step",
        kp=_floats(kp), kd=_floats(kd), damping=hm.damping, torque_limit=torque,
        physics_dt=float(m.opt.timestep), substeps=int(hm.substeps), integrator=integrator_name(m),
        reset_root_pos=_floats(qpos[:3]), reset_root_quat=_floats(np.roll(qpos[3:7], -1)),  # wxyz -> xyzw
        reset_joint_pos=_floats(qpos[hm.qpos_adr]), mjcf=hm.mjcf.name,
    )  # fmt: skip
    return _floats(hm.pd_offset), _floats(hm.pd_scale), actuation


def _simulator(new_dir: Path, skills, old: mf.BundleManifest | None, old_dir: Path | None,
               replaced: set[str]) -> tuple[mf.SimulatorSpec | None, mf.FallRule | None]:
    """The simulator contract (MJCF into new_dir, physics, scene objects, fall rule: export/sim_contract.py),
    left empty, with a warning, without MuJoCo."""
    try:
        from tt_deploy.export import sim_contract
    except ImportError as exc:
        log.warning("simulator contract (MJCF, physics, fall rule) left empty: %s", exc)
        return None, None
    return sim_contract.write_simulator(new_dir, skills, old, old_dir, replaced, _link_or_copy)


def _tool_versions() -> mf.ToolVersions:
    import onnx
    import onnxruntime

    return mf.ToolVersions(
        torch.__version__, onnx.__version__, onnxruntime.__version__, tt_deploy.__version__, EXPORTER
    )


def _default_skill(asked: str | None, old: mf.BundleManifest | None, names: set[str], trained: list[str],
                   exported: list[str]) -> str:
    """The bundle's default skill: as asked, else the old default, else a trained skill, else the first."""
    if asked is not None:
        if asked not in names:
            raise UnknownNameError("default skill (not in the bundle)", asked, names)
        return asked
    if old is not None and old.default_skill in names:
        return old.default_skill
    return (trained or exported)[0]


def _previous_version(bundle: Path, current: str | None) -> str | None:
    """The newest version dir older than `current` (the one a reader may still be loading), if any."""
    if current is None:
        return None
    below = [
        int(m.group(1)) for p in bundle.iterdir()
        if (m := mf.VERSION_RE.fullmatch(p.name)) and int(m.group(1)) < mf.version_number(current)
    ]  # fmt: skip
    if below:
        return mf.version_name(max(below))
    return "" if current != "" and (bundle / mf.SKILLS_DIR).is_dir() else None


def _bundle_manifest(
    bfm: BFM, bfm_info: mf.BFMInfo, opset: int, skills, content: str = "", default_skill=None,
    simulator: mf.SimulatorSpec | None = None, fall_rule: mf.FallRule | None = None,
) -> mf.BundleManifest:
    """The manifest of the version being written, without its graphs and engines (`_with_graphs` adds them): the
    graphs are stamped with the contract it states, so it comes first."""
    groups = tuple(
        mf.TokenGroupSpec(
            g.name, g.n_tokens, g.feat_dim, g.mask_name, mf.MASK_SEMANTICS if g.mask_name else None
        )
        for g in spec.TOKEN_GROUPS
    )
    offset, scale, actuation = _actuation()
    return mf.BundleManifest(
        schema=mf.SCHEMA, bfm=bfm_info, token_groups=groups, token_dim=bfm.token_dim,
        task_token_name=spec.TASK_TOKEN_NAME, task_obs_name=spec.TASK_OBS_NAME, actions_name=spec.ACTIONS_NAME,
        action_dim=spec.ACTION_DIM, action_clamp=spec.ACTION_CLAMP, control_dt=spec.CONTROL_DT,
        joint_names=spec.JOINT_NAMES, body_names=spec.BODY_NAMES, pd_offset=offset, pd_scale=scale,
        opset=opset, tools=_tool_versions(), skills=tuple(sorted(skills)),
        graphs=(), engines=(), content=content,
        default_skill=default_skill, actuation=actuation, state=mf.STATE_CONVENTION, simulator=simulator,
        fall_rule=fall_rule,
    )  # fmt: skip


def _with_graphs(manifest: mf.BundleManifest, graphs, engines) -> mf.BundleManifest:
    return replace(manifest, graphs=tuple(sorted(graphs, key=lambda g: g.path)), engines=tuple(engines))


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _recover_interrupted_swap(bundle: Path) -> list[mf.HistoryEntry]:
    """Put back a bundle that tt-deploy <= 0.x's two-rename swap left at `.<name>.old-PID` when it was
    killed between the renames: the bundle path empty, and that swap's `.<name>.tmp-PID` still beside it.
    A lone `.old-PID` is the leftover of a finished swap: the bundle path is empty because a user deleted
    it, and that deletion is not undone (_remove_stale removes the leftover). Returns the history entries
    that say which happened (none when the bundle is there)."""
    if (bundle / mf.MANIFEST_FILE).is_file() or (bundle.exists() and any(bundle.iterdir())):
        return []
    left_alone = []
    for old in sorted(bundle.parent.glob(f".{bundle.name}.old-*")):
        pid = old.name.rsplit("-", 1)[-1]
        if not (bundle.parent / f".{bundle.name}.tmp-{pid}").is_dir():
            log.warning("not restoring %s: no interrupted export beside it (the bundle was deleted)", old.name)
            left_alone.append(old.name)
            continue
        if (old / mf.MANIFEST_FILE).is_file():
            if bundle.exists():
                bundle.rmdir()
            os.replace(old, bundle)
            log.warning("recovered bundle %s from an interrupted export (%s)", bundle, old.name)
            version = mf.read_manifest(bundle).content
            return [mf.history_entry("recovered", version, note=f"moved back from {old.name}: an export was "
                                     f"killed between its two renames (.{bundle.name}.tmp-{pid} was beside it)")]
    note = (f"the bundle path was empty; not restored: {', '.join(left_alone)} (no interrupted export beside "
            "it, so the bundle had been deleted)") if left_alone else ""
    return [mf.history_entry("new", "", note=note)]


def _remove_stale(bundle: Path, keep: set[str]) -> None:
    """Remove version dirs not in `keep` (crash leftovers, versions two exports old), the root-level
    files of a pre-version bundle once "" is not kept, and temp/old dirs that older exports left beside
    the bundle. Called under the bundle lock, so no other writer is using any of them."""
    for p in bundle.parent.glob(f".{bundle.name}.tmp-*"):
        _remove_tree(p)
    for p in bundle.parent.glob(f".{bundle.name}.old-*"):
        _remove_tree(p)
    if not bundle.is_dir():
        return
    for p in bundle.iterdir():
        versioned = mf.VERSION_RE.fullmatch(p.name) is not None
        legacy = "" not in keep and (p.name in (mf.SKILLS_DIR, mf.SIM_DIR) or (p.is_file() and p.suffix == ".onnx"))
        if (versioned and p.name not in keep) or legacy:
            _remove_tree(p)


def _write_skill_files(tmp, skill, bfm, bfm_sha, encoder, src, opset, manifest, precisions=()) -> list[mf.GraphSpec]:
    """Export the skill's encoder/fused graphs (fp32, plus reduced-precision fused copies, which keep the fp32
    graph's metadata) and skill.json into tmp; returns graph specs."""
    rel = mf.skill_dir(skill)
    (tmp / rel).mkdir(parents=True, exist_ok=True)
    visible = _visible_groups(src[1].visible_groups if src[1] else ())
    obs_dim = encoder.config.obs_dim
    modules = [
        ("encoder", EncoderGraph(encoder), obs_dim),
        ("fused", BFMGraph(bfm, visible, encoder), obs_dim),
    ]
    task_prior = src[1] and src[1].task_prior
    graphs = _export_graphs(tmp, rel, modules, opset=opset, manifest=manifest, skill=skill, task_prior=task_prior)
    graphs += reduced_graphs(tmp, graphs, precisions)
    reference_sha = write_reference(tmp / rel, BFMGraph(bfm, visible, encoder).eval(), BFMGraph(bfm, encoder=encoder).eval(),
                                    visible, obs_dim, skill_seed(skill, 0))  # fmt: skip
    enc, info, source, enc_sha, enc_sha_of = src
    c = enc.config
    names = task_obs_names(skill, obs_dim)
    skill_manifest = mf.SkillManifest(
        schema=mf.SCHEMA, name=skill, task_obs_dim=obs_dim, task_obs_features=names,
        encoder=mf.EncoderSpec(c.obs_dim, c.token_dim, tuple(c.hidden), c.norm_clamp, count_parameters(enc)),
        encoder_source=source, encoder_trained=info is not None, encoder_weights_sha256=enc_sha,
        encoder_weights_sha256_of=enc_sha_of, bfm_sha256=bfm_sha, visible_groups=visible,
        graphs={g.path: g.sha256 for g in graphs}, task_prior=task_prior, goals=info and info.goals,
        reference_sha256=reference_sha,
    )  # fmt: skip
    mf.write_skill(tmp, skill_manifest)
    return graphs


@contextlib.contextmanager
def _next_version(bundle: Path) -> Iterator[tuple[mf.BundleManifest | None, Path, tuple[mf.HistoryEntry, ...]]]:
    """Under the bundle lock: yield (current manifest or None, an empty next version dir, the history the
    next manifest continues). The caller fills the dir and writes manifest.json naming it - the one atomic
    step; if the block raises, the dir is removed and the bundle is as before. Afterwards versions older
    than the replaced one go."""
    with mf.bundle_lock(bundle):
        found = _recover_interrupted_swap(bundle)
        old = mf.read_manifest(bundle) if (bundle / mf.MANIFEST_FILE).is_file() else None
        history = mf.with_history(old.history if old is not None else (), *found)
        if old is None and bundle.exists() and any(not mf.VERSION_RE.fullmatch(p.name) for p in bundle.iterdir()):
            # (version dirs alone are what a first export killed before its manifest leaves)
            raise BundleError(
                f"{bundle} exists and is not a bundle (no {mf.MANIFEST_FILE}); choose another --bundle dir"
            )
        current = old.content if old is not None else None
        number = mf.version_number(current) + 1 if current is not None else 1
        # keep the current version, and the one before it for readers that are still loading it
        _remove_stale(bundle, {current, _previous_version(bundle, current)} - {None})
        new_dir = bundle / mf.version_name(number)
        bundle.mkdir(parents=True, exist_ok=True)
        try:  # the mkdir inside: a SIGTERM right after it (the handler raises) must still remove the dir
            new_dir.mkdir()
            yield old, new_dir, history
            if mf.read_manifest(bundle).content != new_dir.name:
                raise BundleError(f"internal: {new_dir.name} was written but no manifest names it")
        except BaseException:
            if not (bundle / mf.MANIFEST_FILE).is_file() or mf.read_manifest(bundle).content != new_dir.name:
                shutil.rmtree(new_dir, ignore_errors=True)
            raise
        _remove_stale(bundle, {new_dir.name, current} - {None})


def _skill_hashes(content: Path, skills) -> dict[str, str]:
    return {s: sha256_file(content / mf.skill_dir(s) / mf.SKILL_FILE) for s in sorted(skills)}


def record_skill_results(bundle_dir: str | os.PathLike, name: str, *, measured: dict, parity=None, sim2sim=None,
                         precision_gate: tuple[str, dict] | None = None) -> mf.SkillManifest:
    """Add one skill's verify/sim2sim results to its skill.json as a new bundle version (record_results)."""
    updates = {k: v for k, v in (("parity", parity), ("sim2sim", sim2sim)) if v is not None}
    if precision_gate is not None:
        updates["precision_gates"] = dict([precision_gate])
    return record_results(bundle_dir, {name: updates}, measured=measured)[name]


def record_results(bundle_dir: str | os.PathLike, results: dict[str, dict], *, measured: dict) -> dict[str, mf.SkillManifest]:
    """Write results into skills' skill.json as ONE new bundle version (every other file hard-linked,
    manifest.json's skill_sha256 updated): skill.json stays hashed, and a reader sees the old or new one.

    results: {skill: {"parity" | "sim2sim": verdict, "precision_gates": {precision: verdict}}}, each verdict
    carrying the `evidence` it measured. A compare-and-swap: `measured["bundle_version"]` (runtime/verdicts.py
    measured_evidence, taken before measuring) must still be the current version, and each skill's graphs those
    its verdicts measured; otherwise BundleError and nothing is written, never a verdict on other graphs."""
    from tt_deploy.runtime.verdicts import binding_problems

    bundle = Path(bundle_dir).absolute()
    with _next_version(bundle) as (old, new_dir, history):
        if old is None:
            raise BundleError(f"no bundle at {bundle}; export one first")
        if old.content != measured.get("bundle_version"):
            raise BundleError(f"{bundle} moved on from {measured.get('bundle_version')!r} to {old.content!r} while "
                              "it was measured; the verdict was not recorded - measure again")  # fmt: skip
        shutil.copytree(mf.content_dir(bundle, old), new_dir, dirs_exist_ok=True, copy_function=_link_or_copy)
        updated = {}
        for name, updates in results.items():
            current = mf.read_skill(bundle, name, old)
            verdicts = [v for k, v in updates.items() if k != "precision_gates"] + list(
                updates.get("precision_gates", {}).values())
            for v in verdicts:
                problems = binding_problems(v, current, old)
                if problems:
                    raise BundleError(f"skill {name!r}: the verdict was not recorded: {problems[0]}")
            gates = {**(current.precision_gates or {}), **updates.get("precision_gates", {})} or None
            updated[name] = replace(current, **{**updates, "precision_gates": gates})
            mf.write_skill(new_dir, updated[name])  # a new file: the old version's (linked) skill.json is untouched
        hashes = {**(old.skill_sha256 or {}), **_skill_hashes(new_dir, list(results))}
        history = mf.with_history(history, mf.history_entry("record", new_dir.name, results))
        mf.write_manifest(bundle, replace(old, content=new_dir.name, skill_sha256=hashes, history=history))
    return updated


def export_skill(skill: str, **kwargs) -> Path:
    """Export one skill (and the BFM) into a bundle, keeping its other skills (see export_skills)."""
    return export_skills([skill], **kwargs)


def export_skills(
    skills: Sequence[str],
    *,
    bfm_path: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    bundle_dir: str | os.PathLike = "deploy",
    seed: int = 0,
    task_obs_dim: int | None = None,
    opset: int = 17,
    default_skill: str | None = None,
    bfm_config: str | None = None,
    precisions: Sequence[str] = (),
) -> Path:
    """Export skills (and the BFM) into `bundle_dir` as one new version, keeping the bundle's other skills.

    `precisions`: reduced precisions (e.g. "int8") whose fused graphs are written beside the fp32 ones
    (export/precision.py); fp32 is always exported.
    `default_skill` (manifest `default_skill`, the runtime's first active skill): None keeps the bundle's
    default while it has that skill, else picks the first trained skill exported, else the first one.

    Without `run_dir` each encoder is a fresh seeded init (untrained; skill.json says so) of
    width `task_obs_dim` (default: the task's obs dim). With `run_dir` (one skill only), the trained
    encoder of `<run_dir>/checkpoints/best.safetensors` (or last) is used; it must have been trained
    on this BFM. Returns the bundle path. Raises BundleError / UnknownNameError / InputError.
    """
    skills = list(dict.fromkeys(skills))
    precisions = check_precisions(precisions)
    if not skills:
        raise InputError("no skill to export; name at least one")
    if run_dir is not None and len(skills) != 1:
        raise InputError(f"a trained run belongs to one skill; got {len(skills)} skills")
    if bfm_config is not None:  # a fresh BFM of that size: latency/memory at scale, marked untrained
        if bfm_path is not None or run_dir is not None:
            raise InputError("--bfm-config makes a fresh untrained BFM; it cannot go with --bfm or --run")
        bfm, info = seeded_bfm(bfm_config, seed)
    else:
        bfm, info = resolve_bfm(bfm_path)
    bfm = bfm.freeze()
    bfm_info = _bfm_info(bfm, info)
    sources = {}
    for skill in skills:
        obs_spec = task_obs_spec(skill)
        src = build_encoder(skill, run_dir, bfm, bfm_info.sha256, seed, task_obs_dim or obs_spec[0])
        if task_obs_dim is not None and src[0].config.obs_dim != task_obs_dim:
            raise InputError(
                f"task_obs_dim {task_obs_dim} != the trained encoder's obs_dim {src[0].config.obs_dim}"
            )
        sources[skill] = src
    report_goal_records({s: src[1].goals for s, src in sources.items() if src[1] is not None}, info.get("path"),
                        "export")
    bundle = Path(bundle_dir).absolute()
    if bundle.exists() and not bundle.is_dir():
        raise BundleError(f"bundle path {bundle} is a file, not a directory; choose another --bundle dir")
    with _next_version(bundle) as (old, new_dir, history):
        if old is not None:
            _check_compatible(old, bfm_info.sha256, opset, bundle)
        old_dir = mf.content_dir(bundle, old) if old is not None else None
        graphs = _carry_over(old_dir, old, new_dir, set(skills)) if old is not None else []
        names = {*(old.skills if old else ()), *skills}
        simulator, fall_rule = _simulator(new_dir, names, old, old_dir, set(skills))  # before the slow graphs
        default = _default_skill(default_skill, old, names, [s for s in skills if sources[s][1] is not None], skills)
        manifest = _bundle_manifest(bfm, bfm_info, opset, names, new_dir.name, default, simulator, fall_rule)
        if old is not None:
            _check_carried(old_dir, manifest, graphs)
        if not any(g.role == "bfm" for g in graphs):
            graphs += _export_graphs(
                new_dir, "", [("bfm", BFMGraph(bfm), bfm.token_dim)], opset=opset, manifest=manifest, skill=None
            )
        for skill, src in sources.items():
            graphs += _write_skill_files(new_dir, skill, bfm, bfm_info.sha256, src[0], src, opset, manifest,
                                         precisions)  # fmt: skip
        graphs = _specialised_graphs(new_dir, bfm, graphs, names, opset=opset, manifest=manifest)
        manifest = _with_graphs(manifest, graphs, _kept_engines(old, graphs))
        history = mf.with_history(history, mf.history_entry("export", new_dir.name, skills))
        mf.write_manifest(bundle, replace(manifest, skill_sha256=_skill_hashes(new_dir, names), history=history))
    for skill, src in sources.items():
        log.info("exported skill %r into %s (%s)", skill, bundle, src[2])
    return bundle


def bundle_files(bundle_dir: str | os.PathLike) -> list[tuple[str, int, str]]:
    """(bundle-relative path, size in bytes, sha256) of the manifest, the current version's files and
    the engines, sorted; for CLI listings (older versions a reader may still hold are left out)."""
    root = Path(bundle_dir)
    manifest = mf.read_manifest(root)
    dirs = [mf.content_dir(root, manifest), root / "engines"]
    files = {root / mf.MANIFEST_FILE}
    for d in dirs:
        if d.is_dir():
            files.update(p for p in d.rglob("*") if p.is_file())
    if manifest.content == "":  # a pre-version bundle: its files sit at the root
        files = {p for p in root.rglob("*") if p.is_file()}
    return [(p.relative_to(root).as_posix(), p.stat().st_size, sha256_file(p)) for p in sorted(files)]


__all__ = ["export_skill", "export_skills", "record_results", "record_skill_results", "bundle_files", "task_obs_spec"]
