"""A glide expert's walks as the next BFM's card will report them: straight and turning, per command speed.

    python scripts/glide_walks.py RUN_DIR [--speeds 0.3,0.5,0.7,1.0,1.2,1.5] [--turn-rate 0.3] [--envs 32]
                                  [--seconds 20] [--json OUT]
    python scripts/glide_walks.py --table OUT.json     # the Markdown table of a measurement (docs/training.md)

Each row is `measure_walk` (tt_deploy/pretrain/glide_expert.py): per-step speed along the command, swing =
std / own mean after 5 s, mean error, falls over the walk; turning rows turn the command at --turn-rate rad/s.
The walking controller alone is measured beside the expert on the same seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tt_deploy.pretrain.glide_expert import DESIGNS, GlidePolicy, load_policy_weights, measure_walk, policy_actor
from tt_deploy.sim.humanoid_model import build_model


def _cell(r: dict) -> str:
    if r["fall_rate"] >= 1.0:
        return "falls 100 %"
    falls = f", falls {r['fall_rate']:.0%}" if r["fall_rate"] else ""
    return f"{r['swing']:.1%}, {r['mean_error']:+.1%}{falls}".replace("%", " %")


def table(out: dict) -> str:
    """Rows = walker x straight/turning, columns = command speeds."""
    speeds = sorted({r["command"] for r in out["rows"]})
    lines = ["| walker | command | " + " | ".join(f"{v:g} m/s" for v in speeds) + " |",
             "|---|---|" + "---|" * len(speeds)]  # fmt: skip
    keys = dict.fromkeys((r["walker"], r["turn_rate"]) for r in out["rows"])
    for who, turn in keys:
        cells = {r["command"]: _cell(r) for r in out["rows"] if (r["walker"], r["turn_rate"]) == (who, turn)}
        what = "straight" if not turn else f"turning {turn:g} rad/s"
        lines.append(f"| {who} | {what} | " + " | ".join(cells.get(v, "-") for v in speeds) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, nargs="?")
    ap.add_argument("--table", type=Path, default=None, help="print the table of this measurement JSON and stop")
    ap.add_argument("--speeds", default="0.3,0.5,0.7,1.0,1.2,1.5")
    ap.add_argument("--turn-rate", type=float, default=0.3)
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.table is not None:
        print(table(json.loads(a.table.read_text())))
        return
    if a.run_dir is None:
        ap.error("RUN_DIR is needed unless --table")
    record = json.loads((a.run_dir / "run.json").read_text())
    cfg = DESIGNS[record["config"]["design"]]
    policy = GlidePolicy(build_model().pd_scale, cfg.residual_rad, cfg.hidden)
    policy.load_state_dict(load_policy_weights(a.run_dir / "checkpoints" / "last_policy.safetensors"))
    speeds = tuple(float(v) for v in a.speeds.split(","))
    out = {"run": str(a.run_dir), "env_steps": record.get("env_steps"), "rows": []}
    for who, act in (("expert", policy_actor(policy)), ("controller", None)):
        for turn in (0.0, a.turn_rate):
            for row in measure_walk(act, cfg, speeds=speeds, envs=a.envs, seconds=a.seconds, turn_rate=turn):
                row = {"walker": who, "turn_rate": turn, **row}
                out["rows"].append(row)
                print(json.dumps(row), flush=True)
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    print(table(out))


if __name__ == "__main__":
    main()
