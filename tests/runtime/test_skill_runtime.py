"""SkillRuntime: parity with PyTorch, modes, switching, input validation, bundle checks, no torch."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
import torch
from bundle_helpers import make_run, random_inputs, torch_actions

from tt_deploy.errors import BundleError, InputError, MissingExtraError, TTDeployError, UnknownNameError
from tt_deploy.export.bundle import export_skill
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime import manifest as mf

TOL = 1e-5
SPECIALISED = "bfm.obs+historical_pose_obs+terrain.onnx"  # both test skills keep the default groups


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    """`reach` (3-dim task obs) and `steering` (5) trained-run skills on the small test BFM."""
    bfm, path = small_bfm_file
    root = tmp_path_factory.mktemp("rt")
    encoders = {}
    for skill, dim, seed in (("reach", 3, 1), ("steering", 5, 2)):
        run, encoders[skill] = make_run(root / skill, path, skill, dim, bfm.token_dim, seed)
        export_skill(skill, bfm_path=path, run_dir=run, bundle_dir=root / "deploy")
    return root / "deploy", bfm, encoders


@pytest.fixture(scope="module")
def rt(bundle):
    with SkillRuntime(bundle[0], backend="ort-cpu") as runtime:
        yield runtime


def sample(seed: int, hide_dropped: bool = True) -> dict[str, np.ndarray]:
    """Per-sample inputs (no batch axis); groups the fused graphs drop are left out when hide_dropped."""
    x = {k: v[0] for k, v in random_inputs(1, seed).items()}
    if hide_dropped:
        for k in ("masked_mimic_target_poses", "motion_text_embeddings", "object_bounding_box_obs"):
            x.pop(k), x.pop(k + ("_masks" if k.startswith("masked") else "_mask"))
    return x


def reference(bundle, skill, inputs, task_obs):
    """PyTorch actions (B, 69); per-sample inputs (task_obs 1-D) get a batch axis first."""
    _, bfm, encoders = bundle
    if task_obs.ndim == 1:
        inputs, task_obs = {k: v[None] for k, v in inputs.items()}, task_obs[None]
    with torch.no_grad():
        token = encoders[skill](torch.from_numpy(task_obs))
    return torch_actions(bfm, inputs, token)


def test_fused_and_split_match_torch_and_switch(bundle, rt):
    obs = sample(0)
    split = SkillRuntime(bundle[0], mode="split")
    for skill, dim in (("reach", 3), ("steering", 5)):
        rt.switch(skill)
        split.switch(skill)
        task_obs = np.linspace(-2, 2, dim, dtype=np.float32)
        ref = reference(bundle, skill, obs, task_obs)[0]
        np.testing.assert_allclose(rt.act(obs, task_obs), ref, rtol=0, atol=TOL)
        np.testing.assert_allclose(split.act(obs, task_obs), ref, rtol=0, atol=TOL)
        out = np.empty(69, np.float32)
        assert split.act_into(obs, task_obs, out) is out
        np.testing.assert_allclose(out, ref, rtol=0, atol=TOL)
    a_reach = (rt.switch("reach"), rt.act(obs, np.ones(3, np.float32)))[1]
    a_steer = (rt.switch("steering"), rt.act(obs, np.ones(5, np.float32)))[1]
    assert np.abs(a_reach - a_steer).max() > 1e-6  # a random small BFM barely listens to its task token
    rt.switch("reach")
    np.testing.assert_array_equal(rt.act(obs, np.ones(3, np.float32)), a_reach)
    split.close()


def test_fused_skills_share_one_specialised_bfm(bundle, rt):
    """Two resident fused skills with the same visible groups run one BFM session (one copy of the
    weights, pre-packed once) behind their own encoders, with the fused graphs' actions."""
    assert rt.graphs("reach") == ("skills/reach/encoder.onnx", SPECIALISED)
    assert rt.graphs("steering") == ("skills/steering/encoder.onnx", SPECIALISED)
    assert rt._runners["reach"].head is rt._runners["steering"].head
    with SkillRuntime(bundle[0], backend="ort-cpu", share_bfm=False) as own:
        assert own.graphs("reach") == ("skills/reach/fused.onnx",) and own.graphs("steering") == ("skills/steering/fused.onnx",)
        for skill, dim in (("reach", 3), ("steering", 5)):
            rt.switch(skill)
            own.switch(skill)
            assert rt.inputs == own.inputs and rt.outputs == own.outputs
            for seed in range(3):
                obs, task_obs = sample(seed), np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
                out = np.empty(69, np.float32)
                np.testing.assert_allclose(rt.act_into(obs, task_obs, out), own.act(obs, task_obs), rtol=0, atol=1e-6)
                np.testing.assert_allclose(rt.act(obs, task_obs), out, rtol=0, atol=0)
    with SkillRuntime(bundle[0], skills=["reach"]) as single:  # one skill: its own fused graph, as before
        assert single.graphs() == ("skills/reach/fused.onnx",)
    with SkillRuntime(bundle[0], skills=["reach"], share_bfm=True, batch=None) as forced:
        assert forced.graphs() == ("skills/reach/encoder.batch.onnx", SPECIALISED.replace(".onnx", ".batch.onnx"))
        inputs = {k: v[None].repeat(4, 0) for k, v in sample(5).items()}
        task_obs = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
        np.testing.assert_allclose(
            forced.act_batch(inputs, task_obs), reference(bundle, "reach", inputs, task_obs), rtol=0, atol=TOL
        )
    with SkillRuntime(bundle[0], mode="split") as split:  # split shares bfm.onnx already
        assert split.graphs("steering") == ("skills/steering/encoder.onnx", "bfm.onnx")


_RSS = """
import os, sys
import numpy as np
from tt_deploy.runtime import SkillRuntime
rt = SkillRuntime(sys.argv[1], backend="ort-cpu", share_bfm={"auto": None, "off": False}[sys.argv[2]])
x = {"obs": np.zeros(358, np.float32), "terrain": np.zeros(256, np.float32)}
for s, dim in (("reach", 3), ("steering", 5)):
    rt.switch(s)
    rt.act(x, np.zeros(dim, np.float32))
print(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_shared_bfm_keeps_one_copy_of_the_weights_resident(bundle):
    """RSS (fresh subprocesses) of two fused skills: sharing must save at least one BFM weight copy."""
    def rss(share: str) -> int:
        res = subprocess.run([sys.executable, "-c", _RSS, str(bundle[0]), share], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
        assert res.returncode == 0, res.stderr
        return int(res.stdout.strip().splitlines()[-1])

    weights = (mf.content_dir(bundle[0]) / SPECIALISED).stat().st_size  # ~ the BFM weights (fp32 initializers)
    assert rss("off") - rss("auto") > weights


def test_switch_is_cheap(rt):
    for _ in range(100):
        rt.switch("steering"), rt.switch("reach")
    times = []
    for _ in range(2000):
        t = time.perf_counter_ns()
        rt.switch("steering")
        times.append(time.perf_counter_ns() - t)
    assert np.median(times) / 1e3 <= 100


def test_dropped_groups_hidden_ok_visible_refused(bundle, rt):
    rt.switch("reach")
    full = sample(1, hide_dropped=False)
    task_obs = np.zeros(3, np.float32)
    hidden = dict(full)
    for k in (
        "masked_mimic_target_poses_masks",
        "motion_text_embeddings_mask",
        "object_bounding_box_obs_mask",
    ):
        hidden[k] = np.zeros_like(full[k])
    np.testing.assert_allclose(rt.act(hidden, task_obs), rt.act(sample(1), task_obs), rtol=0, atol=0)
    np.testing.assert_allclose(
        rt.act(hidden, task_obs), reference(bundle, "reach", hidden, task_obs)[0], atol=TOL
    )
    with pytest.raises(InputError, match="'motion_text_embeddings' has visible tokens but skill 'reach'"):
        rt.act({**hidden, "motion_text_embeddings_mask": np.ones(1, bool)}, task_obs)
    with SkillRuntime(bundle[0], mode="split", skills=["reach"]) as split:  # split sees every group
        np.testing.assert_allclose(
            split.act(full, task_obs), reference(bundle, "reach", full, task_obs)[0], atol=TOL
        )


def test_act_batch_dynamic_graphs(bundle):
    inputs = random_inputs(8, 4)
    for k in ("masked_mimic_target_poses", "motion_text_embeddings", "object_bounding_box_obs"):
        inputs.pop(k), inputs.pop(k + ("_masks" if k.startswith("masked") else "_mask"))
    task_obs = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    for mode in ("fused", "split"):
        with SkillRuntime(bundle[0], mode=mode, batch=None, skills=["steering"]) as r:
            got = r.act_batch(inputs, task_obs)
            assert got.shape == (8, 69) and r.inputs[0].shape == ("batch", 358)
            np.testing.assert_allclose(got, reference(bundle, "steering", inputs, task_obs), rtol=0, atol=TOL)


def test_bad_inputs_are_named(rt):
    rt.switch("reach")
    good, task_obs = sample(2), np.zeros(3, np.float32)
    cases = [
        (
            {**good, "obs": np.zeros(357, np.float32)},
            task_obs,
            r"'obs' must have shape \(358,\) or \(1, 358\), got \(357,\)",
        ),
        (
            {**good, "obs": good["obs"].astype(np.float64)},
            task_obs,
            "'obs' must have dtype float32, got float64",
        ),
        ({**good, "historical_pose_obs_mask": np.ones(15, np.int64)}, task_obs, "must have dtype bool"),
        ({**good, "terrain": np.full(256, np.nan, np.float32)}, task_obs, "'terrain' contains NaN or inf"),
        (good, np.array([0, np.inf, 0], np.float32), "'task_obs' contains NaN or inf"),
        (good, np.zeros(5, np.float32), r"'task_obs' must have shape \(3,\)"),
        ({**good, "obz": good["obs"]}, task_obs, "unknown input 'obz'"),
        ({k: v for k, v in good.items() if k != "obs"}, task_obs, "input 'obs' is required"),
    ]
    for inputs, t, match in cases:
        with pytest.raises(InputError, match=match):
            rt.act(inputs, t)
    with pytest.raises(UnknownNameError, match="unknown resident skill 'strike'; known: reach, steering"):
        rt.switch("strike")
    with pytest.raises(InputError, match="batch=None for act_batch"):
        rt.act_batch({k: v[None] for k, v in good.items()}, np.zeros((2, 3), np.float32))


def test_backend_choice_is_explicit(bundle):
    assert SkillRuntime(bundle[0], skills=["reach"]).backend == "ort-cpu"  # auto on a CPU-only machine
    with pytest.raises(MissingExtraError, match="backend 'ort-cuda' needs CUDAExecutionProvider"):
        SkillRuntime(bundle[0], backend="ort-cuda")
    with pytest.raises(UnknownNameError, match="unknown backend 'tpu'"):
        SkillRuntime(bundle[0], backend="tpu")
    with pytest.raises(UnknownNameError, match="unknown skill 'strike'"):
        SkillRuntime(bundle[0], skills=["strike"])
    r = SkillRuntime(bundle[0], skills=["reach"])
    r.close()
    with pytest.raises(TTDeployError, match="closed"):
        r.act(sample(0), np.zeros(3, np.float32))


def _fix_hash(bundle, rel):
    """Rewrite manifest.json's sha256 of `rel` to match the (tampered) file: only the content check is left."""
    man = mf.read_manifest(bundle)
    sha = mf.sha256_file(mf.content_dir(bundle) / rel)
    graphs = tuple(g if g.path != rel else type(g)(**{**mf.to_dict(g), "sha256": sha}) for g in man.graphs)
    mf.write_manifest(bundle, type(man)(**{**man.__dict__, "graphs": graphs}))


def _corrupt(kind, bundle):
    b = mf.content_dir(bundle)  # the version the manifest names
    if kind == "missing file":
        (b / "bfm.onnx").unlink()
    elif kind == "hash mismatch":
        data = bytearray((b / "bfm.onnx").read_bytes())
        data[-100] ^= 0xFF
        (b / "bfm.onnx").write_bytes(bytes(data))
    elif kind == "truncated, hash fixed":
        (b / "bfm.onnx").write_bytes((b / "bfm.onnx").read_bytes()[:5000])
        _fix_hash(bundle, "bfm.onnx")
    elif kind == "input renamed, hash fixed":
        m = onnx.load(str(b / "bfm.onnx"))
        m.graph.input[-1].name = "task_tokens"
        for n in m.graph.node:
            n.input[:] = ["task_tokens" if i == "task_token" else i for i in n.input]
        onnx.save(m, str(b / "bfm.onnx"))
        _fix_hash(bundle, "bfm.onnx")
    elif kind == "weights flipped, manifest hash fixed":
        data = bytearray((b / "skills/reach/fused.onnx").read_bytes())
        data[len(data) // 2] ^= 0x01
        (b / "skills/reach/fused.onnx").write_bytes(bytes(data))
        _fix_hash(bundle, "skills/reach/fused.onnx")
    elif kind == "shared bfm flipped":
        data = bytearray((b / SPECIALISED).read_bytes())
        data[len(data) // 2] ^= 0x01
        (b / SPECIALISED).write_bytes(bytes(data))
    elif kind == "schema":
        p = bundle / "manifest.json"
        p.write_text(p.read_text().replace("tt-deploy.bundle/1", "tt-deploy.bundle/0"))


@pytest.mark.parametrize(
    "kind, mode, match",
    [
        ("missing file", "split", "bundle file missing: .*bfm.onnx; re-export"),
        ("hash mismatch", "split", "does not match the manifest .*truncated or modified - re-export"),
        ("truncated, hash fixed", "split", "not a loadable ONNX graph"),
        ("input renamed, hash fixed", "split", "graph inputs .* do not match the manifest"),
        ("weights flipped, manifest hash fixed", "fused", "skill.json and manifest.json disagree"),
        ("shared bfm flipped", "fused", r"bfm\.obs\+historical_pose_obs\+terrain\.onnx: sha256 .* does not match"),
        ("schema", "fused", "reads 'tt-deploy.bundle/1'; re-export"),
    ],
)
def test_broken_bundles_are_refused(bundle, tmp_path, kind, mode, match):
    b = shutil.copytree(bundle[0], tmp_path / "deploy")
    _corrupt(kind, b)
    with pytest.raises(BundleError, match=match):
        SkillRuntime(b, mode=mode)


def test_runtime_never_imports_torch(bundle):
    code = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import numpy as np
from tt_deploy.runtime import SkillRuntime
with SkillRuntime({str(bundle[0])!r}, mode="split") as rt:
    x = {{"obs": np.zeros(358, np.float32), "terrain": np.zeros(256, np.float32)}}
    a = rt.act(x, np.zeros(3, np.float32))
assert a.shape == (69,) and not any(m.startswith("torch") for m in sys.modules if sys.modules[m] is not None)
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_a_skill_trained_with_its_prior_refuses_a_call_that_hides_it(small_bfm_file, tmp_path):
    from tt_deploy.obs.priors import make_prior

    bfm, path = small_bfm_file
    task_prior = make_prior("reach", 1).describe()
    run, _ = make_run(tmp_path / "run", path, "reach", 3, bfm.token_dim, 5, task_prior=task_prior,
                      visible_groups=["obs", "historical_pose_obs", "masked_mimic_target_poses", "terrain"])
    deploy = export_skill("reach", bfm_path=path, run_dir=run, bundle_dir=tmp_path / "deploy")
    assert mf.read_skill(deploy, "reach").task_prior == task_prior
    x = {k: v for k, v in sample(7, hide_dropped=False).items()
         if not k.startswith(("motion_text", "object_bounding"))}
    x["masked_mimic_target_poses_masks"][-1] = True  # the far slot, as every prior shows it
    task_obs = np.zeros(3, np.float32)
    with SkillRuntime(deploy) as rt:
        assert rt.act(x, task_obs).shape == (69,)  # the prompt given (random tokens, some visible)
        hidden = {**x, "masked_mimic_target_poses_masks": np.zeros(11, bool)}
        with pytest.raises(InputError, match="trained with its 'reach' prior prompt visible") as err:
            rt.act(hidden, task_obs)
        # the message's recipe, followed literally with the skill.json the runtime loaded, rebuilds the prior
        recipe = re.search(r"tt_deploy\.obs\.priors\.(make_prior\([^()]*\))", str(err.value)).group(1)
        card = rt.skills["reach"].task_prior
        rebuilt = eval(recipe, {"make_prior": make_prior, "task_prior": card, "num_envs": 1})
        assert rebuilt.describe() == task_prior
        bare = {k: v for k, v in x.items() if not k.startswith("masked_mimic")}
        with pytest.raises(InputError, match="allow_hidden_prior"):
            rt.act(bare, task_obs)
    with SkillRuntime(deploy, allow_hidden_prior=True) as rt:  # the documented opt-out
        assert np.isfinite(rt.act(bare, task_obs)).all()


def test_a_skill_is_driven_by_the_prior_it_recorded_not_by_todays_default(small_bfm_file, tmp_path):
    """A prior's defaults can change after a skill shipped (strike_radius 1.2 -> 0.55 m did): verify,
    sim2sim and the demo build the task through make_task_for_skill, which must use the recorded value."""
    from tt_deploy.obs.priors import make_prior
    from tt_deploy.tasks.registry import make_task, make_task_for_skill

    bfm, path = small_bfm_file
    recorded = make_prior("strike", 1, strike_radius=1.2).describe()
    run, _ = make_run(tmp_path / "run", path, "strike", 15, bfm.token_dim, 6, task_prior=recorded,
                      visible_groups=["obs", "historical_pose_obs", "masked_mimic_target_poses", "terrain"])
    deploy = export_skill("strike", bfm_path=path, run_dir=run, bundle_dir=tmp_path / "deploy")
    task = make_task_for_skill(mf.read_skill(deploy, "strike"), 2)
    assert task.prior_prompt.describe() == recorded
    assert make_task("strike", 2, prior=True).prior_prompt.params["strike_radius"] != 1.2
