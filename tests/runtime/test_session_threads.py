"""Intra-op threads by model size: a static graph on CPU is timed at load with 1 thread and with all physical
cores and keeps the faster; an explicit count is kept; dynamic-batch graphs take all cores."""

from __future__ import annotations

import pytest

from tt_deploy.export.bundle import export_skill
from tt_deploy.runtime import SessionConfig, SkillRuntime
from tt_deploy.runtime import session as session_mod
from tt_deploy.runtime.session import physical_cores


@pytest.fixture(scope="module")
def bundle(small_bfm_file, tmp_path_factory):
    return export_skill("reach", bfm_path=small_bfm_file[1], bundle_dir=tmp_path_factory.mktemp("th") / "deploy")


@pytest.mark.skipif(physical_cores() < 2, reason="one physical core: there is no thread count to choose")
def test_the_faster_thread_count_is_kept_and_reported(bundle, monkeypatch):
    for wide_wins, want in ((True, physical_cores()), (False, 1)):
        seen = []

        def decide(a, b, spec, wide_wins=wide_wins, seen=seen):
            seen.append(spec.path)
            return wide_wins

        monkeypatch.setattr(session_mod, "_faster", decide)  # the timing verdict, forced both ways
        with SkillRuntime(bundle, skills=["reach"], mode="fused", batch=1) as rt:
            assert rt.threads() == {"skills/reach/fused.onnx": want} and seen == ["skills/reach/fused.onnx"]
    monkeypatch.undo()
    with SkillRuntime(bundle, skills=["reach"], mode="fused", batch=1) as rt:  # the real timing
        assert rt.threads()["skills/reach/fused.onnx"] in (1, physical_cores())


def test_an_explicit_count_and_dynamic_graphs_are_not_calibrated(bundle, monkeypatch):
    monkeypatch.setattr(session_mod, "_faster", lambda *a: pytest.fail("calibrated"))
    with SkillRuntime(bundle, skills=["reach"], mode="fused", batch=1, config=SessionConfig(intra_op_threads=1)) as rt:
        assert rt.threads() == {"skills/reach/fused.onnx": 1}
    with SkillRuntime(bundle, skills=["reach"], mode="fused", batch=None) as rt:  # dynamic batch: every core
        assert rt.threads() == {"skills/reach/fused.batch.onnx": physical_cores()}
    with SkillRuntime(bundle, skills=["reach"], mode="split", batch=1, config=SessionConfig(intra_op_threads=2)) as rt:
        assert rt.threads()["skills/reach/encoder.onnx"] == 1  # encoders: one thread, always
