"""Torch-free runtime for deploy bundles: `SkillRuntime`, the opt-in `SafetyLayer` around it, and the errors
they raise.

Imports nothing of tt-deploy but `tt_deploy.errors` and the manifest schema (numpy + onnxruntime
only), so a robot controller can install it without torch.
"""

from tt_deploy.errors import BundleError, InputError, MissingExtraError, TTDeployError, UnknownNameError
from tt_deploy.runtime.manifest import (
    SCHEMA,
    BundleManifest,
    SkillManifest,
    TensorSpec,
    read_manifest,
    read_skill,
)
from tt_deploy.runtime.safety import SafetyConfig, SafetyLayer
from tt_deploy.runtime.session import BACKENDS, SessionConfig
from tt_deploy.runtime.simulator import mjcf_path, read_mjcf
from tt_deploy.runtime.skill_runtime import SkillRuntime

__all__ = [
    "SkillRuntime", "SafetyLayer", "SafetyConfig", "SessionConfig", "BACKENDS", "SCHEMA", "BundleManifest",
    "SkillManifest", "TensorSpec", "read_manifest", "read_skill", "read_mjcf", "mjcf_path", "TTDeployError", "BundleError", "InputError",
    "UnknownNameError", "MissingExtraError",
]  # fmt: skip
