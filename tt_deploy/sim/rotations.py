"""Quaternion and heading math in the reference convention: xyzw (w last), z-up, numpy.

Every quaternion inside tt-deploy is xyzw. MuJoCo stores wxyz; `wxyz_to_xyzw` /
`xyzw_to_wxyz` are the only conversions, called by the MuJoCo backend when it reads or
writes simulator state. All functions broadcast over leading dimensions and never import torch,
so the observation builders run unchanged in a robot controller.
"""

from __future__ import annotations

import numpy as np


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.concatenate([q[..., 1:4], q[..., 0:1]], axis=-1)


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return np.concatenate([q[..., 3:4], q[..., 0:3]], axis=-1)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b first, then a)."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4)."""
    xyz, w = q[..., :3], q[..., 3:]
    t = 2.0 * np.cross(xyz, v)
    return v + w * t + np.cross(xyz, t)


def quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    angle = np.asarray(angle, dtype=np.float64)[..., None]
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    return np.concatenate([axis * np.sin(angle / 2), np.cos(angle / 2)], axis=-1)


def quat_about_z(angle: np.ndarray) -> np.ndarray:
    """Rotation about +z by angle (radians), (..., 4)."""
    angle = np.asarray(angle, dtype=np.float64)
    zeros = np.zeros_like(angle)
    return np.stack([zeros, zeros, np.sin(angle / 2), np.cos(angle / 2)], axis=-1)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) xyzw -> (..., 3, 3) rotation matrices."""
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def tan_norm(q: np.ndarray) -> np.ndarray:
    """6D rotation feature (ref): [R(q) e_x, R(q) e_z] = first and third matrix columns."""
    tangent = quat_rotate(q, np.broadcast_to([1.0, 0.0, 0.0], q.shape[:-1] + (3,)))
    normal = quat_rotate(q, np.broadcast_to([0.0, 0.0, 1.0], q.shape[:-1] + (3,)))
    return np.concatenate([tangent, normal], axis=-1)


def heading_angle(q: np.ndarray) -> np.ndarray:
    """Yaw (radians) of the body's local x-axis projected on the ground plane."""
    x_axis = quat_rotate(q, np.broadcast_to([1.0, 0.0, 0.0], q.shape[:-1] + (3,)))
    return np.arctan2(x_axis[..., 1], x_axis[..., 0])


def heading_quat(q: np.ndarray) -> np.ndarray:
    """Yaw-only part of q: rotation about +z by its heading."""
    return quat_about_z(heading_angle(q))


def heading_quat_inv(q: np.ndarray) -> np.ndarray:
    """Hinv (ref): rotation about +z by minus the heading of q; 'local' means this frame."""
    return quat_about_z(-heading_angle(q))


def normalize(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
