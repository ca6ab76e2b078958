"""Suite-wide settings: one compute thread per test worker.

`pytest -n 2` runs two workers on the 2-core CI machine; letting each also start 2 OpenMP/torch
threads oversubscribes the cores and slows small-batch torch calls by 10x or more.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the runtime tests run without torch
    pass
