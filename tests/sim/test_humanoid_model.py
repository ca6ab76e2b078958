"""Model building: names, sizes, conventions at rest, PD map, user-MJCF path, errors."""

import math

import mujoco
import numpy as np
import pytest

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.sim.humanoid_model import DEFAULT_MJCF, ModelError, build_model, pd_offset_scale, standing_qpos


@pytest.fixture(scope="module")
def hm():
    return build_model()


def test_sizes_names_and_mass(hm):
    m = hm.model
    assert (m.nq, m.nv, m.nu) == (7 + 69, 6 + 69, 69)
    assert [m.body(i).name for i in hm.body_ids] == list(spec.BODY_NAMES)
    assert [m.actuator(i).name for i in hm.actuator_ids] == list(spec.JOINT_NAMES)
    parents = [int(m.body_parentid[i]) for i in hm.body_ids]
    assert parents[0] == 0 and [list(hm.body_ids).index(p) for p in parents[1:]] == list(spec.BODY_PARENTS[1:])
    assert 60.0 < hm.total_mass < 75.0
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST and hm.substeps == 4


def test_rest_pose_world_aligned_faces_plus_x(hm):
    m, d = hm.model, mujoco.MjData(hm.model)
    d.qpos[:] = standing_qpos(hm)
    mujoco.mj_forward(m, d)
    np.testing.assert_allclose(d.xquat[hm.body_ids], np.tile([1.0, 0, 0, 0], (24, 1)), atol=1e-12)
    pos = {n: d.xpos[i] for n, i in zip(spec.BODY_NAMES, hm.body_ids, strict=True)}
    assert pos["L_Hand"][1] > 0.7 and pos["R_Hand"][1] < -0.7  # left on +y
    assert pos["L_Toe"][0] > pos["L_Ankle"][0] + 0.1  # toes point +x
    assert 1.45 < pos["Head"][2] < 1.7  # z-up, adult height
    assert d.ncon == 0  # no initial penetration (2 mm clearance) and no self-contact at rest


def test_pd_map_formula(hm):
    knee = spec.JOINT_NAMES.index("L_Knee_y")  # range up to 150 deg -> 1.2 * 150 deg capped at pi
    ankle = spec.JOINT_NAMES.index("L_Ankle_x")  # max |range| of the joint 50 deg -> 60 deg
    assert hm.pd_scale[knee] == pytest.approx(math.pi)
    assert hm.pd_scale[ankle] == pytest.approx(math.radians(60.0))
    assert hm.pd_scale[ankle] == hm.pd_scale[ankle + 1] == hm.pd_scale[ankle + 2]
    np.testing.assert_array_equal(hm.pd_offset, 0.0)
    off, scale = pd_offset_scale(np.tile([-0.1, 0.2], (69, 1)))
    np.testing.assert_allclose(scale, 0.24)


def test_kd_applied_exactly_once(hm):
    m = hm.model
    kp, kd = np.array(spec.PD_GAINS).T
    np.testing.assert_allclose(m.actuator_gainprm[hm.actuator_ids, 0], kp)
    np.testing.assert_allclose(m.actuator_biasprm[hm.actuator_ids, 1], -kp)
    np.testing.assert_allclose(m.dof_damping[hm.dof_adr], kd)
    np.testing.assert_array_equal(m.actuator_biasprm[hm.actuator_ids, 2], 0.0)
    np.testing.assert_array_equal(m.jnt_stiffness, 0.0)
    act = build_model(damping="actuator").model
    np.testing.assert_allclose(act.actuator_biasprm[hm.actuator_ids, 2], -kd)
    np.testing.assert_array_equal(act.dof_damping, 0.0)


def test_user_mjcf_same_path_replaces_actuators(tmp_path):
    xml = DEFAULT_MJCF.read_text()
    xml = xml.replace('<geom name="floor" type="plane" size="0 0 0.05" rgba="0.5 0.55 0.6 1"/>', "")
    xml = xml.replace("</mujoco>", '<actuator><motor joint="L_Hip_x" gear="100"/></actuator></mujoco>')
    path = tmp_path / "user.xml"
    path.write_text(xml)
    hm = build_model(path)
    assert hm.model.nu == 69 and hm.model.actuator_gaintype[0] == mujoco.mjtGain.mjGAIN_FIXED
    assert hm.model.actuator_gainprm[hm.actuator_ids[0], 0] == spec.PD_GAINS[0][0]
    assert (hm.model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE).sum() == 1  # floor added


def test_missing_names_listed(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text(DEFAULT_MJCF.read_text().replace('"L_Hand"', '"LeftHand"').replace('"R_Knee_z"', '"RKz"'))
    with pytest.raises(ModelError, match=r"missing bodies \(1\): L_Hand; missing joints \(1\): R_Knee_z"):
        build_model(path)
    with pytest.raises(ModelError, match="not found"):
        build_model(tmp_path / "nope.xml")


def test_bad_physics_options():
    with pytest.raises(InputError, match="timestep must divide"):
        build_model(timestep=0.007)
    with pytest.raises(InputError, match="integrator must be one of"):
        build_model(integrator="verlet")
    with pytest.raises(InputError, match="unknown scene objects"):
        build_model(objects=("ball",))
