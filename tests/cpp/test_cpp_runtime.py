"""The C++ runtime (cpp/): its ctest suite passes on an exported bundle, and through the C ABI it returns the
Python SkillRuntime's actions (max abs <= 1e-5, fp32) for every skill and after switches, and gives the same
verdict on broken bundles and on bad inputs."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
import time

import cpp_build
import numpy as np
import onnx
import pytest
from bundle_helpers import rehash_skill
from cpp_runtime import CppError, CppRuntime
from onnx import numpy_helper

from tt_deploy.errors import BundleError, InputError, NonFiniteActionsError, TTDeployError, UnknownNameError
from tt_deploy.export import verify
from tt_deploy.hashing import sha256_file
from tt_deploy.runtime import SessionConfig, SkillRuntime
from tt_deploy.runtime import manifest as mf
from tt_deploy.runtime.skill_runtime import _PRIOR_PROMPT

TOL = 1e-5  # fp32: the C++ and Python runtimes run the same fused graph
ONE_THREAD = SessionConfig(intra_op_threads=1)
RECORDED_STEPS = 6


def python_runtimes(bundle, skills=None) -> dict[str, SkillRuntime]:
    """The references: OpenVINO on the same fused graphs as C++, and ONNX Runtime as the runtime ships."""
    return {"openvino": SkillRuntime(bundle, backend="openvino", skills=skills, share_bfm=False, config=ONE_THREAD),
            "ort-cpu": SkillRuntime(bundle, backend="ort-cpu", skills=skills, config=ONE_THREAD)}


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


@pytest.fixture(scope="module")
def references(cpp_bundle):
    runtimes = python_runtimes(cpp_bundle)
    yield runtimes
    for rt in runtimes.values():
        rt.close()


@pytest.fixture(scope="module")
def cases(cpp_bundle, references):
    """skill -> [(inputs, task_obs)]: a MuJoCo rollout of the skill's task (its prior prompt fed, driven by the
    Python runtime's actions) then random inputs (groups the skill's graph drops given hidden)."""
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.registry import make_task_for_skill

    py = references["openvino"]
    rng = np.random.default_rng(0)
    out = {}
    for skill, card in py.skills.items():
        py.switch(skill)
        task = make_task_for_skill(card, 1)
        env = TaskEnv(MujocoSimulator(1, nthread=1, objects=task.objects), task, seed=1)
        step, recorded = env.reset(), []
        for _ in range(RECORDED_STEPS):
            inputs = {k: v.copy() for k, v in step.inputs.items()}
            task_obs = step.task_obs.astype(np.float32)
            recorded.append((inputs, task_obs))
            step = env.step(py.act(inputs, task_obs)[None])
        for _ in range(3):
            inputs = verify.random_inputs(1, rng)
            for g in py.manifest.token_groups:
                if g.mask_name and g.name not in card.visible_groups:
                    inputs[g.mask_name][:] = False  # a dropped group may only be given hidden
            if card.task_prior is not None:
                inputs[_PRIOR_PROMPT[1]][0, 0] = True  # the prior prompt shows some token
            recorded.append((inputs, rng.normal(size=(1, card.task_obs_dim)).astype(np.float32)))
        out[skill] = recorded
    return out


def test_ctest_suite_passes_on_the_exported_bundle(cpp_build_dir, cpp_bundle):
    proc, seconds = cpp_build.run_ctest(cpp_build_dir, cpp_bundle)
    log = proc.stdout + proc.stderr
    print(f"ctest: {seconds:.1f} s\n" + "\n".join(line for line in log.splitlines() if "allocations" in line))
    assert proc.returncode == 0, log[-8000:]
    m = re.search(r"100% tests passed, 0 tests failed out of (\d+)", log)
    assert m and int(m.group(1)) >= 20, log[-4000:]
    assert "did not run" not in log, log[-4000:]  # with the bundle set, no test may skip
    for name in ("runtime.overlapping_calls_are_refused_not_waited_for",
                 "no_allocation.act_into_and_switch_allocate_nothing_of_their_own", "c_abi.a_c_client_gets_the_cpp_actions"):
        assert name in log  # ctest lists every test by its own name


def test_schema_table_is_the_manifest_dataclasses():
    """cpp/src/manifest_fields.def restates the dataclasses' fields; it must be them, annotation for annotation."""
    text = (cpp_build.CPP / "src" / "manifest_fields.def").read_text()
    rows = re.findall(r'^TT_FIELD\((\w+), (\w+), "([^"]*)", (required|optional)\)$', text, re.M)
    want = []
    for name in mf.DOC_CLASSES:
        for f in dataclasses.fields(getattr(mf, name)):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            want.append((name, f.name, str(f.type), "required" if required else "optional"))
    assert rows == want


def test_actions_match_python_for_every_skill_and_after_switches(cpp_lib, cpp_bundle, references, cases):
    skills = list(references["openvino"].skills)
    order = [*skills, *reversed(skills), *skills]  # every skill reached from another one
    worst = {(s, ref): 0.0 for s in skills for ref in references}
    with CppRuntime(cpp_lib, cpp_bundle) as cpp:
        default = references["openvino"].manifest.default_skill
        assert cpp.active == (default if default in skills else skills[0])  # SkillRuntime's first active skill
        for skill in order:
            cpp.switch(skill)
            for rt in references.values():
                rt.switch(skill)
            for inputs, task_obs in cases[skill]:
                got = cpp.act(inputs, task_obs)
                assert np.isfinite(got).all()
                for ref, rt in references.items():
                    worst[skill, ref] = max(worst[skill, ref], max_abs(got, rt.act(inputs, task_obs)))
    print("parity max abs (C++ vs Python):", {f"{s}/{r}": f"{v:.2e}" for (s, r), v in worst.items()})
    assert max(worst.values()) <= TOL, worst


def _input_variants(card: mf.SkillManifest, manifest: mf.BundleManifest, base: tuple[dict, np.ndarray]):
    """(name, expected verdict, inputs, task_obs): each breaks or keeps one rule of SkillRuntime's input checks."""
    inputs, task_obs = base
    groups = {g.name: g for g in manifest.token_groups}
    required = next(g for g in manifest.token_groups if g.mask_name is None)
    kept = next(g for g in manifest.token_groups
                if g.mask_name and g.name in card.visible_groups and g.name != _PRIOR_PROMPT[0])
    dropped = next(g for g in manifest.token_groups if g.mask_name and g.name not in card.visible_groups)

    def edit(fn, obs=None):
        x = {k: v.copy() for k, v in inputs.items()}
        fn(x)
        return x, task_obs if obs is None else obs

    def nan(x):
        x[required.name][0, 1] = np.nan

    yield "as recorded", "ok", *edit(lambda x: None)
    yield "NaN in a required group", "refused", *edit(nan)
    yield "inf in task_obs", "refused", *edit(lambda x: None, np.where(np.arange(task_obs.size) == 0, np.inf, task_obs))
    yield "task_obs one wider", "refused", *edit(lambda x: None, np.zeros((1, task_obs.size + 1), np.float32))
    yield "required group left out", "refused", *edit(lambda x: x.pop(required.name))
    yield "required group one short", "refused", *edit(lambda x: x.update({required.name: x[required.name][:, :-1]}))
    yield "float64 data", "refused", *edit(lambda x: x.update({required.name: x[required.name].astype(np.float64)}))
    yield "float32 mask", "refused", *edit(lambda x: x.update({kept.mask_name: x[kept.mask_name].astype(np.float32)}))
    yield "unknown input name", "refused", *edit(lambda x: x.update({"not_a_group": np.zeros(3, np.float32)}))
    yield "kept group left out", "ok", *edit(lambda x: (x.pop(kept.name), x.pop(kept.mask_name)))
    yield "kept group's mask left out", "ok", *edit(lambda x: x.pop(kept.mask_name))
    yield "kept group all hidden", "ok", *edit(lambda x: x[kept.mask_name].fill(False))
    yield "mask shows a group not given", "refused", *edit(lambda x: (x.pop(kept.name), x[kept.mask_name].fill(True)))
    yield "dropped group hidden", "ok", *edit(lambda x: x[dropped.mask_name].fill(False))
    yield "dropped group left out", "ok", *edit(lambda x: (x.pop(dropped.name), x.pop(dropped.mask_name)))
    yield "dropped group visible", "refused", *edit(lambda x: x[dropped.mask_name].fill(True))
    yield "dropped group without its mask", "refused", *edit(lambda x: x.pop(dropped.mask_name))
    if card.task_prior is not None:
        prompt, prompt_mask = _PRIOR_PROMPT
        assert prompt in groups and prompt in card.visible_groups
        yield "prior prompt left out", "refused", *edit(lambda x: (x.pop(prompt), x.pop(prompt_mask)))
        yield "prior prompt all hidden", "refused", *edit(lambda x: x[prompt_mask].fill(False))


def test_input_rules_give_the_python_verdict(cpp_lib, cpp_bundle, references, cases):
    py = references["openvino"]
    checked = []
    with CppRuntime(cpp_lib, cpp_bundle) as cpp:
        for skill, card in py.skills.items():
            cpp.switch(skill)
            py.switch(skill)
            for name, expected, inputs, task_obs in _input_variants(card, py.manifest, cases[skill][0]):
                try:
                    want = py.act(inputs, task_obs)
                except InputError:
                    want = None
                try:
                    got, status = cpp.act(inputs, task_obs), "OK"
                except CppError as exc:
                    got, status = None, exc.status
                where = f"{skill}: {name}"
                assert (want is None) == (expected == "refused"), where  # the variant does what it says
                if want is None:
                    assert status == "ERR_INPUT", where
                else:
                    assert status == "OK" and max_abs(got, want) <= TOL, where
                checked.append(where)
    assert len(checked) >= 3 * 17


def _fused(skill) -> str:
    return f"skills/{skill}/fused.onnx"


def _append(path, text) -> None:
    with open(path, "a") as f:
        f.write(text)


def _edit_json(path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _edit_skill(skill, fn):
    def apply(bundle):
        _edit_json(mf.content_dir(bundle) / mf.skill_dir(skill) / mf.SKILL_FILE, fn)
        rehash_skill(bundle, skill)  # only the checks behind the hash are left to catch it

    return apply


def _flip_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite_graph(bundle, skill, fn) -> None:
    """Edit the skill's fused.onnx with `fn(model)` and fix every hash that names it, so only deeper checks
    can catch the edit."""
    root, rel = mf.content_dir(bundle), _fused(skill)
    model = onnx.load(str(root / rel))
    fn(model)
    onnx.save(model, str(root / rel))
    sha = sha256_file(root / rel)
    _edit_json(bundle / mf.MANIFEST_FILE,
               lambda m: [g.update(sha256=sha) for g in m["graphs"] if g["path"] == rel])
    _edit_json(root / mf.skill_dir(skill) / mf.SKILL_FILE, lambda s: s["graphs"].update({rel: sha}))
    rehash_skill(bundle, skill)


def _set_role(model, role) -> None:
    for p in model.metadata_props:
        if p.key == "tt-deploy.role":
            p.value = role


def _nan_weight(model) -> None:
    """tests/runtime/test_runtime_safety.py's corruption: one NaN in the largest weight (a flipped exponent bit)."""
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init).copy()
    w.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(w, init.name))


def _nan_output(model) -> None:
    """A graph whose first action is NaN on every backend: NaN in the last layer's bias, and the final clamp
    made an Identity (OpenVINO's Clip turns NaN into its lower bound)."""
    (last,) = [n for n in model.graph.node if model.graph.output[0].name in n.output]
    assert last.op_type == "Clip"
    (layer,) = [n for n in model.graph.node if last.input[0] in n.output]
    bias = next(t for t in model.graph.initializer if t.name == layer.input[2])
    b = numpy_helper.to_array(bias).copy()
    b.flat[0] = np.nan
    bias.CopyFrom(numpy_helper.from_array(b, bias.name))
    last.op_type = "Identity"
    del last.input[1:]


SKILL = "reach"
BUNDLE_EDITS = {  # name: (edit of a bundle copy, Python's exception, the C ABI's status)
    "untouched": (lambda b: None, None, "OK"),
    "skill.json edited": (lambda b: _append(mf.content_dir(b) / mf.skill_dir(SKILL) / mf.SKILL_FILE, " "),
                          BundleError, "ERR_HASH_MISMATCH"),
    "fused graph edited": (lambda b: _flip_byte(mf.content_dir(b) / _fused(SKILL)), BundleError,
                           "ERR_HASH_MISMATCH"),
    "fused graph deleted": (lambda b: (mf.content_dir(b) / _fused(SKILL)).unlink(), BundleError,
                            "ERR_MISSING_FILE"),
    "skill.json deleted": (lambda b: (mf.content_dir(b) / mf.skill_dir(SKILL) / mf.SKILL_FILE).unlink(),
                           BundleError, "ERR_MISSING_FILE"),
    "manifest.json deleted": (lambda b: (b / mf.MANIFEST_FILE).unlink(), BundleError, "ERR_MISSING_FILE"),
    "manifest schema 2": (lambda b: _edit_json(b / mf.MANIFEST_FILE, lambda m: m.update(schema="tt-deploy.bundle/2")),
                          BundleError, "ERR_SCHEMA"),
    "skill.json schema 2": (_edit_skill(SKILL, lambda s: s.update(schema="x")), BundleError, "ERR_SCHEMA"),
    "manifest not JSON": (lambda b: (b / mf.MANIFEST_FILE).write_text("{"), BundleError, "ERR_BUNDLE"),
    "skill_sha256 entry removed": (lambda b: _edit_json(b / mf.MANIFEST_FILE, lambda m: m["skill_sha256"].pop(SKILL)),
                                   BundleError, "ERR_BUNDLE"),
    "manifest unknown field": (lambda b: _edit_json(b / mf.MANIFEST_FILE, lambda m: m.update(new_field=1)),
                               BundleError, "ERR_BUNDLE"),
    "manifest field missing": (lambda b: _edit_json(b / mf.MANIFEST_FILE, lambda m: m.pop("control_dt")),
                               BundleError, "ERR_BUNDLE"),
    "action_dim a string": (lambda b: _edit_json(b / mf.MANIFEST_FILE, lambda m: m.update(action_dim="69")),
                            BundleError, "ERR_BUNDLE"),
    "content not a version": (lambda b: _edit_json(b / mf.MANIFEST_FILE, lambda m: m.update(content="../v1")),
                              BundleError, "ERR_BUNDLE"),
    "task_obs_dim edited": (_edit_skill(SKILL, lambda s: s.update(task_obs_dim=s["task_obs_dim"] + 1)), BundleError,
                            "ERR_BUNDLE"),
    "visible_groups edited": (_edit_skill(SKILL, lambda s: s["visible_groups"].append(_PRIOR_PROMPT[0])),
                              BundleError, "ERR_BUNDLE"),
    "bfm_sha256 edited": (_edit_skill(SKILL, lambda s: s.update(bfm_sha256="0" * 64)), BundleError, "ERR_BUNDLE"),
    "skill graph hashes edited": (_edit_skill(SKILL, lambda s: s["graphs"].popitem()), BundleError, "ERR_BUNDLE"),
    "static prior tokens": (_edit_skill(SKILL, lambda s: s.update(prior={"tokens": 1})), BundleError, "ERR_BUNDLE"),
    "graph metadata role": (lambda b: _rewrite_graph(b, SKILL, lambda m: _set_role(m, "encoder")), BundleError,
                            "ERR_BUNDLE"),
    "manifest output renamed": (lambda b: _edit_json(b / mf.MANIFEST_FILE, lambda m: [
        o.update(name="acts") for g in m["graphs"] if g["path"] == _fused(SKILL) for o in g["outputs"]]),
        BundleError, "ERR_BUNDLE"),
}


@pytest.mark.parametrize("edit", list(BUNDLE_EDITS))
def test_bundle_edits_give_the_python_verdict(cpp_lib, cpp_bundle, tmp_path, edit):
    apply, py_error, status = BUNDLE_EDITS[edit]
    bundle = shutil.copytree(cpp_bundle, tmp_path / "deploy")
    apply(bundle)
    if py_error is None:
        SkillRuntime(bundle, backend="openvino", skills=[SKILL], share_bfm=False, config=ONE_THREAD).close()
    else:
        with pytest.raises(py_error):
            SkillRuntime(bundle, backend="openvino", skills=[SKILL], share_bfm=False, config=ONE_THREAD)
    try:
        CppRuntime(cpp_lib, bundle, [SKILL]).destroy()
        got = "OK"
    except CppError as exc:
        got = exc.status
    assert got == status


def test_nan_actions_are_refused_or_zeroed(cpp_lib, cpp_bundle, tmp_path, cases):
    bad = shutil.copytree(cpp_bundle, tmp_path / "bad")
    _rewrite_graph(bad, SKILL, _nan_output)
    inputs, task_obs = cases[SKILL][0]
    with SkillRuntime(bad, backend="openvino", skills=[SKILL], share_bfm=False, config=ONE_THREAD) as py:
        with pytest.raises(NonFiniteActionsError):
            py.act(inputs, task_obs)
    with CppRuntime(cpp_lib, bad, [SKILL]) as cpp:
        out = np.full(69, 7.0, np.float32)
        with pytest.raises(CppError, match=f"ERR_NONFINITE_ACTIONS: skill '{SKILL}' returned NaN/inf actions"):
            cpp.act(inputs, task_obs, out)
        assert cpp.nonfinite_count() == 1 and not out.any()  # no NaN PD target in `out`, as in Python
    with CppRuntime(cpp_lib, bad, [SKILL], nonfinite_zeros=True) as cpp:
        assert not cpp.act(inputs, task_obs).any() and cpp.nonfinite_count() == 1


def test_openvino_hides_a_nan_weight_for_python_and_cpp_alike(cpp_lib, cpp_bundle, tmp_path, cases):
    """A known gap, pinned so that a change is noticed: OpenVINO's CPU Relu turns NaN into 0 and its Clip turns
    NaN into the lower bound, so the NaN weight that makes ONNX Runtime return NaN actions (and SkillRuntime
    raise) gives finite actions on OpenVINO - in Python's openvino backend and in C++ the same."""
    bad = shutil.copytree(cpp_bundle, tmp_path / "bad")
    _rewrite_graph(bad, SKILL, _nan_weight)
    inputs, task_obs = cases[SKILL][0]
    with SkillRuntime(bad, backend="ort-cpu", skills=[SKILL], share_bfm=False, config=ONE_THREAD) as py:
        with pytest.raises(NonFiniteActionsError):
            py.act(inputs, task_obs)
    with SkillRuntime(bad, backend="openvino", skills=[SKILL], share_bfm=False, config=ONE_THREAD) as py:
        want = py.act(inputs, task_obs)
    with CppRuntime(cpp_lib, bad, [SKILL]) as cpp:
        got = cpp.act(inputs, task_obs)
    assert np.isfinite(got).all() and max_abs(got, want) <= TOL


def test_unknown_skills_and_use_after_close_are_refused(cpp_lib, cpp_bundle, references, cases):
    with pytest.raises(UnknownNameError):
        references["openvino"].switch("no-such-skill")
    with CppRuntime(cpp_lib, cpp_bundle) as cpp:
        with pytest.raises(CppError, match="ERR_UNKNOWN_NAME: unknown resident skill 'no-such-skill'"):
            cpp.switch("no-such-skill")
        cpp.close()
        with pytest.raises(CppError, match="ERR_CLOSED"):
            cpp.act(*cases[cpp.active][0])
        with pytest.raises(CppError, match="ERR_CLOSED"):
            cpp.switch(SKILL)
    with pytest.raises(UnknownNameError):
        SkillRuntime(cpp_bundle, backend="openvino", skills=["no-such-skill"])
    with pytest.raises(CppError, match="ERR_UNKNOWN_NAME"):
        CppRuntime(cpp_lib, cpp_bundle, ["no-such-skill"])
    with SkillRuntime(cpp_bundle, backend="openvino", skills=[SKILL]) as py:
        py.close()
        with pytest.raises(TTDeployError, match="closed"):
            py.act(*cases[SKILL][0])


def test_overlapping_calls_are_refused_never_wrong(cpp_lib, cpp_bundle, cases):
    """tests/runtime/test_runtime_safety.py's check, through the C ABI: two threads on one runtime; each call
    returns exactly the single-threaded actions or ERR_CONCURRENT_USE."""
    with CppRuntime(cpp_lib, cpp_bundle, [SKILL]) as cpp:
        work = cases[SKILL]
        want = [cpp.act(*c) for c in work]
        wrong, refused, ok = [], [], []

        def worker(offset):
            for i in range(200):
                k = (i + offset) % len(work)
                try:
                    got = cpp.act(*work[k])
                except CppError as exc:
                    assert exc.status == "ERR_CONCURRENT_USE"
                    refused.append(k)
                    continue
                (ok if np.array_equal(got, want[k]) else wrong).append(k)

        threads = [threading.Thread(target=worker, args=(o,)) for o in (0, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert wrong == [] and len(ok) + len(refused) == 400 and ok


def test_matches_the_python_fast_path_and_reports_latency(cpp_lib, cpp_bundle, references, cases):
    """The C ABI's actions equal Python's act_into (its bound fast path); the p50 of each call is printed (ctypes
    included on the C side; not a gate: the machine is shared)."""
    py = references["openvino"]
    py.switch(SKILL)
    inputs, task_obs = cases[SKILL][0]
    out = np.empty((1, py.manifest.action_dim), np.float32)
    with CppRuntime(cpp_lib, cpp_bundle, [SKILL]) as cpp:
        timings = {}
        for name, call in (("c-abi", lambda: cpp.act(inputs, task_obs)), ("python", lambda: py.act_into(inputs, task_obs, out))):
            for _ in range(20):
                call()
            samples = []
            for _ in range(200):
                t0 = time.perf_counter_ns()
                call()
                samples.append(time.perf_counter_ns() - t0)
            timings[name] = float(np.median(samples)) / 1e3
        np.testing.assert_allclose(cpp.act(inputs, task_obs), out[0], atol=TOL)
    print("act p50 us:", {k: round(v, 1) for k, v in timings.items()})
    assert all(v > 0 for v in timings.values())
