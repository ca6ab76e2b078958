"""ONNX Runtime vs PyTorch parity (fp32, abs <= 1e-5) for bfm / encoder / fused graphs, static and dynamic."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from bundle_helpers import make_run, random_inputs, torch_actions

from tt_deploy.export.bundle import export_skill
from tt_deploy.runtime import manifest as mf
from tt_deploy.spec import TOKEN_GROUPS

TOL = 1e-5
REACH_TRAINED = {  # what `ttdeploy train --prior` records: the prior prompt's group was visible
    "visible_groups": ("obs", "historical_pose_obs", "masked_mimic_target_poses", "terrain"),
    "task_prior": {"name": "reach", "params": {}, "goal_keys": ["target"]},
}


@pytest.fixture(scope="module")
def exported(small_bfm_file, tmp_path_factory):
    """Bundle with `reach` (trained run, prior prompt visible) and `strike` (trained run, no prior)."""
    bfm, bfm_path = small_bfm_file
    root = tmp_path_factory.mktemp("export")
    reach_run, reach = make_run(
        root / "reach_run", bfm_path, "reach", 3, bfm.token_dim, 11, **REACH_TRAINED
    )
    strike_run, strike = make_run(root / "strike_run", bfm_path, "strike", 15, bfm.token_dim, 12)
    bundle = root / "deploy"
    export_skill("reach", bfm_path=bfm_path, run_dir=reach_run, bundle_dir=bundle)
    export_skill("strike", bfm_path=bfm_path, run_dir=strike_run, bundle_dir=bundle)
    return bundle, bfm, {"reach": reach, "strike": strike}


def _session(bundle, rel):
    return ort.InferenceSession(str(mf.content_dir(bundle) / rel), providers=["CPUExecutionProvider"])


def _cases(batch: int):
    """Random masks, every group hidden, everything visible, extreme values."""
    hidden = random_inputs(batch, 1)
    for g in TOKEN_GROUPS:
        if g.mask_name:
            hidden[g.mask_name][:] = False
    visible = random_inputs(batch, 2, visible_p=1.0)
    extreme = random_inputs(batch, 3, scale=1e4)  # normalisers clamp these to +-5
    extreme["obs"][:, :5] = 3e38
    # terrain enters the decoder un-normalised (ref): +-100 m heights, not 1e4, else fp32 rounding
    # of 1e4-sized intermediates alone exceeds 1e-5 in both runtimes
    extreme["terrain"] = np.clip(extreme["terrain"], -100.0, 100.0)
    return {
        "random": random_inputs(batch, 0),
        "all_hidden": hidden,
        "all_visible": visible,
        "extreme": extreme,
    }


@pytest.mark.parametrize("dynamic", [False, True])
def test_bfm_graph_matches_torch(exported, dynamic):
    bundle, bfm, _ = exported
    sess = _session(bundle, mf.graph_file("bfm", dynamic))
    batch = 5 if dynamic else 1
    errs = {}
    for name, inputs in _cases(batch).items():
        token = torch.randn(batch, bfm.token_dim, generator=torch.Generator().manual_seed(7)) * 3
        got = sess.run(None, {**inputs, "task_token": token.numpy()})[0]
        assert got.shape == (batch, 69)
        errs[name] = float(np.abs(got - torch_actions(bfm, inputs, token)).max())
    assert max(errs.values()) <= TOL, errs


@pytest.mark.parametrize("dynamic", [False, True])
def test_encoder_graph_matches_torch(exported, dynamic):
    bundle, _, encoders = exported
    for skill, enc in encoders.items():
        sess = _session(bundle, f"skills/{skill}/{mf.graph_file('encoder', dynamic)}")
        x = (
            np.random.default_rng(3)
            .standard_normal((6 if dynamic else 1, enc.config.obs_dim))
            .astype(np.float32)
            * 4
        )
        with torch.no_grad():
            ref = enc(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(sess.run(None, {"task_obs": x})[0], ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("dynamic", [False, True])
def test_fused_graph_equals_full_bfm_with_dropped_groups_hidden(exported, dynamic):
    bundle, bfm, encoders = exported
    batch = 4 if dynamic else 1
    for skill, enc in encoders.items():
        fused = _session(bundle, f"skills/{skill}/{mf.graph_file('fused', dynamic)}")
        takes = [i.name for i in fused.get_inputs()]
        for name, inputs in _cases(batch).items():
            task_obs = (
                np.random.default_rng(9).standard_normal((batch, enc.config.obs_dim)).astype(np.float32)
            )
            got = fused.run(None, {k: v for k, v in inputs.items() if k in takes} | {"task_obs": task_obs})[0]
            full = dict(inputs)  # the full graph sees the dropped groups, but hidden
            for g in TOKEN_GROUPS:
                if g.mask_name and g.name not in takes:
                    full[g.mask_name] = np.zeros_like(full[g.mask_name])
            with torch.no_grad():
                token = enc(torch.from_numpy(task_obs))
            np.testing.assert_allclose(
                got, torch_actions(bfm, full, token), rtol=0, atol=TOL, err_msg=f"{skill} {name}"
            )


def test_fused_graphs_are_specialised(exported):
    bundle, _, _ = exported
    reach = [i.name for i in _session(bundle, "skills/reach/fused.onnx").get_inputs()]
    strike = [i.name for i in _session(bundle, "skills/strike/fused.onnx").get_inputs()]
    assert mf.read_skill(bundle, "reach").encoder_source.startswith("trained run ")
    assert mf.read_skill(bundle, "reach").encoder_source.endswith("steps 1234")
    assert mf.read_skill(bundle, "reach").task_prior["name"] == "reach"
    assert strike == ["obs", "historical_pose_obs", "historical_pose_obs_mask", "terrain", "task_obs"]
    assert reach == [  # a prior prompt trained visible keeps the target-pose group
        "obs", "historical_pose_obs", "historical_pose_obs_mask", "masked_mimic_target_poses",
        "masked_mimic_target_poses_masks", "terrain", "task_obs",
    ]  # fmt: skip


def test_graphs_are_clean_checked_opset17_with_layernorm(exported):
    bundle, _, _ = exported
    for path in sorted(mf.content_dir(bundle).rglob("*.onnx")):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
        ops = {n.op_type for n in model.graph.node}
        if "encoder" not in path.name:
            assert "LayerNormalization" in ops and "Clip" in ops
        dims = [
            d.dim_param or d.dim_value for i in model.graph.input for d in i.type.tensor_type.shape.dim[:1]
        ]
        assert set(dims) == ({"batch"} if ".batch." in path.name else {1})


def test_paper_bfm_graph_parity(tmp_path):
    """The paper-size BFM (13 M params): one static graph, ONNX Runtime vs PyTorch (~4 s)."""
    from tt_deploy.export.onnx_graphs import BFMGraph, export_graph
    from tt_deploy.models.bfm import BFM
    from tt_deploy.models.config import bfm_config

    torch.manual_seed(0)
    bfm = BFM(bfm_config("paper")).freeze()
    _, _, err = export_graph(
        BFMGraph(bfm), tmp_path / "bfm.onnx", dynamic=False, opset=17, last_dim=512, metadata={}
    )
    assert err <= TOL
