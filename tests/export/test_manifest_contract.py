"""The manifest is the whole contract: a MuJoCo control loop written from manifest.json alone (its own PD
actuators from the manifest's gains, its own state read-out from the stated convention, not the project's
model builder or simulator) plus the public numpy observation package keeps the humanoid up and matches
the project's own loop."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from tt_deploy.export.bundle import export_skill
from tt_deploy.obs.inputs import PoseHistory, bfm_inputs
from tt_deploy.obs.state import BodyState
from tt_deploy.runtime import SkillRuntime
from tt_deploy.runtime import manifest as mf
from tt_deploy.sim.humanoid_model import DEFAULT_MJCF
from tt_deploy.sim.mujoco_backend import MujocoSimulator

STEPS = 150  # 5 s of control


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return export_skill("reach", bundle_dir=tmp_path_factory.mktemp("contract") / "deploy")


class ManifestLoop:
    """One humanoid in plain MuJoCo, configured from the manifest's fields only."""

    def __init__(self, man: mf.BundleManifest, mjcf_path):
        act = man.actuation
        spec = mujoco.MjSpec.from_file(str(mjcf_path))
        joints = {j.name: j for j in spec.joints}
        for name, kp, kd in zip(man.joint_names, act.kp, act.kd, strict=True):
            assert act.damping == "joint"  # the form this loop implements
            joints[name].damping = [kd, 0.0, 0.0]
            a = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            a.set_to_position(kp=kp, kv=0.0)
            if act.torque_limit is not None:
                a.forcelimited, a.forcerange = mujoco.mjtLimited.mjLIMITED_TRUE, [-1, 1]  # not reached here
        spec.option.timestep = act.physics_dt
        spec.option.integrator = getattr(mujoco.mjtIntegrator, f"mjINT_{act.integrator.upper()}")
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.body_ids = [self.model.body(n).id for n in man.body_names]
        jids = [self.model.joint(n).id for n in man.joint_names]
        self.qpos_adr = self.model.jnt_qposadr[jids]
        self.act_ids = [self.model.actuator(n).id for n in man.joint_names]
        self.offset, self.scale = np.array(man.pd_offset), np.array(man.pd_scale)
        self.substeps = act.substeps
        x, y, z, w = act.reset_root_quat  # manifest quaternions are xyzw, MuJoCo's wxyz
        self.data.qpos[:3], self.data.qpos[3:7] = act.reset_root_pos, (w, x, y, z)
        self.data.qpos[self.qpos_adr] = act.reset_joint_pos
        self.data.ctrl[self.act_ids] = self.offset
        mujoco.mj_forward(self.model, self.data)

    def body_state(self) -> BodyState:
        d, res = self.data, np.zeros(6)
        pos = np.array([d.xpos[b] for b in self.body_ids])
        quat = np.array([np.roll(d.xquat[b], -1) for b in self.body_ids])  # wxyz -> xyzw
        lin, ang = [], []
        for b in self.body_ids:  # velocity of the body frame's origin (XBODY), world frame (flg_local=0)
            mujoco.mj_objectVelocity(self.model, d, mujoco.mjtObj.mjOBJ_XBODY, b, res, 0)
            ang.append(res[:3].copy())
            lin.append(res[3:].copy())
        return BodyState(pos[None], quat[None], np.array(lin)[None], np.array(ang)[None])

    def step(self, action: np.ndarray) -> None:
        self.data.ctrl[self.act_ids] = self.offset + self.scale * action
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        mujoco.mj_forward(self.model, self.data)  # manifest state.read_at: the state after the last substep


def _run(runtime, read_state, step):
    history, ground = PoseHistory(1), np.zeros(1)
    history.reset(None, read_state(), ground)
    task_obs = np.array([0.3, -0.2, 0.4], np.float32)  # a fixed reach goal, in the documented units
    actions, heights = [], []
    for _ in range(STEPS):
        state = read_state()
        inputs = {n: a[0] for n, a in bfm_inputs(state, ground, history).items()}
        history.push(state, ground)
        a = runtime.act(inputs, task_obs)
        step(a)
        actions.append(a)
        heights.append(state.pos[0, 0, 2])
    return np.array(actions), np.array(heights)


def test_manifest_states_the_whole_contract(bundle):
    man = mf.read_manifest(bundle)
    act = man.actuation
    assert len(act.kp) == len(act.kd) == len(act.reset_joint_pos) == man.action_dim
    assert act.physics_dt * act.substeps == pytest.approx(man.control_dt)
    assert man.default_skill == "reach" and man.state.quaternion.startswith("xyzw") and "mj_forward" in man.state.read_at
    sk = mf.read_skill(bundle, "reach")
    assert len(sk.task_obs_features) == sk.task_obs_dim and sk.task_obs_features[0].startswith("target_x [m]")


def test_loop_from_the_manifest_alone_stands_and_matches_the_project_loop(bundle):
    man = mf.read_manifest(bundle)
    ours = ManifestLoop(man, DEFAULT_MJCF.parent / man.actuation.mjcf)
    with SkillRuntime(bundle, backend="ort-cpu") as rt:
        a_manifest, h_manifest = _run(rt, ours.body_state, ours.step)
        sim = MujocoSimulator(1, nthread=1)
        a_project, h_project = _run(rt, sim.body_state, lambda a: sim.step(a[None]))
    assert h_manifest.min() > 0.7, f"the manifest-only loop fell: min root height {h_manifest.min():.2f} m"
    assert h_project.min() > 0.7
    # same physics, same observations: the two loops agree over all 5 s (bit-identical when measured)
    assert np.abs(a_manifest - a_project).max() < 1e-5
    assert np.abs(h_manifest - h_project).max() < 1e-6


def test_a_schema_1_skill_json_reads_with_a_null_prior_and_refuses_static_prior_tokens(bundle, tmp_path):
    import json
    import shutil

    from tt_deploy.errors import BundleError

    content = mf.content_dir(shutil.copytree(bundle, tmp_path / "old"))
    path = content / mf.skill_dir("reach") / mf.SKILL_FILE
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "prior": None}))  # what earlier exports wrote
    assert mf.read_skill_file(content, "reach").name == "reach"
    path.write_text(json.dumps({**data, "prior": {"path": "skills/reach/prior.npz", "sha256": "0", "inputs": []}}))
    with pytest.raises(BundleError, match="static prior tokens"):
        mf.read_skill_file(content, "reach")
