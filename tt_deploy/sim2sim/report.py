"""Sim2sim report: JSON for machines, Markdown + self-contained HTML (base64 PNG plots) for people.

Plots (matplotlib, Agg): success rate vs each perturbation kind for the reference and the runtime
with 95 % Wilson intervals (the shape of the Task Tokens paper's robustness figure), and the
histogram of open-loop action errors over every cell.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from tt_deploy.sim.perturbations import NOMINAL
from tt_deploy.sim2sim.metrics import HIST_EDGES, CellResult

_KNOBS = ("friction", "gravity", "mass", "motor", "action_delay", "obs_noise")


def _kind_series(cells: list[CellResult]) -> dict[str, list[tuple[float, CellResult]]]:
    """{knob: [(level, cell)]} for one-knob cells; the nominal cell joins every knob's series."""
    nominal = next((c for c in cells if c.name == "nominal"), None)
    series: dict[str, list[tuple[float, CellResult]]] = {}
    for c in cells:
        moved = [k for k in _KNOBS if c.perturbation[k] != getattr(NOMINAL, k)]
        if len(moved) == 1:
            series.setdefault(moved[0], []).append((float(c.perturbation[moved[0]]), c))
    for k, pts in series.items():
        if nominal is not None:
            pts.append((float(getattr(NOMINAL, k)), nominal))
        pts.sort(key=lambda p: p[0])
    return series


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def robustness_figure(cells: list[CellResult]) -> bytes | None:
    """PNG: one column per perturbation kind; success rate (95 % CI) and task metric of both runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = _kind_series(cells)
    if not series:
        return None
    metric = cells[0].metric_name
    fig, axes = plt.subplots(2, len(series), figsize=(3.2 * len(series), 5.6), squeeze=False)
    for col, (knob, pts) in enumerate(series.items()):
        x = np.array([p[0] for p in pts])
        for attr, label, style in (("reference", "PyTorch reference", "o-"), ("runtime", "runtime", "s--")):
            rates = [getattr(c, attr) for _, c in pts]
            y = np.array([r.rate for r in rates])
            err = np.array([[r.rate - r.low for r in rates], [r.high - r.rate for r in rates]])
            axes[0][col].errorbar(x, y, yerr=err, fmt=style, capsize=3, label=label, alpha=0.8)
            axes[1][col].plot(x, [getattr(c, f"metric_{attr}") for _, c in pts], style, label=label, alpha=0.8)
        axes[0][col].set_ylim(-0.05, 1.05)
        axes[1][col].set_xlabel(knob)
        for row in (0, 1):
            axes[row][col].grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate (95 % CI)")
    axes[1][0].set_ylabel(metric)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def error_histogram(cells: list[CellResult], atol: float) -> bytes | None:
    """PNG: counts of element-wise open-loop abs errors (log bins), tolerance marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.sum([c.open_loop_hist for c in cells], axis=0) if cells else None
    if counts is None or counts.sum() == 0:
        return None
    edges = HIST_EDGES.copy()
    edges[0] = edges[1] / 10  # exact zeros go in the first (drawn) bin
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.stairs(counts, edges, fill=True, alpha=0.7)
    ax.axvline(atol, color="red", ls="--", label=f"tolerance {atol:.0e}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("|runtime - reference| per action element (open loop)")
    ax.set_ylabel("count")
    ax.legend()
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def _f(x: float, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _rate(r) -> str:
    return f"{r.rate:.2f} [{r.low:.2f}, {r.high:.2f}]"


def _compared(labels: tuple[str, str], rates, diff: tuple[float, float, float], falls, metric: str, metrics) -> dict:
    """The columns every two-arm table shares: both success rates, their difference, falls, the task metric."""
    a, b = labels
    return {f"{a} success": _rate(rates[0]), f"{b} success": _rate(rates[1]),
            "diff [95% CI]": f"{diff[0]:+.2f} [{diff[1]:+.2f}, {diff[2]:+.2f}]",
            f"fall {a}/{b}": f"{falls[0]:.2f}/{falls[1]:.2f}", f"{metric} {a}/{b}": f"{_f(metrics[0])}/{_f(metrics[1])}"}


def cell_rows(result) -> list[dict]:
    """One flat dict per cell (the CLI table and the Markdown table use the same columns)."""
    rows = []
    for c in result.cells:
        rows.append({
            "cell": c.name,
            **_compared(("ref", "rt"), (c.reference, c.runtime), (c.success_diff, c.diff_low, c.diff_high),
                        (c.fall_reference, c.fall_runtime), c.metric_name, (c.metric_reference, c.metric_runtime)),
            "open-loop max": f"{c.open_loop_max:.1e}", "p99": f"{c.open_loop_p99:.1e}",
            "diverge steps (med)": f"{c.divergence_median:.0f}", "diverged": f"{c.diverged_fraction:.2f}",
            "verdict": "pass" if c.passed else "FAIL",
        })  # fmt: skip
    return rows


def cross_rows(result) -> list[dict]:
    """One flat dict per cross-simulator cell: the reference under the training physics vs the other physics."""
    return [{
        "cell": c.cell,
        **_compared(("training", "cross"), (c.training, c.cross), (c.gap, c.gap_low, c.gap_high),
                    (c.fall_training, c.fall_cross), c.metric_name, (c.metric_training, c.metric_cross)),
        "diverge steps (med)": f"{c.divergence_median:.0f}", "diverged": f"{c.diverged_fraction:.2f}",
    } for c in result.cross_cells]  # fmt: skip


def _md_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _summary_lines(result) -> list[str]:
    n_pass = sum(c.passed for c in result.cells)
    lines = [
        f"- bundle `{result.bundle}`, skill `{result.skill}`, backend `{result.backend}`, executor `{result.executor}`",
        f"- grid `{result.grid}`: {len(result.cells)} cells x {result.episodes} episodes x {result.episode_seconds:g} s, "
        f"seed {result.seed}; wall time {result.wall_seconds:.1f} s",
        f"- **verdict: {'PASS' if result.passed else 'FAIL'}** - {n_pass}/{len(result.cells)} cells passed "
        f"(open-loop max abs {result.open_loop_max:.2e}, tolerance {result.atol:.0e}; "
        "success-rate difference interval must contain 0)",
    ]
    cs = result.cross_sim
    if cs is not None:
        lines.append(
            f"- cross-sim ({cs.training_physics} -> {cs.cross_physics}, reference, nominal cell, {cs.episodes} episodes): "
            f"success {cs.training.rate:.2f} -> {cs.cross.rate:.2f}, gap {cs.gap:+.2f} [{cs.gap_low:+.2f}, {cs.gap_high:+.2f}]; "
            f"fall {cs.fall_training:.2f} -> {cs.fall_cross:.2f}; {cs.metric_name} {_f(cs.metric_training)} -> "
            f"{_f(cs.metric_cross)}; roots diverge (> 5 cm) after {cs.divergence_median:.0f} steps (median)"
        )
    for c in result.cells:
        if not c.passed:
            lines.append(f"- FAILED `{c.name}`: " + "; ".join(c.reasons))
    return lines


def write_report(result, report_dir: str | os.PathLike) -> list[Path]:
    """Write sim2sim.json, sim2sim.md (+ PNGs beside it) and sim2sim.html (PNGs embedded)."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {"robustness.png": robustness_figure(result.cells),
            "open_loop_errors.png": error_histogram(result.cells, result.atol)}  # fmt: skip
    written = []
    for name, data in pngs.items():
        if data is not None:
            (out / name).write_bytes(data)
            written.append(out / name)
    title = f"sim2sim: {result.skill} ({result.grid} grid)"
    rows = cell_rows(result)
    md = [f"# {title}", "", *_summary_lines(result), ""]
    md += [f"![{n}]({n})" for n, d in pngs.items() if d is not None]
    md += ["", _md_table(rows), ""]
    if len(result.cross_cells) > 1:
        cs = result.cross_cells[0]
        md += [f"## Cross-simulator: {cs.training_physics} -> {cs.cross_physics} (reference policy, every cell)", "",
               _md_table(cross_rows(result)), ""]
    (out / "sim2sim.md").write_text("\n".join(md))
    imgs = "".join(
        f'<p><img alt="{n}" src="data:image/png;base64,{base64.b64encode(d).decode()}"></p>'
        for n, d in pngs.items() if d is not None
    )  # fmt: skip
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (rows[0] if rows else []))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    items = "".join(f"<li>{html.escape(s.lstrip('- ').replace('**', '').replace('`', ''))}</li>"
                    for s in _summary_lines(result))  # fmt: skip
    (out / "sim2sim.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}"
        "table{border-collapse:collapse}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><ul>{items}</ul>{imgs}<table><tr>{head}</tr>{body}</table></body></html>"
    )
    (out / "sim2sim.json").write_text(json.dumps(result.to_dict(), indent=1, default=json_default))
    return [*written, out / "sim2sim.md", out / "sim2sim.html", out / "sim2sim.json"]


def json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
