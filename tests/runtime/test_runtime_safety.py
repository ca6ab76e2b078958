"""SkillRuntime refuses what would give silently wrong actions: NaN outputs, ndarray subclasses,
overlapping calls, edited skill.json, and misuse (batch 0, read-only buffers, use after close)."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import onnx
import pytest
from bundle_helpers import rehash_skill
from onnx import numpy_helper

from tt_deploy.errors import BundleError, ConcurrentUseError, InputError, NonFiniteActionsError, TTDeployError
from tt_deploy.export.bundle import export_skill
from tt_deploy.models.checkpoints import sha256_file
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime import manifest as mf


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    return export_skill("reach", bfm_path=small_bfm_file[1], bundle_dir=tmp_path_factory.mktemp("safe") / "deploy")


def _inputs():
    rng = np.random.default_rng(0)
    return {"obs": rng.normal(size=358).astype(np.float32), "terrain": np.zeros(256, np.float32)}


def _nan_weights(bundle, tmp_path):
    """A copy whose fused graph has one weight set to NaN, every hash fixed up (a flipped exponent bit
    looks the same): loads fine, returns NaN actions."""
    bad = shutil.copytree(bundle, tmp_path / "bad")
    root = mf.content_dir(bad)
    rel = "skills/reach/fused.onnx"
    model = onnx.load(str(root / rel))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init).copy()
    w.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(root / rel))
    sha = sha256_file(root / rel)
    data = json.loads((bad / mf.MANIFEST_FILE).read_text())
    for g in data["graphs"]:
        if g["path"] == rel:
            g["sha256"] = sha
    (bad / mf.MANIFEST_FILE).write_text(json.dumps(data))
    skill_json = root / mf.skill_dir("reach") / mf.SKILL_FILE
    sk = json.loads(skill_json.read_text())
    sk["graphs"][rel] = sha
    skill_json.write_text(json.dumps(sk))
    rehash_skill(bad, "reach")
    return bad


def test_nan_actions_raise_naming_the_skill_or_fall_back_to_zeros(bundle, tmp_path):
    bad = _nan_weights(bundle, tmp_path)
    with SkillRuntime(bad, backend="ort-cpu", share_bfm=False) as rt:
        with pytest.raises(NonFiniteActionsError, match="skill 'reach' returned NaN/inf actions"):
            rt.act(_inputs(), np.zeros(3, np.float32))
        out = np.full((1, 69), 7.0, np.float32)
        with pytest.raises(NonFiniteActionsError):
            rt.act_into(_inputs(), np.zeros(3, np.float32), out)
        assert not out.any()  # a controller that ignores the error still sends no NaN PD target
    with SkillRuntime(bad, backend="ort-cpu", share_bfm=False, nonfinite="zeros") as rt:
        out = np.full((1, 69), 7.0, np.float32)
        assert rt.act_into(_inputs(), np.zeros(3, np.float32), out) is out
        assert not out.any() and rt.nonfinite_count == 1
    with SkillRuntime(bundle, backend="ort-cpu") as rt:  # the intact bundle: finite, nothing counted
        assert np.isfinite(rt.act(_inputs(), np.zeros(3, np.float32))).all() and rt.nonfinite_count == 0


def test_masked_array_and_byte_order_are_refused(bundle):
    with SkillRuntime(bundle, backend="ort-cpu") as rt:
        x = _inputs()
        x["obs"] = np.ma.masked_array(x["obs"], mask=np.arange(358) == 3)
        x["obs"].data[3] = np.nan  # hidden by the mask from np.isfinite(...).all()
        with pytest.raises(InputError, match="plain numpy.ndarray, got numpy.ma.MaskedArray"):
            rt.act(x, np.zeros(3, np.float32))
        x = _inputs()
        x["obs"] = x["obs"].astype(">f4")
        with pytest.raises(InputError, match=r"dtype float32, got float32 in non-native byte order \(>f4\)"):
            rt.act(x, np.zeros(3, np.float32))


def test_misuse_gets_typed_errors(bundle):
    rt = SkillRuntime(bundle, backend="ort-cpu", batch=None)
    with pytest.raises(InputError, match="batch 0"):
        rt.act_batch({k: v[None][:0] for k, v in _inputs().items()}, np.zeros((0, 3), np.float32))
    out = np.zeros((1, 69), np.float32)
    out.flags.writeable = False
    with pytest.raises(InputError, match="read-only"):
        rt.act_into(_inputs(), np.zeros(3, np.float32), out)
    rt.close()
    for use in (lambda: rt.inputs, lambda: rt.outputs, lambda: rt.graphs(), lambda: rt.switch("reach"),
                lambda: rt.act(_inputs(), np.zeros(3, np.float32))):  # fmt: skip
        with pytest.raises(TTDeployError, match="closed"):
            use()


def test_overlapping_calls_raise_instead_of_returning_wrong_actions(bundle):
    """Two threads on one runtime: before the check up to 169 of 800 results were silently wrong. Now every
    call either returns exactly the single-threaded actions or raises ConcurrentUseError."""
    with SkillRuntime(bundle, backend="ort-cpu") as rt:
        rng = np.random.default_rng(1)
        cases = [(_inputs(), rng.normal(size=3).astype(np.float32)) for _ in range(8)]
        want = [rt.act(x, t) for x, t in cases]
        wrong, refused, ok = [], [], []

        def worker(offset):
            for i in range(400):
                k = (i + offset) % len(cases)
                try:
                    got = rt.act(*cases[k])
                except ConcurrentUseError:
                    refused.append(k)
                    continue
                (ok if np.array_equal(got, want[k]) else wrong).append(k)

        threads = [threading.Thread(target=worker, args=(o,)) for o in (0, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert wrong == [] and len(ok) + len(refused) == 800 and ok


def test_edited_task_obs_dim_is_refused_at_load(bundle, tmp_path):
    bad = shutil.copytree(bundle, tmp_path / "bad")
    skill_json = mf.content_dir(bad) / mf.skill_dir("reach") / mf.SKILL_FILE
    sk = json.loads(skill_json.read_text())
    sk["task_obs_dim"] = 5
    skill_json.write_text(json.dumps(sk))
    with pytest.raises(BundleError, match="does not match its sha256 in manifest.json: it was edited"):
        SkillRuntime(bad, backend="ort-cpu")
    rehash_skill(bad, "reach")  # a consistent edit: the width check behind the hash still catches it
    with pytest.raises(BundleError, match="task_obs_dim 5 .* but its encoder graph takes \\[3\\]"):
        SkillRuntime(bad, backend="ort-cpu")


def test_edited_visible_groups_are_refused_at_load(bundle, tmp_path):
    """Adversarial (issue #38 N10): skill.json claims a token group its fused graph does not take."""
    bad = shutil.copytree(bundle, tmp_path / "bad")
    skill_json = mf.content_dir(bad) / mf.skill_dir("reach") / mf.SKILL_FILE
    sk = json.loads(skill_json.read_text())
    assert "masked_mimic_target_poses" not in sk["visible_groups"]
    sk["visible_groups"] = [*sk["visible_groups"], "masked_mimic_target_poses"]
    skill_json.write_text(json.dumps(sk))
    rehash_skill(bad, "reach")
    with pytest.raises(BundleError, match="visible token groups are .*masked_mimic_target_poses.* but its fused graph"):
        SkillRuntime(bad, backend="ort-cpu")


def test_unknown_nonfinite_policy(bundle):
    with pytest.raises(TTDeployError, match="unknown nonfinite policy 'ignore'"):
        SkillRuntime(bundle, backend="ort-cpu", nonfinite="ignore")
