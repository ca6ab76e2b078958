"""`ttdeploy` command line. Thin: each verb parses, calls one library function, prints with rich.

Each area registers its verbs in its own module (cli/deploy.py, cli/sim.py, ...); heavy or
optional imports (torch, tensorrt, isaacgym, ray) happen inside the commands so `--help` is fast
and always works.
"""

from __future__ import annotations

import errno
import sys

import typer
from rich.console import Console
from rich.markup import escape

from tt_deploy.errors import TTDeployError

__all__ = ["app", "main"]

app = typer.Typer(
    name="ttdeploy",
    help="Task Tokens deployment toolchain: train task encoders on a frozen BFM, export, verify, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Task Tokens deployment toolchain: export, verify and benchmark deploy bundles.

    A callback keeps `ttdeploy VERB` working even when only one verb is registered (typer would
    otherwise collapse the app into that single command).
    """


def _register() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


# what a bare install (`pip install tt-deploy`: the runtime, verify against recorded references, bench, inspect)
# lacks, and the extra that brings it
TRAIN_EXTRA_MODULES = {"torch": "train", "mujoco": "sim", "matplotlib": "train", "yaml": "train", "onnxscript": "train"}

_TERMINATED: list[int] = []
# what the machine refused, and what to do about it
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free space and rerun", errno.EDQUOT: "free space (disk quota) and rerun",
    errno.EROFS: "work on a writable copy (verify without --record reads only)",
    errno.EACCES: "fix the permissions and rerun", errno.EPERM: "fix the permissions and rerun",
}


def _on_sigterm(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so an export removes the version dir it was writing and training saves its
    checkpoint; main() then exits 143."""
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def _interrupted() -> None:
    how = "terminated (SIGTERM)" if _TERMINATED else "interrupted"
    err_console.print(f"{how}; exports, checkpoints and results are written atomically, nothing is half-written")
    sys.exit(143 if _TERMINATED else 130)


def main() -> None:
    """Console-script entry: user errors print one red line and exit 2; bugs keep tracebacks."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    _register()
    try:
        rc = app(standalone_mode=False)  # click returns typer.Exit codes here instead of exiting
    except TTDeployError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:  # outside click's own handling (e.g. during an import); same exit as Abort
        _interrupted()
    except ModuleNotFoundError as exc:  # a bare install running a command of the lab or the simulators
        root = (exc.name or "").split(".")[0]
        if root not in TRAIN_EXTRA_MODULES:
            raise
        extra = TRAIN_EXTRA_MODULES[root]
        err_console.print("[bold red]error:[/] " + escape(f"this command needs {root}, which this install lacks (a bare "
                          f"install runs bundles, verify --reference recorded, bench and inspect): pip install "
                          f"'tt-deploy[{extra}]'"), soft_wrap=True)  # fmt: skip
        sys.exit(2)
    except OSError as exc:  # the machine's, not ours: a full disk, a read-only or forbidden path
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        err_console.print(f"[bold red]error:[/] {escape(exc.strerror or str(exc))}{escape(where)}; writes are atomic, "
                          f"so nothing was half-written: {_ENVIRONMENT_ERRNOS[exc.errno]}", soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _interrupted()
    except typer.TyperException as exc:  # typer's vendored click errors (UsageError & co) format themselves
        show = getattr(exc, "show", None)
        if show is None:
            err_console.print(f"[bold red]error:[/] {exc.format_message()}")
        else:
            show()
        sys.exit(exc.exit_code)
    if rc == 130 or _TERMINATED:  # typer turns Ctrl-C into Exit(130), which click returns silently
        _interrupted()
    sys.exit(rc if isinstance(rc, int) else 0)
