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
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4).

    v + w t + xyz x t with t = 2 xyz x v, written per component: np.cross costs ~5x more on the
    small trailing axes of the observation hot path.
    """
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    tx = 2.0 * (y * vz - z * vy)
    ty = 2.0 * (z * vx - x * vz)
    tz = 2.0 * (x * vy - y * vx)
    return np.stack(
        [vx + w * tx + (y * tz - z * ty), vy + w * ty + (z * tx - x * tz), vz + w * tz + (x * ty - y * tx)],
        axis=-1,
    )


def yaw_rotate(cos_h: np.ndarray, sin_h: np.ndarray, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rotate vectors v (..., 3k) about +z by the angle whose cos/sin are given (broadcast to v[..., 0]).

    Works on any number of stacked xyz triples in the last axis (e.g. a 6D tan_norm), which is
    how heading-local features are made from world-frame ones without quaternion products.
    `out` (optional, any strided view of the broadcast shape) receives the result in place.
    """
    if out is None:
        out = np.empty(np.broadcast_shapes(v.shape, cos_h.shape + (v.shape[-1],)), dtype=v.dtype)
    for k in range(0, v.shape[-1], 3):
        x, y = v[..., k], v[..., k + 1]
        out[..., k] = cos_h * x - sin_h * y
        out[..., k + 1] = sin_h * x + cos_h * y
        out[..., k + 2] = v[..., k + 2]
    return out


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
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w),
            2 * (x * z + y * w), 2 * (y * z - x * w), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )  # fmt: skip


def heading_angle(q: np.ndarray) -> np.ndarray:
    """Yaw (radians) of the body's local x-axis projected on the ground plane."""
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2 * (x * y + z * w), 1 - 2 * (y * y + z * z))


def heading_quat(q: np.ndarray) -> np.ndarray:
    """Yaw-only part of q: rotation about +z by its heading."""
    return quat_about_z(heading_angle(q))


def heading_quat_inv(q: np.ndarray) -> np.ndarray:
    """Hinv (ref): rotation about +z by minus the heading of q; 'local' means this frame."""
    return quat_about_z(-heading_angle(q))


def normalize(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
