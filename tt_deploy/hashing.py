"""sha256 of files: the identity of every checkpoint, graph and bundle file (stdlib only, so the
torch-free runtime and the torch side share one implementation)."""

from __future__ import annotations

import hashlib
import os
import re


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_CHECKOUT_PREFIX = re.compile(r'(?<=["\s])/[^"\s\\]*/(?=tt_deploy/)')  # "/any/checkout/" before tt_deploy/


def strip_checkout_paths(text: str) -> str:
    """`"/any/checkout/tt_deploy/x"` -> `"tt_deploy/x"` inside JSON (or JSON-in-a-string) text: records of
    package files carry no machine path, wherever they were written (shipped skills, docs)."""
    return _CHECKOUT_PREFIX.sub("", text)


def portable_path(path: str | os.PathLike) -> str:
    """How a record names a file: `tt_deploy/...` for a file shipped inside the package (so records and
    shipped files never carry the machine's checkout path), else the path as given."""
    here = os.path.dirname(os.path.abspath(__file__))
    full = os.path.abspath(path)
    if os.path.commonpath([here, full]) == here:
        return "tt_deploy/" + os.path.relpath(full, here).replace(os.sep, "/")
    return os.fspath(path)


def resolve_portable_path(path: str) -> str:
    """The file a record's path names, on this machine: `tt_deploy/...` (what `portable_path` writes for a
    package file) is looked up in this installed package, wherever it lives; any other path is as given."""
    prefix = "tt_deploy/"
    if path.startswith(prefix):
        here = os.path.dirname(os.path.abspath(__file__))
        full = os.path.join(here, *path[len(prefix):].split("/"))
        if os.path.exists(full):
            return full
    return path
