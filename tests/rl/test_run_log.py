import csv

import pytest

from tt_deploy.rl.run_log import RunLog


def _logger(tmp_path, tensorboard=False):
    return RunLog(tmp_path, tensorboard=tensorboard)


def test_log_csv_gains_columns_without_misaligning_old_rows(tmp_path):
    fake = _logger(tmp_path)
    fake({"a": 1, "b": 2})
    fake({"a": 3, "b": 4, "c": 5})  # e.g. resumed with newer code
    fake({"a": 6, "b": 7, "c": 8})
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert rows == [{"a": "1", "b": "2", "c": ""}, {"a": "3", "b": "4", "c": "5"}, {"a": "6", "b": "7", "c": "8"}]


def test_log_csv_survives_rows_longer_than_their_header(tmp_path):
    # an older runner appended a row with an extra column and no header update
    (tmp_path / "log.csv").write_text("a,b\n1,2\n3,4,5\n")
    fake = _logger(tmp_path)
    fake({"a": 6, "b": 7, "c": 8})
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["a"] for r in rows] == ["1", "3", "6"] and rows[-1]["c"] == "8"


def test_tensorboard_events_are_written_when_tensorboard_is_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="optional extra: pip install 'tt-deploy[tensorboard]'")
    runner = _logger(tmp_path, tensorboard=True)
    runner({"iteration": 1, "env_steps": 64, "ep_return": 1.5})
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
