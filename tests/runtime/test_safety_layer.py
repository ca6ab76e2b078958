"""The runtime's opt-in SafetyLayer (issue #36 item 4): its config from the bundle, each guard and mode on a
real runtime, and each injected fault in a closed MuJoCo loop on the shipped trained skills (reach, steering):
no NaN reaches a PD target, the fault ends in damping within the documented calls, the targets stay inside the
MJCF ranges and the rate limit, and the measured falls / joint speeds stay where scripts/safety_probe.py put
them (results/probes/safety_faults.json has the 8-seed table)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import export_shipped

from tt_deploy.errors import BundleError, InputError
from tt_deploy.runtime import SafetyConfig, SafetyLayer, SkillRuntime
from tt_deploy.runtime import safety as sf
from tt_deploy.runtime.safety import Mode, joint_limits
from tt_deploy.runtime.simulator import mjcf_path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("safety_probe", ROOT / "scripts" / "safety_probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
N = 69


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The shipped trained reach and steering skills (default skill reach)."""
    return export_shipped(tmp_path_factory.mktemp("safety") / "deploy", skills=("reach", "steering"))


@pytest.fixture(scope="module")
def runtime(bundle):
    rt = SkillRuntime(bundle, backend="ort-cpu")
    yield rt
    rt.close()


def _reach_call(runtime):
    """A valid reach call (hidden prior allowed off: reach's prior prompt is fed as the shipped skill needs)."""
    from tt_deploy.obs.inputs import PoseHistory, bfm_inputs
    from tt_deploy.obs.priors import make_prior
    from tt_deploy.sim.mujoco_backend import MujocoSimulator
    from tt_deploy.tasks.goals import task_kwargs_from_record
    from tt_deploy.tasks.registry import make_task_for

    card = runtime.skills["reach"]
    task = make_task_for("reach", 1, card.task_obs_dim, **task_kwargs_from_record("reach", card.goals))
    prior = make_prior(card.task_prior["name"], 1, **card.task_prior["params"]) if card.task_prior else None
    sim = MujocoSimulator(1, nthread=1)
    rng = np.random.default_rng(0)
    task.reset(np.arange(1), sim, rng)
    state = sim.body_state()
    if prior is not None:
        prior.reset(np.arange(1), state)
    history = PoseHistory(1)
    history.reset(None, state, np.zeros(1))
    targets = prior(state, task.prior_goal(state, sim)) if prior is not None else None
    inputs = {n: a[0] for n, a in bfm_inputs(state, np.zeros(1), history, targets=targets).items()}
    return inputs, task.observe(state, sim)[0]


def _policy_targets(runtime, config, inputs, task_obs):
    a = np.zeros((1, N), np.float32)
    runtime.act_into(inputs, task_obs, a)
    return np.array(config.pd_offset) + np.array(config.pd_scale) * np.clip(a[0], -1, 1)


# --- configuration from the bundle --------------------------------------------------------------------
def test_joint_limits_are_the_ranges_mujoco_compiles_from_the_bundle_mjcf(bundle):
    from tt_deploy import spec
    from tt_deploy.sim.humanoid_model import build_model

    model = build_model(mjcf_path(bundle)).model
    ids = [model.joint(n).id for n in spec.JOINT_NAMES]
    cfg = SafetyConfig.from_bundle(bundle)
    np.testing.assert_array_equal(cfg.lower, model.jnt_range[ids, 0])
    np.testing.assert_array_equal(cfg.upper, model.jnt_range[ids, 1])


def test_joint_limits_follow_compiler_angle_default_classes_and_limited():
    xml = """<mujoco><compiler angle="radian"/>
      <default><joint range="-1 1"/><default class="wide"><joint range="-2 2"/></default>
        <default class="free"><joint limited="false"/></default></default>
      <worldbody><body childclass="wide"><joint name="a"/><joint name="b" class="main"/>
        <body><joint name="c" range="-0.5 0.25"/><joint name="d" class="free"/></body></body></worldbody></mujoco>"""
    lo, hi = joint_limits(xml, ["a", "b", "c", "d"])
    assert lo.tolist() == [-2, -1, -0.5, -np.inf] and hi.tolist() == [2, 1, 0.25, np.inf]
    lo, hi = joint_limits('<mujoco><worldbody><body><joint name="k" range="-90 180"/></body></worldbody></mujoco>',
                          ["k"])  # fmt: skip
    np.testing.assert_allclose([lo[0], hi[0]], [-np.pi / 2, np.pi])  # MuJoCo's default angle unit: degree
    with pytest.raises(BundleError, match="no joints"):
        joint_limits(xml, ["a", "zz"])


def test_config_takes_the_manifest_and_the_documented_defaults(bundle, runtime):
    cfg = SafetyConfig.from_bundle(bundle)
    act = runtime.manifest.actuation
    assert cfg.kp == tuple(act.kp) and cfg.kd == tuple(act.kd) and cfg.default_pose == tuple(act.reset_joint_pos)
    assert cfg.pd_offset == tuple(runtime.manifest.pd_offset) and cfg.pd_scale == tuple(runtime.manifest.pd_scale)
    assert cfg.torque_limit is None  # the manifest gives none today: the torque guard is off
    assert (cfg.rate_limit, cfg.watchdog_periods, cfg.ramp_seconds, cfg.blend_seconds, cfg.breach_tolerance) == (
        sf.RATE_LIMIT, sf.WATCHDOG_PERIODS, sf.RAMP_SECONDS, sf.BLEND_SECONDS, sf.BREACH_TOLERANCE)
    assert cfg.position_limits and cfg.resume_periods is None
    assert SafetyConfig.from_bundle(bundle, rate_limit=None).rate_limit is None
    with pytest.raises(InputError, match="unknown SafetyConfig fields"):
        SafetyConfig.from_bundle(bundle, rate=1.0)
    for bad in ({"rate_limit": -1.0}, {"watchdog_periods": 0}, {"ramp_seconds": float("nan")},
                {"torque_limit": (0.0,) * N}, {"damping_target": "limp"}, {"kd": (1.0,)}):
        with pytest.raises(InputError):
            SafetyConfig.from_bundle(bundle, **bad)


def test_the_layer_imports_neither_torch_nor_mujoco(bundle):
    code = ("import sys; sys.modules['torch'] = None; sys.modules['mujoco'] = None\n"
            "import numpy as np\nfrom tt_deploy.runtime import SafetyLayer, SkillRuntime\n"
            f"layer = SafetyLayer(SkillRuntime({str(bundle)!r}, backend='ort-cpu'))\n"
            "t = layer.filter_actions(np.zeros(69, np.float32), joint_pos=np.zeros(69), joint_vel=np.zeros(69), "
            "stamp=0)\nprint(layer.mode.value, bool(np.isfinite(t).all()))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["standby", "True"]


# --- modes and guards on a real runtime --------------------------------------------------------------
def test_standby_holds_then_the_soft_start_reaches_the_policy_exactly(bundle, runtime):
    """With the target guards off, the layer's policy targets are the runtime's actions mapped exactly as the
    simulator maps them: the layer changes nothing once the soft start is over."""
    cfg = SafetyConfig.from_bundle(bundle, rate_limit=None, position_limits=False, ramp_seconds=0.1,
                                   blend_seconds=0.1)  # fmt: skip
    layer = SafetyLayer(runtime, cfg)
    inputs, task_obs = _reach_call(runtime)
    want = _policy_targets(runtime, cfg, inputs, task_obs)
    pose, qd = np.full(N, 0.05), np.zeros(N)
    out = np.zeros(N, np.float32)
    for k in range(3):  # standby: the pose measured at its first call
        layer.act(inputs, task_obs, out, joint_pos=pose + 0.01 * k, joint_vel=qd, stamp=k)
        np.testing.assert_array_equal(layer.targets, pose)
        assert layer.mode is Mode.STANDBY
    layer.start()
    seen = []
    for k in range(3, 10):
        layer.act(inputs, task_obs, out, joint_pos=pose, joint_vel=qd, stamp=k)
        seen.append((layer.mode, layer.targets.copy()))
    ramp = round(0.1 / cfg.control_dt)  # 3 calls to the default pose, 3 to blend into the policy
    np.testing.assert_allclose(seen[ramp - 1][1], cfg.default_pose)
    np.testing.assert_allclose(seen[ramp][1], np.array(cfg.default_pose) + (want - cfg.default_pose) / ramp)
    assert [m for m, _ in seen] == [Mode.RAMP] * (2 * ramp - 1) + [Mode.POLICY] * (8 - 2 * ramp)
    np.testing.assert_array_equal(seen[-1][1], want)
    np.testing.assert_array_equal(out, want.astype(np.float32))
    np.testing.assert_allclose(layer.actions[0], (want - cfg.pd_offset) / cfg.pd_scale, atol=1e-6)
    assert layer.status()["entries"] == {"standby": 1, "ramp": 1, "policy": 1, "damping": 0}


def test_rate_position_and_torque_limits_bound_every_target(bundle, runtime):
    """Bang-bang actions at the clamp (every target beyond its joint's range asked for) from random joint states.
    The torque limit comes after the rate limit: where the joint itself jumped it may move a target further, so each
    is checked with the other off."""
    base = SafetyConfig.from_bundle(bundle)
    lo, hi = np.array(base.lower), np.array(base.upper)
    counts = {}
    for torque in (None, (60.0,) * N):
        cfg = SafetyConfig.from_bundle(bundle, ramp_seconds=0.0, blend_seconds=0.0, torque_limit=torque,
                                       rate_limit=None if torque else sf.RATE_LIMIT)  # fmt: skip
        kp, kd = np.array(cfg.kp), np.array(cfg.kd)
        layer = SafetyLayer(runtime, cfg)
        layer.start()
        rng = np.random.default_rng(0)
        last = None
        for k in range(40):
            q, qd = rng.uniform(lo, hi), rng.normal(0, 2, N)
            t = layer.filter_actions(np.full(N, 1.0 if k % 2 else -1.0, np.float32), joint_pos=q, joint_vel=qd,
                                     stamp=k).copy()  # fmt: skip
            assert np.all(t >= lo) and np.all(t <= hi)
            if torque:
                inside = (t > lo + 1e-9) & (t < hi - 1e-9)  # where the position limit did not have the last word
                assert np.all(np.abs(kp * (t - q) - kd * qd)[inside] <= 60.0 + 1e-6)
            elif last is not None:
                assert np.abs(t - last).max() <= cfg.rate_limit + 1e-12
            last = t
        s = layer.status()
        assert s["mode"] == "policy" and s["faults"] == dict.fromkeys(sf.FAULTS, 0)
        counts[torque is not None] = s["clips"]
    assert counts[False]["rate"] > 0 and counts[False]["position"] > 0 and counts[False]["torque"] == 0
    assert counts[True]["torque"] > 0 and counts[True]["rate"] == 0


@pytest.mark.parametrize("fault", ["nan_input", "nan_state", "nan_stamp_then_stale", "nan_actions", "big_actions",
                                   "sensor_breach", "bad_shape"])  # fmt: skip
def test_each_fault_damps_in_the_call_that_sees_it_and_no_nan_goes_out(bundle, runtime, fault):
    cfg = SafetyConfig.from_bundle(bundle, ramp_seconds=0.0, blend_seconds=0.0)
    layer = SafetyLayer(runtime, cfg)
    layer.start()
    inputs, task_obs = _reach_call(runtime)
    q, qd = np.zeros(N), np.zeros(N)
    out = np.full(N, 7.0)
    for k in range(5):
        layer.act(inputs, task_obs, out, joint_pos=q, joint_vel=qd, stamp=k)
    assert layer.mode is Mode.POLICY
    bad_inputs, bad_q, stamp = dict(inputs), q.copy(), 5
    if fault == "nan_input":
        bad_inputs["obs"] = inputs["obs"].copy()
        bad_inputs["obs"][3] = np.nan
    elif fault == "nan_state":
        bad_q[4] = np.inf
    elif fault == "sensor_breach":
        bad_q[10] = cfg.upper[10] + cfg.breach_tolerance + 0.01
    elif fault == "bad_shape":
        bad_inputs["obs"] = inputs["obs"][:10]
    if fault in ("nan_actions", "big_actions"):
        a = np.zeros(N, np.float32)
        a[0] = np.nan if fault == "nan_actions" else 1.5
        layer.filter_actions(a, out, joint_pos=q, joint_vel=qd, stamp=stamp)
    elif fault == "nan_stamp_then_stale":  # a NaN stamp is never fresh: the watchdog's count goes on
        for _ in range(cfg.watchdog_periods):
            assert layer.mode is Mode.POLICY
            layer.act(inputs, task_obs, out, joint_pos=q, joint_vel=qd, stamp=float("nan"))
    else:
        layer.act(bad_inputs, task_obs, out, joint_pos=bad_q, joint_vel=qd, stamp=stamp)
    kind = {"nan_input": "nonfinite_input", "nan_state": "nonfinite_state", "nan_stamp_then_stale": "stale_state",
            "nan_actions": "nonfinite_action", "big_actions": "action_range", "sensor_breach": "joint_breach",
            "bad_shape": "runtime_error"}[fault]  # fmt: skip
    s = layer.status()
    assert layer.mode is Mode.DAMPING and s["faults"][kind] == 1 and s["last_fault"] == kind
    assert sum(s["faults"].values()) == 1 and np.isfinite(out).all() and np.isfinite(layer.actions).all()
    if fault == "bad_shape":
        assert "shape" in s["last_error"]
    for k in range(60):  # damping latches, and moves to the default pose at the damping rate
        layer.act(inputs, task_obs, out, joint_pos=q, joint_vel=qd, stamp=100 + k)
    np.testing.assert_allclose(out, cfg.default_pose)
    assert layer.mode is Mode.DAMPING


def test_nan_actions_from_the_graph_damp_on_both_nonfinite_policies(bundle, tmp_path):
    from test_runtime_safety import _nan_weights  # the NaN-weight bundle of the refusal tests

    bad = _nan_weights(bundle, tmp_path)
    for policy in ("raise", "zeros"):
        rt = SkillRuntime(bad, backend="ort-cpu", skills=["reach"], nonfinite=policy)
        layer = SafetyLayer(rt)
        inputs, task_obs = _reach_call(rt)
        t = layer.act(inputs, task_obs, joint_pos=np.zeros(N), joint_vel=np.zeros(N), stamp=0)
        assert layer.mode is Mode.DAMPING and layer.status()["faults"]["nonfinite_action"] == 1
        assert np.isfinite(t).all()
        rt.close()


def test_watchdog_damps_after_watchdog_periods_stale_calls_and_resume_ramps_back(bundle, runtime):
    cfg = SafetyConfig.from_bundle(bundle, ramp_seconds=0.1, blend_seconds=0.1)
    layer = SafetyLayer(runtime, cfg)
    layer.start()
    inputs, task_obs = _reach_call(runtime)
    q, qd = np.zeros(N), np.zeros(N)
    for k in range(10):
        layer.act(inputs, task_obs, joint_pos=q, joint_vel=qd, stamp=k)
    modes = []
    for _ in range(cfg.watchdog_periods + 2):  # the stamp stops at 9
        layer.act(inputs, task_obs, joint_pos=q, joint_vel=qd, stamp=9)
        modes.append(layer.mode)
    assert modes == [Mode.POLICY] * (cfg.watchdog_periods - 1) + [Mode.DAMPING] * 3
    assert layer.damping_step == 10 + cfg.watchdog_periods
    layer.resume()  # while the state is still stale: ignored, damping stays latched
    layer.act(inputs, task_obs, joint_pos=q, joint_vel=qd, stamp=9)
    layer.act(inputs, task_obs, joint_pos=q, joint_vel=qd, stamp=20)
    assert layer.mode is Mode.DAMPING
    layer.resume()
    layer.act(inputs, task_obs, joint_pos=q, joint_vel=qd, stamp=21)
    assert layer.mode is Mode.RAMP
    for k in range(6):
        layer.act(inputs, task_obs, joint_pos=q, joint_vel=qd, stamp=22 + k)
    s = layer.status()
    assert s["mode"] == "policy" and s["entries"] == {"standby": 1, "ramp": 2, "policy": 2, "damping": 1}
    assert s["faults"]["stale_state"] == 4 and s["stale_periods"] == 0

    auto = SafetyLayer(runtime, SafetyConfig.from_bundle(bundle, resume_periods=5))
    auto.damp()  # an operator stop, not a fault
    for k in range(5):
        auto.act(inputs, task_obs, joint_pos=q, joint_vel=qd, stamp=k)
    assert auto.mode is Mode.RAMP and sum(auto.status()["faults"].values()) == 0


def test_the_guard_path_writes_into_preallocated_buffers(bundle, runtime):
    """No per-call buffers and nothing retained: what tracemalloc sees over 500 calls is numpy's own small
    temporaries (0-d reduction results, iterator state; measured ~1.5 KB peak), the same as over one call."""
    import tracemalloc

    layer = SafetyLayer(runtime, SafetyConfig.from_bundle(bundle, torque_limit=(100.0,) * N))
    layer.start()
    a, q, qd = np.full(N, 0.9, np.float32), np.zeros(N), np.ones(N)
    for k in range(60):
        layer.filter_actions(a * (-1) ** k, joint_pos=q, joint_vel=qd, stamp=k)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for k in range(500):
        layer.filter_actions(a, joint_pos=q, joint_vel=qd, stamp=100 + k)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak - base < 4096 and current - base < 1024, (peak - base, current - base)


# --- closed loop in MuJoCo: injected faults on the shipped skills -----------------------------------------
DAMPING_FAULTS = ("stale", "nan_input", "nan_state", "sensor_breach", "action_breach")


@pytest.mark.parametrize("fault", [*DAMPING_FAULTS, "stale_resume", "target_breach", "switch", "none"])
def test_injected_faults_on_a_standing_reach_policy(runtime, fault):
    """reach starts standing: with the layer no fault makes it fall within 2 s (8 of 8 seeds in the probe)."""
    dt = runtime.manifest.control_dt
    r = probe.episode(runtime, fault, start_skill="reach", switch_to="steering", seed=0)
    assert r["nan_targets"] == 0 and r["max_target_excess"] <= 1e-9
    assert r["max_target_step"] <= sf.RATE_LIMIT + 1e-9
    assert not r["fell"] and r["min_pelvis_m"] > 0.8 and r["unstable_resets"] == 0
    assert r["peak_joint_speed"] < 20.0  # rad/s; measured 13.7 (the return to the default pose)
    if fault in DAMPING_FAULTS or fault == "stale_resume":
        late = sf.WATCHDOG_PERIODS - 1 if fault.startswith("stale") else 0  # calls after the first faulty one
        assert r["damping_after_calls"] == late and r["damping_at_s"] == pytest.approx(late * dt, abs=1e-6)
        assert r["status"]["mode"] == ("policy" if fault == "stale_resume" else "damping")
    else:
        assert r["damping_at_s"] is None and r["status"]["mode"] == "policy"


def test_without_the_layer_the_same_faults_send_out_of_range_or_jumping_targets(runtime):
    bare = {f: probe.episode(runtime, f, layer=False, start_skill="reach", switch_to="steering", seed=3 if f == "switch"
                             else 0) for f in ("target_breach", "action_breach", "switch", "nan_input")}  # fmt: skip
    guarded = probe.episode(runtime, "switch", start_skill="reach", switch_to="steering", seed=3)
    assert bare["target_breach"]["max_target_excess"] > 3.0  # the knee asked for 175 deg past its range
    assert bare["action_breach"]["max_target_excess"] > 3.0 and bare["action_breach"]["fell"]
    assert bare["switch"]["max_target_step"] > 2.0 and guarded["max_target_step"] <= sf.RATE_LIMIT + 1e-9  # rad/step
    assert bare["nan_input"]["raised"] == 60  # every call raised; the loop could only hold its last actions


def test_a_walking_policy_falls_less_often_when_faults_damp(runtime):
    """steering walks: cutting its policy is a fall risk either way; damping halves it (probe, 8 seeds: stale 3 vs
    8 falls, NaN inputs 4 vs 8). Here 4 seeds each."""
    for fault in ("stale", "nan_input"):
        falls = {layer: sum(probe.episode(runtime, fault, layer=layer, start_skill="steering", switch_to="reach",
                                          seed=s)["fell"] for s in range(4)) for layer in (False, True)}  # fmt: skip
        assert falls[True] < falls[False], (fault, falls)
