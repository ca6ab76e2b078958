"""The OpenVINO backend: fp32 pinned (never a silent bf16), the same actions as ONNX Runtime in every mode,
and bf16 as a reduced precision behind the closed-loop gate."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="the OpenVINO backend is an optional extra: pip install 'tt-deploy[openvino]'")

from tt_deploy.errors import BundleError, InputError  # noqa: E402
from tt_deploy.runtime import SkillRuntime  # noqa: E402
from tt_deploy.runtime import manifest as mf  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from tt_deploy.export.bundle import export_skill

    return export_skill("reach", bundle_dir=tmp_path_factory.mktemp("ov") / "deploy")


def _feeds(rt, n, seed=0):
    rng = np.random.default_rng(seed)
    task = rng.standard_normal((n, rt.skills["reach"].task_obs_dim)).astype(np.float32)
    feeds = {t.name: (rng.random((n, *t.shape[1:])) < 0.5) if t.dtype == "bool" else
             rng.standard_normal((n, *t.shape[1:])).astype(np.float32)
             for t in rt.inputs if t.name != "task_obs"}  # fmt: skip
    return feeds, task


@pytest.mark.parametrize(("mode", "batch"), [("fused", 1), ("fused", None), ("split", 1), ("split", None)])
def test_fp32_is_pinned_and_matches_onnx_runtime(bundle, mode, batch):
    with SkillRuntime(bundle, "ort-cpu", mode=mode, batch=batch) as ort, \
            SkillRuntime(bundle, "openvino", mode=mode, batch=batch) as ov:  # fmt: skip
        assert ov.backend == "openvino" and ov.graphs("reach") == ort.graphs("reach")
        runner = ov._runners["reach"]
        for r in (runner.encoder, runner.head) if mode == "split" else (runner,):
            assert r.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
        feeds, task = _feeds(ort, 1 if batch == 1 else 5)
        if batch == 1:
            got, want = ov.act(feeds, task), ort.act(feeds, task)
            out = np.empty((1, 69), np.float32)
            np.testing.assert_allclose(ov.act_into(feeds, task, out)[0], got, rtol=0, atol=1e-6)  # into the buffer
        else:
            got, want = ov.act_batch(feeds, task), ort.act_batch(feeds, task)
    assert np.abs(got - want).max() < 1e-5


def test_bf16_is_a_reduced_precision_behind_the_gate(bundle):
    from tt_deploy.sim.perturbations import NOMINAL
    from tt_deploy.sim2sim import run_sim2sim

    with pytest.raises(InputError, match="--backend openvino"):
        SkillRuntime(bundle, "openvino", precision="bf16")
    with pytest.raises(InputError, match="backend='openvino'"):
        SkillRuntime(bundle, "ort-cpu", precision="bf16")
    with pytest.raises(InputError, match="ONNX Runtime graphs"):
        SkillRuntime(bundle, "openvino", precision="int8")
    with SkillRuntime(bundle, "ort-cpu") as ort, \
            SkillRuntime(bundle, "openvino", precision="bf16", allow_unverified_precision=True) as ov:  # fmt: skip
        assert ov._runners["reach"].compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"
        feeds, task = _feeds(ort, 1)
        diff = np.abs(ov.act(feeds, task) - ort.act(feeds, task)).max()
    assert 1e-5 < diff < 0.05  # really bf16, and close
    run_sim2sim(bundle, "reach", grid=[NOMINAL], episodes=2, episode_seconds=0.5, cross_sim=False, backend="openvino",
                precision="bf16", atol=1.0)  # fmt: skip
    gate = mf.read_skill(bundle, "reach").precision_gates["bf16"]
    assert gate["backend"] == "openvino" and gate["passed"] and gate["evidence"]["graphs"]
    with pytest.raises(InputError, match="2 episodes per cell; at least 8"):  # passed, on too little evidence
        SkillRuntime(bundle, "openvino", precision="bf16")


def test_a_modified_graph_is_refused_before_openvino_compiles_it(bundle, tmp_path):
    import shutil

    copy = shutil.copytree(bundle, tmp_path / "copy")
    path = mf.content_dir(copy) / "skills" / "reach" / "fused.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BundleError, match="sha256"):
        SkillRuntime(copy, "openvino")
