"""act_into's bound batch-1 fast path (issue #37 item 2): bit-identical to `act` and to a plain ONNX Runtime
session, defaults of left-out groups as the full path writes them, and every refusal the full path makes."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tt_deploy.errors import InputError, NonFiniteActionsError
from tt_deploy.export.bundle import export_skill
from tt_deploy.runtime.parity import random_inputs
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime import manifest as mf

DROPPED = ("masked_mimic_target_poses", "motion_text_embeddings", "object_bounding_box_obs")  # by both fused graphs
MASK = {"masked_mimic_target_poses": "masked_mimic_target_poses_masks", "motion_text_embeddings":
        "motion_text_embeddings_mask", "object_bounding_box_obs": "object_bounding_box_obs_mask",
        "historical_pose_obs": "historical_pose_obs_mask"}  # fmt: skip
DIMS = {"reach": 3, "steering": 5}


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("fast") / "deploy"
    for skill in DIMS:
        export_skill(skill, bfm_path=small_bfm_file[1], bundle_dir=root)
    return root


def case(seed: int, dim: int, dropped: str = "hidden") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-sample inputs from verify's generator (random masks); the groups the fused graphs drop are given
    fully hidden ("hidden") or left out ("absent")."""
    rng = np.random.default_rng(seed)
    x = {k: v[0] for k, v in random_inputs(1, rng, visible_p=0.5).items()}
    for g in DROPPED:
        if dropped == "absent":
            x.pop(g), x.pop(MASK[g])
        else:
            x[MASK[g]][:] = False
    return x, (rng.standard_normal(dim) * 2).astype(np.float32)


def no_full_path(rt: SkillRuntime) -> None:
    """Make the runtime's full path raise, so a call that reaches it fails the test."""
    def full(*_a, **_k):
        raise AssertionError("act_into fell back to the full path")

    rt._run = full


def plain_feeds(rt: SkillRuntime, x: dict, task_obs: np.ndarray) -> dict[str, np.ndarray]:
    """The fused graph's feeds built by hand from the documented input rules (absent group: zeros + mask False;
    a group without its mask: all visible)."""
    feeds = {}
    for t in rt.inputs:
        if t.name == "task_obs":
            feeds[t.name] = task_obs[None]
        elif t.name in x:
            feeds[t.name] = x[t.name][None]
        elif t.name.endswith(("_mask", "_masks")):
            group = next(g for g, m in MASK.items() if m == t.name)
            feeds[t.name] = np.full((1, *t.shape[1:]), group in x, bool)
        else:
            feeds[t.name] = np.zeros((1, *t.shape[1:]), np.float32)
    return feeds


def test_bit_identical_to_act_and_to_a_plain_session(bundle):
    """Fused graph, both skills (switching between them), out shaped (69,) and (1, 69), random inputs whose
    values change every call (in place and as new arrays)."""
    root = mf.content_dir(bundle)
    plain = {s: ort.InferenceSession(str(root / f"skills/{s}/fused.onnx"), providers=["CPUExecutionProvider"])
             for s in DIMS}  # fmt: skip
    with SkillRuntime(bundle, backend="ort-cpu", share_bfm=False) as rt:
        outs = {"flat": np.empty(69, np.float32), "row": np.empty((1, 69), np.float32)}
        held = {s: case(100, d) for s, d in DIMS.items()}  # refilled in place below: the same objects every call
        for seed in range(24):
            skill = ("reach", "steering")[seed % 2]
            rt.switch(skill)
            if seed % 3 == 0:
                x, task_obs = case(seed, DIMS[skill])  # new arrays
            else:
                x, task_obs = held[skill]
                fresh, fresh_obs = case(seed, DIMS[skill])
                for k in x:
                    x[k][...] = fresh[k]
                task_obs[...] = fresh_obs
            out = outs["flat" if seed % 2 else "row"]
            want = rt.act(x, task_obs)  # the full path
            saved = rt._run
            no_full_path(rt)
            assert rt.act_into(x, task_obs, out) is out
            rt._run = saved
            np.testing.assert_array_equal(out.reshape(69), want)
            (ref,) = plain[skill].run(None, plain_feeds(rt, x, task_obs))
            np.testing.assert_array_equal(out.reshape(69), ref[0])
        assert set(rt._bound) == set(DIMS)  # one binding per skill, kept across switches


@pytest.mark.parametrize("mode,share", [("fused", True), ("split", None)])
def test_chained_runners_take_the_fast_path_too(bundle, mode, share):
    """Encoder + shared specialised BFM (fused, share_bfm) and encoder + bfm.onnx (split): bound as two
    bindings sharing a token buffer; the same actions as act."""
    with SkillRuntime(bundle, backend="ort-cpu", mode=mode, share_bfm=share) as rt:
        assert len(rt.graphs()) == 2
        out = np.empty(69, np.float32)
        for seed in range(6):
            rt.switch(("reach", "steering")[seed % 2])
            x, task_obs = case(seed, DIMS[rt.active])
            if mode == "split":  # split takes every group: give them visible too
                x = {k: v[0] for k, v in random_inputs(1, np.random.default_rng(seed)).items()}
            want = rt.act(x, task_obs)
            saved = rt._run
            no_full_path(rt)
            rt.act_into(x, task_obs, out)
            rt._run = saved
            np.testing.assert_array_equal(out, want)


def test_left_out_inputs_get_the_full_paths_defaults_whatever_came_before(bundle):
    """The bound buffers of left-out inputs are refilled whenever the set of given names changes: a hidden group
    (zeros, mask False), a group without its mask (True), batch-1 shaped arrays, dropped groups absent."""
    with SkillRuntime(bundle, backend="ort-cpu", skills=["reach"]) as rt:
        x, task_obs = case(3, 3)
        x["historical_pose_obs_mask"][:] = True
        variants = [
            x,
            {k: v for k, v in x.items() if k != "historical_pose_obs_mask"},  # group given, mask left out
            {k: v for k, v in x.items() if not k.startswith("historical_pose_obs")},  # group hidden
            case(4, 3, dropped="absent")[0],
            {k: v[None] for k, v in x.items()},  # batch-1 arrays
            {k: v for k, v in reversed(x.items())},  # another key order
        ]
        out = np.empty(69, np.float32)
        seen = []
        for _ in range(2):
            for v in variants:
                want = rt.act(v, task_obs)
                rt.act_into(v, task_obs, out)
                np.testing.assert_array_equal(out, want)
                seen.append(out.copy())
        assert not np.array_equal(seen[0], seen[2])  # hiding the history changes the actions


def test_every_refusal_of_the_full_path_stays(bundle):
    """The same typed errors as act, also after the fast path has bound and cached; a refused call leaves `out`
    untouched and the next good call is exact."""
    with SkillRuntime(bundle, backend="ort-cpu", skills=["reach"]) as rt:
        good, task_obs = case(5, 3)
        out = np.empty(69, np.float32)
        rt.act_into(good, task_obs, out)
        want = out.copy()
        nan_obs = good["obs"].copy()
        nan_obs[7] = np.nan
        cases = [
            ({**good, "obs": np.zeros(357, np.float32)}, task_obs, r"'obs' must have shape \(358,\) or \(1, 358\)"),
            ({**good, "obs": good["obs"].astype(np.float64)}, task_obs, "'obs' must have dtype float32, got float64"),
            ({**good, "obs": good["obs"].astype(">f4")}, task_obs, "non-native byte order"),
            ({**good, "obs": np.ma.masked_array(good["obs"])}, task_obs, "plain numpy.ndarray"),
            ({**good, "historical_pose_obs_mask": np.ones(15, np.int64)}, task_obs, "must have dtype bool"),
            ({**good, "obs": nan_obs}, task_obs, "'obs' contains NaN or inf"),
            ({**good, "terrain": np.full(256, np.inf, np.float32)}, task_obs, "'terrain' contains NaN or inf"),
            ({**good, "motion_text_embeddings": np.full(512, np.nan, np.float32)}, task_obs,
             "'motion_text_embeddings' contains NaN or inf"),  # given hidden, not fed: still checked
            (good, np.array([0, np.inf, 0], np.float32), "'task_obs' contains NaN or inf"),
            (good, np.zeros(5, np.float32), r"'task_obs' must have shape \(3,\)"),
            (good, [0.0, 0.0, 0.0], "'task_obs' must be a plain numpy.ndarray"),
            ({**good, "obz": good["obs"]}, task_obs, "unknown input 'obz'"),
            ({**good, "task_obs": task_obs}, task_obs, "unknown input 'task_obs'"),
            ({k: v for k, v in good.items() if k != "obs"}, task_obs, "input 'obs' is required"),
            ({**good, "obs": good["obs"][None].repeat(2, 0)}, task_obs, "must have shape"),
            ({**good, "motion_text_embeddings_mask": np.ones(1, bool)}, task_obs,
             "'motion_text_embeddings' has visible tokens but skill 'reach'"),
            ({k: v for k, v in good.items() if k != "motion_text_embeddings_mask"}, task_obs,
             "'motion_text_embeddings' has visible tokens"),  # given without its mask = visible
            ({**{k: v for k, v in good.items() if k != "historical_pose_obs"},
              "historical_pose_obs_mask": np.ones(15, bool)}, task_obs,
             "'historical_pose_obs_mask' marks tokens visible but 'historical_pose_obs' was not given"),
            ([("obs", good["obs"])], task_obs, "inputs must be a mapping"),
        ]  # fmt: skip
        for inputs, t, match in cases:
            with pytest.raises(InputError, match=match):
                rt.act(inputs, t)
            out[:] = 7.0
            with pytest.raises(InputError, match=match):
                rt.act_into(inputs, t, out)
            assert (out == 7.0).all(), match  # nothing written
            rt.act_into(good, task_obs, out)
            np.testing.assert_array_equal(out, want)
        x = dict(good)
        x["obs"] = good["obs"].copy()
        rt.act_into(x, task_obs, out)
        x["obs"].shape = (1, 358)  # the same object, reshaped in place: still accepted
        rt.act_into(x, task_obs, out)
        np.testing.assert_array_equal(out, want)
        x["obs"].dtype = np.int32  # the same object reinterpreted in place: refused
        with pytest.raises(InputError, match="must have dtype float32, got int32"):
            rt.act_into(x, task_obs, out)


def test_a_hidden_prior_is_refused_through_the_fast_path(small_bfm_file, tmp_path):
    """A prior-trained skill refuses a hidden prompt through act_into as through act."""
    from bundle_helpers import make_run

    from tt_deploy.obs.priors import make_prior

    bfm, path = small_bfm_file
    prior = make_prior("reach", 1).describe()
    run, _ = make_run(tmp_path / "run", path, "reach", 3, bfm.token_dim, 5, task_prior=prior,
                      visible_groups=["obs", "historical_pose_obs", "masked_mimic_target_poses", "terrain"])
    deploy = export_skill("reach", bfm_path=path, run_dir=run, bundle_dir=tmp_path / "deploy")
    x, task_obs = case(7, 3, dropped="absent")
    rng = np.random.default_rng(7)
    x["masked_mimic_target_poses"] = rng.standard_normal((11, 184)).astype(np.float32)
    x["masked_mimic_target_poses_masks"] = np.zeros(11, bool)
    x["masked_mimic_target_poses_masks"][-1] = True
    out = np.empty(69, np.float32)
    with SkillRuntime(deploy) as rt:
        rt.act_into(x, task_obs, out)
        np.testing.assert_array_equal(out, rt.act(x, task_obs))
        with pytest.raises(InputError, match="prior prompt visible"):
            rt.act_into({**x, "masked_mimic_target_poses_masks": np.zeros(11, bool)}, task_obs, out)
        with pytest.raises(InputError, match="allow_hidden_prior"):
            rt.act_into({k: v for k, v in x.items() if not k.startswith("masked_mimic")}, task_obs, out)
        rt.act_into({k: v for k, v in x.items() if k != "masked_mimic_target_poses_masks"}, task_obs, out)  # visible
    with SkillRuntime(deploy, allow_hidden_prior=True) as rt:
        bare = {k: v for k, v in x.items() if not k.startswith("masked_mimic")}
        rt.act_into(bare, task_obs, out)
        np.testing.assert_array_equal(out, rt.act(bare, task_obs))


def test_nonfinite_actions_from_the_bound_graph(bundle):
    """NaN actions from the graph (forced into the bound output here) raise or become zeros, as act's do."""
    x, task_obs = case(9, 3)
    for policy in ("raise", "zeros"):
        with SkillRuntime(bundle, backend="ort-cpu", skills=["reach"], nonfinite=policy) as rt:
            out = np.empty(69, np.float32)
            rt.act_into(x, task_obs, out)
            call = rt._bound["reach"]
            run = call.run

            def poisoned():
                run()
                call._out[0, 5] = np.nan

            call.run = poisoned
            if policy == "raise":
                with pytest.raises(NonFiniteActionsError, match="skill 'reach' returned NaN/inf actions"):
                    rt.act_into(x, task_obs, out)
            else:
                assert rt.act_into(x, task_obs, out) is out and not out.any()
            assert rt.nonfinite_count == 1


def test_stages_compose_to_act_into(bundle):
    with SkillRuntime(bundle, backend="ort-cpu", skills=["reach"]) as rt:
        x, task_obs = case(11, 3)
        out, want = np.empty(69, np.float32), rt.act(x, task_obs)
        stages = rt.act_into_stages(x, task_obs, out)
        assert list(stages) == ["check", "copy_in", "finite", "run", "copy_out"]
        out[:] = 0
        for f in stages.values():
            f()
        np.testing.assert_array_equal(out, want)
        with pytest.raises(InputError, match="fast path does not take"):
            rt.act_into_stages({**x, "obs": x["obs"].astype(np.float64)}, task_obs, out)
