"""Per-step walk steadiness of BFM checkpoints side by side (the card's steadiness rows, smaller and faster).

    python scripts/bfm_steadiness.py BFM.safetensors [...] [--envs 16] [--seconds 12] [--json OUT]

For each checkpoint: walk prompts at 0.5 / 0.7 / 1.0 / 1.5 m/s, straight and with the command turning at
0.3 rad/s (pretrain/steady_walk.measure_bfm_walk): swing, mean error, falls.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tt_deploy.atomic import atomic_write_text
from tt_deploy.hashing import portable_path
from tt_deploy.models.checkpoints import load_bfm
from tt_deploy.pretrain.steady_walk import CARD_TURN_RATE, measure_bfm_walk, passes

SPEEDS = (0.5, 0.7, 1.0, 1.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bfm", nargs="+")
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {"envs": args.envs, "seconds": args.seconds, "checkpoints": {}}
    for path in args.bfm:
        bfm = load_bfm(path)[0]
        rows = []
        for turn in (0.0, CARD_TURN_RATE):
            rows += measure_bfm_walk(bfm, SPEEDS, turn_rate=turn, envs=args.envs, seconds=args.seconds, nthread=1)
        out["checkpoints"][portable_path(path)] = rows
        for r in rows:
            print(f"{Path(path).name:28s} {r.get('turn_rate', 0):.1f} rad/s {r['command']:.1f} m/s: swing "
                  f"{100 * r['swing']:5.1f} %, mean {100 * r['mean_error']:+6.1f} %, falls {100 * r['fall_rate']:3.0f} %"
                  f"{'  passes' if passes(r) else ''}", flush=True)  # fmt: skip
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
