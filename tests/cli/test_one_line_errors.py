"""Every user-fixable error of #22's list prints one line (`error: ...`) and exits 2, with no traceback."""

from __future__ import annotations

import json
import os
import pickle
import sys

import pytest

from tt_deploy.cli import main


class _RunsCode:
    """Unpickling this would create a directory: a stand-in for a malicious checkpoint."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _run(monkeypatch, capsys, *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["ttdeploy", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _state(tmp_path, name: str, data: bytes):
    ckpt = tmp_path / name / "reach" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "last_state.pt").write_bytes(data)
    (ckpt.parent / "run.json").write_text('{"config": {"sim": "mujoco"}}')  # the state file is what is under test
    return tmp_path / name


TRAIN = ("train", "--skill", "reach", "--steps", "2048", "--num-envs", "2", "--resume")


def test_resume_from_a_corrupt_or_truncated_state(tmp_path, monkeypatch, capsys):
    out = _state(tmp_path, "garbage", b"not a checkpoint")
    assert "is not a readable training state" in _run(monkeypatch, capsys, *TRAIN, "--out", str(out))
    out = _state(tmp_path, "truncated", pickle.dumps({"x": 1}, protocol=2)[:5])
    assert "is not a readable training state" in _run(monkeypatch, capsys, *TRAIN, "--out", str(out))


def test_resume_from_a_malicious_state_runs_nothing(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    out = _state(tmp_path, "evil", pickle.dumps({"x": _RunsCode(marker)}, protocol=2))
    assert "nothing in it was run" in _run(monkeypatch, capsys, *TRAIN, "--out", str(out))
    assert not marker.exists()


def test_paths_that_are_files(tmp_path, monkeypatch, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert "is a file" in _run(monkeypatch, capsys, "train", "--skill", "reach", "--out", str(f))
    assert "is a file, not a directory" in _run(monkeypatch, capsys, "export", "--skill", "reach", "--bundle", str(f))
    assert f.read_text() == "x"


@pytest.fixture(scope="module")
def real_manifest(tmp_path_factory):
    from tt_deploy.export.bundle import export_skill

    bundle = export_skill("reach", bundle_dir=tmp_path_factory.mktemp("real") / "deploy")
    return json.loads((bundle / "manifest.json").read_text())


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: [], "holds a JSON list, not an object"),
        (lambda m: {**m, "token_dim": "64"}, "token_dim: '64' is not a int"),
        (lambda m: {**m, "content": 3}, "content: 3 is not a str"),
        (lambda m: {**m, "content": "../x"}, "is not a version dir name"),
    ],
)
def test_malformed_manifests(tmp_path, monkeypatch, capsys, real_manifest, edit, match):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps(edit(real_manifest)))
    assert match in _run(monkeypatch, capsys, "export", "--skill", "reach", "--bundle", str(bundle))


def test_a_full_disk_during_export_is_one_line_and_the_bundle_stays_as_it_was(tmp_path, monkeypatch, capsys):
    import errno

    from tt_deploy.runtime import manifest as mf

    bundle = tmp_path / "deploy"
    monkeypatch.setattr(sys, "argv", ["ttdeploy", "export", "--skill", "reach", "--bundle", str(bundle)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    capsys.readouterr()
    before = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}

    def full(path, skill):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(mf, "write_skill", full)  # the disk fills while the new version is being written
    line = _run(monkeypatch, capsys, "export", "--skill", "steering", "--bundle", str(bundle))
    assert "No space left on device" in line and "nothing was half-written" in line
    after = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert after == before  # no new version dir, the manifest and every old file unchanged
    assert mf.read_manifest(bundle).skills == ("reach",)
