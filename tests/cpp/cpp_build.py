"""Build cpp/ (libtt_deploy + its ctest tests) with cmake, from the Python packages' SDKs, once per machine.

The build tree is cached in cpp/build/pytest-<key> (key: the OpenVINO and nlohmann-json locations), so a
second run only re-links what changed; an flock serialises pytest-xdist workers building it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CPP = ROOT / "cpp"
BUILD_ROOT = CPP / "build"
JOBS = "2"  # the CI machine has 2 cores
HEADER = CPP / "include" / "tt_deploy" / "tt_deploy.h"


def missing_toolchain() -> str | None:
    """Why this machine cannot build cpp/ at all (the test then skips), or None."""
    for tool in ("cmake", "ctest", "c++"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install cmake g++)"
    include_dirs = (Path("/usr/include"), Path("/usr/local/include"))
    if not any((d / "openssl" / "evp.h").is_file() for d in include_dirs):  # find_package(OpenSSL REQUIRED)
        return "OpenSSL's headers are not installed (Debian: apt-get install libssl-dev)"
    try:
        import openvino
    except ImportError:
        return "the openvino package (its C++ SDK) is not installed: pip install 'tt-deploy[openvino]'"
    if not (Path(openvino.__file__).parent / "cmake" / "OpenVINOConfig.cmake").is_file():
        return f"this openvino package ({openvino.__version__}) ships no C++ SDK (openvino/cmake)"
    return None


def cmake_args() -> list[str]:
    """-D options naming the SDKs inside the installed Python packages (cpp/README.md)."""
    import openvino

    try:
        import nlohmann_json
    except ImportError as exc:  # a dependency of the test extra: fail, do not skip
        raise RuntimeError("nlohmann-json is not installed: pip install nlohmann-json==3.12.0") from exc
    return [f"-DOpenVINO_DIR={Path(openvino.__file__).parent / 'cmake'}",
            f"-DNLOHMANN_JSON_INCLUDE_DIR={nlohmann_json.get_include()}", "-DCMAKE_BUILD_TYPE=Release"]


@contextlib.contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def build() -> tuple[Path, dict[str, float]]:
    """(build dir, {"configure_s", "build_s"}): cpp/ configured and built, or RuntimeError with the log."""
    args = cmake_args()
    key = hashlib.sha256("\n".join(args).encode()).hexdigest()[:10]
    build_dir = BUILD_ROOT / f"pytest-{key}"
    with locked(BUILD_ROOT / ".pytest.lock"):
        t0 = time.perf_counter()
        configure = _run(["cmake", "-S", str(CPP), "-B", str(build_dir), *args], ROOT)
        if configure.returncode != 0:
            raise RuntimeError(f"cmake configure failed:\n{configure.stdout[-4000:]}\n{configure.stderr[-4000:]}")
        t1 = time.perf_counter()
        made = _run(["cmake", "--build", str(build_dir), "-j", JOBS], ROOT)
        if made.returncode != 0:
            raise RuntimeError(f"cmake --build failed:\n{made.stdout[-6000:]}\n{made.stderr[-6000:]}")
        t2 = time.perf_counter()
    return build_dir, {"configure_s": t1 - t0, "build_s": t2 - t1}


def run_ctest(build_dir: Path, bundle: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "TT_DEPLOY_TEST_BUNDLE": str(bundle)}
    t0 = time.perf_counter()
    proc = _run(["ctest", "--output-on-failure", "-j", "1"], build_dir, env)
    return proc, time.perf_counter() - t0


def library(build_dir: Path) -> Path:
    return build_dir / "libtt_deploy.so"
