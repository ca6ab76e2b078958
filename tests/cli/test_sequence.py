"""`ttdeploy sequence` (issue #36 item 6): chains of skills switched by a state machine, beside each skill alone.

Real behaviour on a small bundle (reach + direction, exported from the shipped runs): the command runs
with torch made unimportable, stages really switch the runtime's active skill, the numbers are rates, the
product is the product of the measured singles, and a chain naming a skill the bundle lacks fails in one
line. Performance targets are measured by the command (docs/sequencing.md), never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.sequence import PRESETS, SequenceRunner, Stage, parse_chain

NO_TORCH = (
    "import sys; sys.modules['torch'] = None; "  # `import torch` now raises ImportError
    "sys.argv = ['ttdeploy', *sys.argv[1:]]; from tt_deploy.cli import main; main()"
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from tt_deploy.demo import SHIPPED_RUNS
    from tt_deploy.export.bundle import export_skill

    root = tmp_path_factory.mktemp("seq") / "deploy"
    for skill in ("reach", "direction"):
        export_skill(skill, bundle_dir=root, run_dir=SHIPPED_RUNS / skill)
    return root


def _rates(doc) -> list[float]:
    """Every rate in the document (a dict with k / n / rate), and the plain ones."""
    out = []

    def walk(x):
        if isinstance(x, dict):
            if {"k", "n", "rate"} <= set(x) and x["rate"] is not None:
                out.append(x["rate"])
                assert x["rate"] == pytest.approx(x["k"] / x["n"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    return out + [doc["product_of_singles"], doc["falls"]["single_fall_rate"]]


def test_the_command_runs_a_chain_without_torch_and_writes_its_json(bundle, tmp_path):
    out = tmp_path / "seq.json"
    argv = ["sequence", "--bundle", str(bundle), "--chain", "reach,reach,direction", "--stage-seconds", "2.5",
            "--episodes", "3", "--json", str(out)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *argv], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "chain success" in proc.stdout and "falls within 1 s of a switch" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["chain"] == ["reach", "reach", "direction"] and doc["stage_seconds"] == [2.5] * 3
    assert doc["episodes"] == 3 and len(doc["stages"]) == 3
    assert [w["skill_changes"] for w in doc["switches"]] == [False, True]
    rates = _rates(doc)
    assert rates and all(0.0 <= r <= 1.0 for r in rates)
    # the product is the product of the singles measured in this run (reach's single counted twice)
    singles = {s["stage"]: s for s in doc["singles"]}
    assert set(singles) == {"reach", "direction"} and all(s["episodes"] == 3 for s in singles.values())
    expect = singles["reach"]["success"]["rate"] ** 2 * singles["direction"]["success"]["rate"]
    assert doc["product_of_singles"] == pytest.approx(expect)
    assert doc["chain_minus_product"] == pytest.approx(doc["chain_success"]["rate"] - expect)
    for st in doc["stages"]:
        assert st["single"] == singles[st["stage"]] and st["started"] <= 3
    assert "stride_success" in doc["stages"][2] and "chain_success_stride" in doc
    lat = doc["latency_us"]
    assert 1 <= lat["switch_ticks"]["n"] <= 2 * 3  # reach -> direction, and direction -> reach at an episode start
    assert lat["runtime_switch"]["n"] == lat["switch_ticks"]["n"]
    assert lat["other_ticks"]["p50_us"] > 0 and lat["runtime_switch"]["p50_us"] < lat["switch_ticks"]["p50_us"]
    assert set(lat["first_call_per_skill"]) == {"reach", "direction"}
    assert doc["falls"]["within_1s_of_switch"]["n"] == sum(w["falls_within_1s"]["n"] for w in doc["switches"])


def test_stages_switch_the_runtime_and_each_tick_runs_the_stage_skill(bundle):
    runner = SequenceRunner(bundle, parse_chain("reach,direction", "1,1.5"))
    switched, acted = [], []
    rt = runner.runtime
    real_switch, real_act = rt.switch, rt.act_into
    rt.switch = lambda s: (switched.append(s), real_switch(s))[1]
    rt.act_into = lambda *a: (acted.append(rt.active), real_act(*a))[1]
    try:
        doc = runner.run(episodes=2)
    finally:
        runner.close()
    assert switched[:2] == ["reach", "direction"]  # warm-up binds each skill once
    assert switched[2:6] == ["reach", "direction"] * 2  # two chain episodes: each switch is a runtime.switch
    ticks = acted[2:]
    # a chain episode: 30 reach ticks then up to 45 direction ticks; then the singles, reach then direction
    assert ticks[:30] == ["reach"] * 30 and ticks[30] == "direction"
    assert doc["stages"][0]["mean_seconds"] == pytest.approx(1.0)


def test_a_pillar_stage_switches_on_its_condition(bundle):
    """direction:pillar walks to the strike pillar (placed by the strike task's far placements) and hands over
    once the pelvis is within --near: with a near of 50 m that is the first tick, and it counts as reached."""
    runner = SequenceRunner(bundle, parse_chain("direction:pillar,reach", "5,1"), near_m=50.0)
    try:
        doc = runner.run(episodes=2)
        runner.sim.reset()
        runner.placer.reset(runner.ids, runner.sim, np.random.default_rng(0))  # how the pillar stages place it
        dist = np.linalg.norm(runner.sim.object_state("strike_target").pos[0, :2] - runner.sim.body_state().pos[0, 0, :2])
    finally:
        runner.close()
    st = doc["stages"][0]
    assert st["rule"].startswith("reached") and st["success"]["rate"] == 1.0
    assert st["mean_seconds"] == pytest.approx(1 / 30) and doc["stages"][1]["started"] == 2
    assert 1.5 <= dist <= 10.0  # the strike task's far placements: near_dist .. dist_range[1] from the pelvis


def test_parse_chain():
    assert parse_chain("reach,direction", "2") == (Stage("reach", 2.0), Stage("direction", 2.0))
    assert parse_chain("reach,direction") == (Stage("reach", 3.5), Stage("direction", 6.6))
    assert parse_chain("steering:pillar,strike", "4,5")[0] == Stage("steering", 4.0, "pillar")
    for name, (chain, secs) in PRESETS.items():
        assert [s.label for s in parse_chain(name)] == chain.split(",")
        assert [s.seconds for s in parse_chain(name)] == [float(x) for x in secs.split(",")]
    with pytest.raises(UnknownNameError, match="unknown task 'jump'"):
        parse_chain("reach,jump")
    with pytest.raises(UnknownNameError, match="stage goal"):
        parse_chain("reach:somewhere")
    with pytest.raises(InputError, match="only direction, steering can walk to the pillar"):
        parse_chain("reach:pillar")
    with pytest.raises(InputError, match="2 durations for 3 stages"):
        parse_chain("reach,reach,direction", "1,2")
    with pytest.raises(InputError, match="> 0"):
        parse_chain("reach", "0")


@pytest.mark.parametrize(("chain", "says"), [
    ("reach,jump", "unknown task 'jump'"),
    ("reach,strike", "the chain names skill 'strike', which bundle"),  # a task, not in this bundle
])  # fmt: skip
def test_a_chain_the_bundle_cannot_run_fails_in_one_line(bundle, monkeypatch, capsys, chain, says):
    from tt_deploy.cli import main

    monkeypatch.setattr(sys, "argv", ["ttdeploy", "sequence", "--bundle", str(bundle), "--chain", chain])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert exc.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err


def test_the_fall_monitor_is_the_training_fall_rule(bundle):
    """FallMonitor applies the bundle's manifest fall_rule; it flags exactly the steps TaskEnv.fallen does."""
    from tt_deploy.runtime import manifest as mf
    from tt_deploy.sequence import FallMonitor
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.env import TaskEnv
    from tt_deploy.tasks.reach import ReachTask

    rule = mf.read_manifest(bundle).fall_rule
    assert rule is not None
    for monitor in (FallMonitor(rule), FallMonitor(None)):  # the recorded rule, and the fallback for old bundles
        env = TaskEnv(MujocoSimulator(1, nthread=1), ReachTask(1), episode_seconds=100.0)
        env.reset()
        rng, flags = np.random.default_rng(0), []
        for _ in range(90):  # random actions: the humanoid goes down within a few seconds
            env.sim.step(rng.uniform(-1, 1, (1, 69)))
            env.steps += 1
            state = env.sim.body_state()
            flags.append((bool(env.fallen(state)[0]), monitor(state, env.sim, int(env.steps[0]))))
        assert any(a for a, _ in flags) and all(a == b for a, b in flags)
