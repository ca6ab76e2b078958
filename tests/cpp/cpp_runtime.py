"""ctypes binding of libtt_deploy's C ABI (cpp/include/tt_deploy/tt_deploy.h), for the parity tests.

The status codes are read from the header itself, so this file restates no list of the C side.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from cpp_build import HEADER

STATUS: dict[str, int] = {  # "OK" / "ERR_HASH_MISMATCH" / ... -> value, from tt_deploy.h
    m.group(1): int(m.group(2)) for m in re.finditer(r"\bTT_DEPLOY_(OK|ERR_\w+) = (\d+)", HEADER.read_text())
}
STATUS_NAME = {v: k for k, v in STATUS.items()}
DTYPES = {np.dtype(np.float32): 0, np.dtype(np.bool_): 1}  # tt_deploy_dtype
UNKNOWN_DTYPE = 99  # what a float64 / int array is passed as: the runtime must refuse it


class Input(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("data", ctypes.c_void_p),
                ("count", ctypes.c_size_t)]


class Options(ctypes.Structure):
    _fields_ = [("skills", ctypes.POINTER(ctypes.c_char_p)), ("n_skills", ctypes.c_size_t),
                ("num_threads", ctypes.c_int32), ("nonfinite_zeros", ctypes.c_int32),
                ("allow_hidden_prior", ctypes.c_int32)]


class CppError(Exception):
    """A failed C ABI call: `status` is the header's name without TT_DEPLOY_ ("ERR_HASH_MISMATCH")."""

    def __init__(self, code: int, message: str):
        self.status = STATUS_NAME.get(code, f"UNKNOWN({code})")
        super().__init__(f"{self.status}: {message}")


def load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))  # CDLL: the GIL is released during each call (threads really overlap)
    p = ctypes.POINTER
    sigs = {
        "tt_deploy_create": ([ctypes.c_char_p, p(Options), p(ctypes.c_void_p)], ctypes.c_int),
        "tt_deploy_destroy": ([ctypes.c_void_p], None),
        "tt_deploy_close": ([ctypes.c_void_p], ctypes.c_int),
        "tt_deploy_switch_skill": ([ctypes.c_void_p, ctypes.c_char_p], ctypes.c_int),
        "tt_deploy_act_into": ([ctypes.c_void_p, p(Input), ctypes.c_size_t, p(ctypes.c_float), ctypes.c_size_t,
                                p(ctypes.c_float), ctypes.c_size_t], ctypes.c_int),
        "tt_deploy_action_dim": ([ctypes.c_void_p, p(ctypes.c_size_t)], ctypes.c_int),
        "tt_deploy_task_obs_dim": ([ctypes.c_void_p, ctypes.c_char_p, p(ctypes.c_size_t)], ctypes.c_int),
        "tt_deploy_nonfinite_count": ([ctypes.c_void_p, p(ctypes.c_uint64)], ctypes.c_int),
        "tt_deploy_active_skill": ([ctypes.c_void_p], ctypes.c_char_p),
        "tt_deploy_last_error": ([], ctypes.c_char_p),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib


def _floats(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class CppRuntime:
    """One C++ runtime through the C ABI; every failing call raises CppError."""

    def __init__(self, lib: ctypes.CDLL, bundle, skills=None, *, threads: int = 1, nonfinite_zeros: bool = False,
                 allow_hidden_prior: bool = False):
        self.lib, self.handle = lib, ctypes.c_void_p()
        names = [s.encode() for s in (skills or [])]
        arr = (ctypes.c_char_p * max(1, len(names)))(*names)
        opts = Options(arr, len(names), threads, int(nonfinite_zeros), int(allow_hidden_prior))
        self._check(lib.tt_deploy_create(str(bundle).encode(), ctypes.byref(opts), ctypes.byref(self.handle)))
        dim = ctypes.c_size_t()
        self._check(lib.tt_deploy_action_dim(self.handle, ctypes.byref(dim)))
        self.action_dim = dim.value

    def _check(self, code: int) -> None:
        if code != STATUS["OK"]:
            raise CppError(code, self.lib.tt_deploy_last_error().decode())

    @property
    def active(self) -> str:
        return self.lib.tt_deploy_active_skill(self.handle).decode()

    def switch(self, skill: str) -> None:
        self._check(self.lib.tt_deploy_switch_skill(self.handle, skill.encode()))

    def nonfinite_count(self) -> int:
        n = ctypes.c_uint64()
        self._check(self.lib.tt_deploy_nonfinite_count(self.handle, ctypes.byref(n)))
        return n.value

    def act(self, inputs: Mapping[str, np.ndarray], task_obs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(action_dim,) float32 actions (into `out` when given); arrays of one sample, with or without the batch-1
        axis."""
        arrays = {k: np.ascontiguousarray(v) for k, v in inputs.items()}  # kept alive for the call
        table = (Input * max(1, len(arrays)))(*[
            Input(k.encode(), DTYPES.get(a.dtype, UNKNOWN_DTYPE), a.ctypes.data, a.size) for k, a in arrays.items()])
        obs = np.ascontiguousarray(task_obs, np.float32)
        out = np.zeros(self.action_dim, np.float32) if out is None else out
        self._check(self.lib.tt_deploy_act_into(self.handle, table, len(arrays), _floats(obs), obs.size, _floats(out),
                                                out.size))
        return out

    def close(self) -> None:
        self._check(self.lib.tt_deploy_close(self.handle))

    def destroy(self) -> None:
        if self.handle:
            self.lib.tt_deploy_destroy(self.handle)
            self.handle = ctypes.c_void_p()

    def __enter__(self) -> CppRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()
