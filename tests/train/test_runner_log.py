import csv
import types

from tt_deploy.train.runner import OnPolicyRunner


def test_log_csv_gains_columns_without_misaligning_old_rows(tmp_path):
    fake = types.SimpleNamespace(out_dir=tmp_path, _csv_path=tmp_path / "log.csv")
    OnPolicyRunner._log(fake, {"a": 1, "b": 2})
    OnPolicyRunner._log(fake, {"a": 3, "b": 4, "c": 5})  # e.g. resumed with newer code
    OnPolicyRunner._log(fake, {"a": 6, "b": 7, "c": 8})
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert rows == [{"a": "1", "b": "2", "c": ""}, {"a": "3", "b": "4", "c": "5"}, {"a": "6", "b": "7", "c": "8"}]


def test_log_csv_survives_rows_longer_than_their_header(tmp_path):
    # an older runner appended a row with an extra column and no header update
    (tmp_path / "log.csv").write_text("a,b\n1,2\n3,4,5\n")
    fake = types.SimpleNamespace(out_dir=tmp_path, _csv_path=tmp_path / "log.csv")
    OnPolicyRunner._log(fake, {"a": 6, "b": 7, "c": 8})
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["a"] for r in rows] == ["1", "3", "6"] and rows[-1]["c"] == "8"
