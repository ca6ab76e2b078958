import csv

import pytest

from tt_deploy.train.runner import OnPolicyRunner


def _logger(tmp_path, tensorboard=False):
    """A runner with only its logging state (no env, no policy)."""
    runner = object.__new__(OnPolicyRunner)
    runner.out_dir, runner._csv_path, runner._tb = tmp_path, tmp_path / "log.csv", None if tensorboard else False
    return runner


def test_log_csv_gains_columns_without_misaligning_old_rows(tmp_path):
    fake = _logger(tmp_path)
    fake._log({"a": 1, "b": 2})
    fake._log({"a": 3, "b": 4, "c": 5})  # e.g. resumed with newer code
    fake._log({"a": 6, "b": 7, "c": 8})
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert rows == [{"a": "1", "b": "2", "c": ""}, {"a": "3", "b": "4", "c": "5"}, {"a": "6", "b": "7", "c": "8"}]


def test_log_csv_survives_rows_longer_than_their_header(tmp_path):
    # an older runner appended a row with an extra column and no header update
    (tmp_path / "log.csv").write_text("a,b\n1,2\n3,4,5\n")
    fake = _logger(tmp_path)
    fake._log({"a": 6, "b": 7, "c": 8})
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["a"] for r in rows] == ["1", "3", "6"] and rows[-1]["c"] == "8"


def test_tensorboard_events_are_written_when_tensorboard_is_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="optional extra: pip install 'tt-deploy[tensorboard]'")
    runner = _logger(tmp_path, tensorboard=True)
    runner._log({"iteration": 1, "env_steps": 64, "ep_return": 1.5})
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
