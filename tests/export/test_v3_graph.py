"""A ProtoMotions v3 MaskedMimic exported to ONNX reproduces the original code's outputs (tests/data/
protomotions_v3_small, written by ProtoMotions' own v3 code) through ONNX Runtime: every mask case, the prior
mean, and an 8-step rollout that feeds the previous action back, torch-free."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tt_deploy.errors import BundleError, InputError
from tt_deploy.export.v3_graph import export_v3
from tt_deploy.models.protomotions_v3 import load_v3
from tt_deploy.runtime.v3_rollout import V3Rollout
from tt_deploy.spec import V3_PREVIOUS_ACTIONS, V3_VAE_NOISE

FIXTURE = Path(__file__).parents[1] / "data" / "protomotions_v3_small"
ATOL = 1e-5


@pytest.fixture(scope="module")
def io():
    return np.load(FIXTURE / "io.npz")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    model, _ = load_v3(FIXTURE)
    root = tmp_path_factory.mktemp("v3")
    static, dynamic = root / "v3.onnx", root / "v3.batch.onnx"
    export_v3(model, static, dynamic=False)
    export_v3(model, dynamic, dynamic=True)
    return model, static, dynamic


def _inputs(io, group: str, i: int, names) -> dict:
    return {n: io[f"{group}/{n}"][i] for n in names}


def test_the_graph_keeps_the_original_input_names_and_no_task_token(graphs):
    model, static, _ = graphs
    g = onnx.load(str(static))
    names = [i.name for i in g.graph.input]
    assert names == list(model.input_names) and "task_token" not in names
    assert {"max_coords_obs", "historical_pose_obs", V3_PREVIOUS_ACTIONS, "masked_mimic_target_poses",
            "masked_mimic_target_masks", "masked_mimic_target_times", "masked_mimic_target_poses_masks",
            V3_VAE_NOISE} == set(names)  # fmt: skip
    meta = {p.key: p.value for p in g.metadata_props}
    assert meta["tt-deploy.action_transform"] == "tanh"


def test_every_mask_case_and_the_prior_mean_match_the_original(graphs, io):
    import onnxruntime as ort

    model, _, dynamic = graphs
    sess = ort.InferenceSession(str(dynamic), providers=["CPUExecutionProvider"])
    err = {"actions": 0.0, "actions_mean": 0.0}
    for i in range(len(io["cases/names"])):
        feeds = _inputs(io, "cases", i, model.input_names)
        err["actions"] = max(err["actions"], float(np.abs(sess.run(None, feeds)[0] - io["cases/actions"][i]).max()))
        feeds[V3_VAE_NOISE] = np.zeros_like(feeds[V3_VAE_NOISE])
        mean = sess.run(None, feeds)[0]
        err["actions_mean"] = max(err["actions_mean"], float(np.abs(mean - io["cases/actions_mean"][i]).max()))
    print("ONNX Runtime vs the original, max abs over 16 cases x 4 envs:", err)
    assert max(err.values()) <= ATOL, err


def test_the_batch_1_graph_matches_each_env(graphs, io):
    import onnxruntime as ort

    model, static, _ = graphs
    sess = ort.InferenceSession(str(static), providers=["CPUExecutionProvider"])
    for env in range(4):
        feeds = {n: io[f"cases/{n}"][0, env : env + 1] for n in model.input_names}
        assert np.abs(sess.run(None, feeds)[0][0] - io["cases/actions"][0, env]).max() <= ATOL


def test_a_rollout_that_carries_the_previous_action_matches_the_original(graphs, io):
    model, _, dynamic = graphs
    run = V3Rollout(dynamic, 4, vae_noise=io["rollout/vae_noise"][0])
    obs_names = [n for n in model.input_names if n not in (V3_PREVIOUS_ACTIONS, V3_VAE_NOISE)]
    assert np.array_equal(io["rollout/previous_actions"][0], np.zeros((4, 69), np.float32))  # episode start
    worst = 0.0
    for t in range(io["rollout/actions"].shape[0]):
        assert np.abs(run.previous - io["rollout/previous_actions"][t]).max() <= ATOL
        actions = run.step(_inputs(io, "rollout", t, obs_names))
        worst = max(worst, float(np.abs(actions - io["rollout/actions"][t]).max()))
    print("8-step stateful rollout, max abs vs the original:", worst)
    assert worst <= ATOL
    run.reset([1])
    assert not run.previous[1].any() and not run.noise[1].any() and run.noise[0].any()


def test_the_rollout_refuses_other_graphs_and_non_finite_inputs(graphs, io, tmp_path):
    model, _, dynamic = graphs
    not_v3 = tmp_path / "x.onnx"
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                                            [x], [onnx.helper.make_tensor_value_info(
                                                                "y", onnx.TensorProto.FLOAT, [1])])), str(not_v3))
    with pytest.raises(BundleError, match="not a ProtoMotions v3 graph"):
        V3Rollout(not_v3, 1)
    run = V3Rollout(dynamic, 4)
    obs = _inputs(io, "rollout", 0, [n for n in model.input_names if n not in (V3_PREVIOUS_ACTIONS, V3_VAE_NOISE)])
    bad = dict(obs, max_coords_obs=np.full_like(obs["max_coords_obs"], np.nan))
    with pytest.raises(InputError, match="non-finite"):
        run.step(bad)
    with pytest.raises(InputError, match="expected a float32 array of shape"):
        run.step(dict(obs, max_coords_obs=obs["max_coords_obs"].astype(np.float64)))
    with pytest.raises(InputError, match="carried here"):
        run.step({**obs, V3_PREVIOUS_ACTIONS: np.zeros((4, 69), np.float32)})
    with pytest.raises(InputError, match="vae_noise"):
        run.reset([0], vae_noise=np.zeros(3))
    with pytest.raises(InputError, match="batch-1 graph"):
        V3Rollout(graphs[1], 4)
