"""A training run's log: one CSV row per iteration (+ TensorBoard scalars when installed) and a JSON log line.

Shared by every trainer (PPO runner, DAgger). A row with a new column (e.g. after a resume with newer
code) rewrites the file with the wider header, atomically, so a crash never loses the rows already logged.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from tt_deploy.atomic import atomic_path

log = logging.getLogger(__name__)


def _tensorboard_writer(log_dir: Path):
    """A SummaryWriter if the optional `tensorboard` extra is installed, else None (CSV only)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard not installed (pip install 'tt-deploy[tensorboard]'): logging to CSV only")
        return None
    return SummaryWriter(log_dir=str(log_dir))


class RunLog:
    """`RunLog(out_dir)(row)` appends `row` to out_dir/log.csv (and out_dir/tensorboard)."""

    def __init__(self, out_dir: Path, tensorboard: bool = True):
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / "log.csv"
        self._tb = None if tensorboard else False  # None: open on the first row

    def __call__(self, row: dict) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        header, rows = list(row), None
        if self.csv_path.exists():
            with open(self.csv_path, newline="") as f:
                reader = csv.DictReader(f)
                old = list(reader.fieldnames or [])
                if set(row) - set(old):
                    rows = [{k: v for k, v in r.items() if k is not None} for r in reader]
            header = old + [k for k in row if k not in old]
        if rows is not None or not self.csv_path.exists():
            with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=header, restval="")
                w.writeheader()
                w.writerows(rows or [])
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=header, restval="", extrasaction="ignore").writerow(row)
        self._tensorboard(row)
        log.info(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))

    def _tensorboard(self, row: dict) -> None:
        if self._tb is None:
            self._tb = _tensorboard_writer(self.out_dir / "tensorboard") or False
        if self._tb:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("iteration", "env_steps") and v == v:
                    self._tb.add_scalar(k, v, global_step=row["env_steps"])
            self._tb.flush()
