"""Read a trainer's `last.ckpt` without ever executing pickled code.

A torch checkpoint is a zip whose `data.pkl` is a pickle, and a pickle can name any importable
callable (`os.system`, ...) and have it called while loading. Two layers keep that from running:

1. `torch.load(weights_only=True)`: torch's own allow-list unpickler. It reads every ProtoMotions
   v1 and v3 checkpoint we know (v3's trainer state is plain: `running_reward_norm` is the
   normaliser's *state_dict*, not the object; `evaluator` is `{"eval_count": int}`; the optimiser
   state holds tensors), so it is the path normally taken.
2. It refuses the whole file when any entry holds another object, and trainer dicts do carry
   such entries that we do not need (a numpy-scalar `best_evaluated_score`, a v2 meter, a custom
   evaluator state). Only then `_InertUnpickler` reads the same zip: its `find_class` hands out
   tensor rebuilding, storages (as dtype markers), `OrderedDict`, `set`/`frozenset` and
   `_codecs.encode` (protocol-2 bytes); every other global becomes an inert placeholder class that
   swallows its arguments, so the pickle opcodes that would call it build a placeholder instead
   and nothing named by the file ever runs. Top-level entries holding a placeholder are dropped
   and reported by name (`SafeCheckpoint.skipped`); callers refuse them where they need them.

`resolved_configs.pt` (pickled ProtoMotions dataclasses) is never opened: reading it needs
ProtoMotions' classes, i.e. executing the file. The YAML sidecars carry the same config.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tt_deploy.errors import CheckpointError

LFS_MAGIC = b"version https://git-lfs"
# torch storage class names (as pickled by torch.save) -> element dtype
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}  # fmt: skip


@dataclass
class SafeCheckpoint:
    """The checkpoint's top-level dict; `skipped` names entries dropped because they held objects."""

    data: dict
    skipped: dict[str, str] = field(default_factory=dict)  # entry -> the globals it named
    loader: str = "torch.load(weights_only=True)"


def check_file(path: str | os.PathLike) -> Path:
    """The path, after refusing a missing file or a Git LFS pointer with the fix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(len(LFS_MAGIC))
    if head == LFS_MAGIC:
        raise CheckpointError(
            f"{path} is a Git LFS pointer file ({path.stat().st_size} bytes), not the checkpoint: "
            "fetch the real file (`git lfs install && git lfs pull` in the repository it came from)"
        )
    return path


def load_checkpoint(path: str | os.PathLike) -> SafeCheckpoint:
    """Load a torch checkpoint dict without executing pickled code (see the module docstring)."""
    path = check_file(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # an object torch will not rebuild: read it inertly
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f"{path} is not a torch zip checkpoint and holds objects other than tensors/containers, "
                f"which are never unpickled ({_first_line(exc)})"
            ) from None
        return _load_inert(path)
    except Exception as exc:  # RuntimeError, EOFError, ...: not a (complete) torch file
        raise CheckpointError(
            f"{path} could not be loaded as a torch checkpoint: it is truncated or not a torch file "
            f"({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(data).__name__}")
    return SafeCheckpoint(dict(data))


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    unsupported = [ln for ln in lines if "Unsupported global" in ln]
    return (unsupported or lines or [type(exc).__name__])[0][:300]


# --- the inert reader ----------------------------------------------------------------------------
class Inert:
    """Stands in for any object the pickle names: takes every argument and state, does nothing."""

    global_name = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def __setitem__(self, key, value):
        pass

    def __repr__(self) -> str:
        return f"<inert {self.global_name}>"


class _Storage:
    """A storage class named by the pickle: only its dtype is used."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    ok = (isinstance(storage, torch.Tensor) and isinstance(storage_offset, int)
          and isinstance(size, tuple) and isinstance(stride, tuple)
          and all(isinstance(v, int) for v in (*size, *stride)))  # fmt: skip
    if not ok or (backward_hooks is not None and (not isinstance(backward_hooks, Mapping) or backward_hooks)):
        raise pickle.UnpicklingError("malformed tensor record (only plain tensors are rebuilt)")
    return storage.as_strided(size, stride, storage_offset)  # as_strided checks the storage bounds


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("malformed parameter record")
    return data


def _codecs_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("malformed bytes record")
    return text.encode("latin1")


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _InertUnpickler(pickle.Unpickler):
    """Rebuilds tensors and containers; every other global becomes an `Inert` subclass."""

    def __init__(self, data: bytes, zf: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.zf, self.prefix = zf, prefix
        self.storages: dict[str, torch.Tensor] = {}
        self.named: list[str] = []  # globals replaced by placeholders, in order

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Storage(_STORAGE_DTYPES[name])
        full = f"{module}.{name}"
        self.named.append(full)
        return type("Inert", (Inert,), {"global_name": full})

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)
        ):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        _, st, key, _location, numel = pid
        if key not in self.storages:
            try:
                raw = self.zf.read(f"{self.prefix}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"storage record data/{key} is missing") from None
            itemsize = torch.empty((), dtype=st.dtype).element_size()
            if not isinstance(numel, int) or len(raw) < numel * itemsize:
                raise pickle.UnpicklingError(
                    f"storage record data/{key} is shorter than its {numel} elements"
                )
            buf = bytearray(raw[: numel * itemsize])
            self.storages[key] = (
                torch.frombuffer(buf, dtype=st.dtype) if buf else torch.empty(0, dtype=st.dtype)
            )
        t = self.storages[key]
        if t.dtype != st.dtype:
            raise pickle.UnpicklingError(f"storage data/{key} is read with two dtypes")
        return t


def _holds_inert(obj, depth: int = 0) -> bool:
    if isinstance(obj, Inert) or isinstance(obj, type) and issubclass(obj, Inert):
        return True
    if depth > 50:
        return True
    if isinstance(obj, Mapping):
        return any(_holds_inert(k, depth + 1) or _holds_inert(v, depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(_holds_inert(v, depth + 1) for v in obj)
    return False


def _globals_in(obj, out: set[str], depth: int = 0) -> set[str]:
    if isinstance(obj, Inert) or isinstance(obj, type) and issubclass(obj, Inert):
        out.add(obj.global_name)
    elif depth < 50 and isinstance(obj, Mapping):
        for k, v in obj.items():
            _globals_in(k, out, depth + 1)
            _globals_in(v, out, depth + 1)
    elif depth < 50 and isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _globals_in(v, out, depth + 1)
    return out


def _load_inert(path: Path) -> SafeCheckpoint:
    try:
        with zipfile.ZipFile(path) as zf:
            pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pkls) != 1:
                raise CheckpointError(
                    f"{path}: expected one <archive>/data.pkl in the torch zip, found {len(pkls)}"
                )
            prefix = pkls[0][: -len("data.pkl")]
            order = (
                zf.read(prefix + "byteorder").decode().strip()
                if prefix + "byteorder" in zf.namelist()
                else "little"
            )
            if order != "little":
                raise CheckpointError(f"{path}: {order}-endian checkpoints are not supported")
            up = _InertUnpickler(zf.read(pkls[0]), zf, prefix)
            data = up.load()
    except CheckpointError:
        raise
    except Exception as exc:  # malformed records, bad zip: refuse the file, nothing was executed
        raise CheckpointError(
            f"{path}: the checkpoint could not be read by the restricted loader ({type(exc).__name__}: "
            f"{_first_line(exc)}); nothing in it was executed"
        ) from None
    if not isinstance(data, Mapping) or _holds_inert(list(data.keys())):
        what = ", ".join(sorted(set(up.named))[:3]) or type(data).__name__
        raise CheckpointError(
            f"{path}: the checkpoint's top level is not a plain dict (it names {what}); nothing was executed"
        )
    kept, skipped = {}, {}
    for k, v in data.items():
        if _holds_inert(v):
            skipped[k] = ", ".join(sorted(_globals_in(v, set())))
        else:
            kept[k] = v
    return SafeCheckpoint(kept, skipped, loader="restricted unpickler (objects skipped)")
