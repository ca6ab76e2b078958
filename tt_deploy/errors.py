"""One exception root for errors a user can fix (bad input, bad files, missing extras).

The CLI prints these in one line and exits non-zero; any other exception is a bug and keeps
its traceback.
"""


class TTDeployError(Exception):
    """Base of every user-facing error."""


class InputError(TTDeployError, ValueError):
    """An argument or array has the wrong shape, dtype, range or value."""


class BundleError(TTDeployError):
    """A deploy bundle is missing files, has mismatched hashes or an unsupported schema."""


class CheckpointError(TTDeployError):
    """A checkpoint cannot be read, does not match its config, or failed its hash check."""


class UnknownNameError(TTDeployError, KeyError):
    """A registry lookup (skill, backend, grid, config) asked for a name that does not exist."""

    def __init__(self, kind: str, name: str, known):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class MissingExtraError(TTDeployError, ImportError):
    """An optional dependency (tensorrt, isaacgym, ray) is not installed."""


class NonFiniteActionsError(TTDeployError, FloatingPointError):
    """A graph returned NaN or inf actions (corrupted weights, or inputs that overflow it)."""


class ConcurrentUseError(TTDeployError, RuntimeError):
    """Two threads called one SkillRuntime at once; it is not thread-safe (one runtime per thread)."""
