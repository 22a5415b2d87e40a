#!/usr/bin/env python3
"""Builds perf/dashboard.html from every run under perf/runs/.

Usage:
    python3 perf/dashboard.py [--runs perf/runs] [--out perf/dashboard.html]

Each run folder holds raw/*.json files written by perf/run: either a wrapper
(`{"perf_run": 1, "scenario_id": ..., "variant": ..., "loadgen": <report>, "pool": ...}`)
or a bare warppool-loadgen report (`{"tool": "warppool-loadgen", ...}`, the contract format).
The metrics of a run are read from those files only, so the dashboard can always be rebuilt.

The HTML is self-contained: inline CSS and inline SVG, no script, no external fetch.
This module is also imported by perf/run for the summary table (one definition of every
metric and every target). Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

# Targets from issue 5 (benchmarks, not tests).
TARGET_MAX_RATE_PER_S = 100_000
TARGET_BYTES_PER_CONN = 4 * 1024
TARGET_NEW_TIP_P99_US = 50_000
TARGET_SUBMIT_P99_US = 5_000

# Loadgen scenario name -> standard scenario id, for bare reports.
BARE_SCENARIO_IDS = {
    "steady": "1",
    "idle": "3",
    "connect-storm": "4",
    "new-tip": "5",
}

SCENARIO_NAMES = {
    "1": "steady",
    "2": "max-rate",
    "3": "idle",
    "4": "connect-storm",
    "5": "new-tip",
}

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _get(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]... or None when any step is missing or null."""
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return float(value)


def answered(report: dict[str, Any]) -> float | None:
    """Shares the pool answered (accepted + rejected by any reason)."""
    shares = _get(report, "shares")
    if not isinstance(shares, dict):
        return None
    accepted = _num(shares.get("accepted")) or 0.0
    rejected = shares.get("rejected") or {}
    if not isinstance(rejected, dict):
        return None
    return accepted + sum(_num(v) or 0.0 for v in rejected.values())


def answered_per_s(report: dict[str, Any]) -> float | None:
    """Answered shares per second over the report's duration."""
    total = answered(report)
    duration = _num(report.get("duration_s"))
    if total is None or not duration:
        return None
    return total / duration


def step_verdict(step: dict[str, Any]) -> tuple[bool, str]:
    """Whether one step of the scenario 2 search passed, and why not.

    A step passes when loadgen ran to the end, submit->reply p99 < 5 ms (submit written ->
    reply arrived at loadgen's socket, by the kernel's receive stamp), no share timed out
    or went unanswered (beyond the submits that may still be in flight when loadgen stops:
    miners x max_inflight), the pool made no verdict error, and loadgen really offered at least
    90% of the asked rate (otherwise loadgen, not the pool, was the limit).
    """
    report = step.get("loadgen")
    if not isinstance(report, dict):
        return False, "no loadgen report"
    p99 = _num(_get(report, "latency_us", "submit_to_reply", "p99"))
    if p99 is None:
        return False, "no submit->reply latency"
    if p99 >= TARGET_SUBMIT_P99_US:
        return False, f"p99 {p99 / 1000:.2f} ms >= 5 ms"
    timeouts = _num(_get(report, "shares", "timeouts")) or 0
    if timeouts > 0:
        return False, f"{int(timeouts)} timeouts"
    submitted = _num(_get(report, "shares", "submitted")) or 0
    done = answered(report) or 0
    # Submits still in flight when loadgen stopped are not lost: at most miners x window.
    in_flight = (_num(step.get("miners")) or 0) * (_num(step.get("max_inflight")) or 0)
    if submitted - done > in_flight:
        return False, f"{int(submitted - done)} shares unanswered"
    errors = _get(report, "shares", "pool_errors") or {}
    bad = sum(_num(v) or 0 for v in errors.values()) if isinstance(errors, dict) else 0
    if bad:
        return False, f"{int(bad)} pool verdict errors"
    offered = _num(step.get("offered_per_s"))
    sent = _num(_get(report, "shares", "submitted_per_s"))
    if offered and (sent is None or sent < 0.9 * offered):
        return False, ("loadgen-limited (submitted < 90% of offered: loadgen's core, or "
                       "replies too slow for its in-flight window)")
    return True, "ok"


def max_rate_result(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest passing step of the scenario 2 search, and why the search stopped (the last
    step, when it failed; perf/run repeats a failing step once before it stops)."""
    best = None
    for step in steps:
        ok, _ = step_verdict(step)
        if ok:
            rate = answered_per_s(step["loadgen"])
            if rate is not None and (best is None or rate > best["answered_per_s"]):
                best = {
                    "offered_per_s": step.get("offered_per_s"),
                    "answered_per_s": rate,
                    "p99_us": _get(step["loadgen"], "latency_us", "submit_to_reply", "p99"),
                }
    stop = None
    if steps:
        ok, why = step_verdict(steps[-1])
        if not ok:
            cpu = _num(_get(steps[-1], "pool", "cpu_percent"))
            own = _num(_get(steps[-1], "loadgen_run", "loadgen_cpu_percent"))
            if cpu is not None:
                why += f" (pool CPU {cpu:.1f} %"
                why += ")" if own is None else f", loadgen CPU {own:.1f} %)"
            stop = {"offered_per_s": steps[-1].get("offered_per_s"), "why": why}
    return {"best": best, "stop": stop, "steps": len(steps)}


def _classify(doc: dict[str, Any]) -> tuple[str, str] | None:
    """(scenario id, variant) of one raw file, or None if it is not a perf record."""
    if doc.get("perf_run") == 1:
        sid = str(doc.get("scenario_id", ""))
        return (sid, str(doc.get("variant", "base"))) if sid in SCENARIO_NAMES else None
    if doc.get("tool") == "warppool-loadgen":
        sid = BARE_SCENARIO_IDS.get(str(doc.get("scenario")))
        if sid is None:
            return None
        return sid, "tls" if doc.get("tls") else "base"
    return None


def load_run(run_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """raw records of one run: {variant: {scenario id: wrapper document}}."""
    records: dict[str, dict[str, dict[str, Any]]] = {}
    raw = run_dir / "raw"
    if not raw.is_dir():
        return records
    for path in sorted(raw.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"dashboard: skipping {path}: {e}", file=sys.stderr)
            continue
        if not isinstance(doc, dict):
            continue
        kind = _classify(doc)
        if kind is None:
            continue
        sid, variant = kind
        if doc.get("tool") == "warppool-loadgen":
            doc = {"perf_run": 1, "scenario_id": sid, "variant": variant, "loadgen": doc}
        records.setdefault(variant, {})[sid] = doc
    return records


def scenario_metrics(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Headline figures of one variant (None where not measured)."""
    m: dict[str, Any] = {}
    s1 = _get(records, "1", "loadgen")
    if isinstance(s1, dict):
        m["s1_accepted_per_s"] = _num(_get(s1, "shares", "accepted_per_s"))
        m["s1_answered_per_s"] = answered_per_s(s1)
        for q in ("p50", "p99", "p999"):
            m[f"s1_{q}_us"] = _num(_get(s1, "latency_us", "submit_to_reply", q))
        m["s1_handled_p99_us"] = _num(_get(s1, "latency_us", "submit_to_reply_handled", "p99"))
        m["s1_established"] = _num(_get(s1, "connections", "established"))
        m["s1_requested"] = _num(_get(s1, "connections", "requested"))
        errors = _get(s1, "shares", "pool_errors") or {}
        m["s1_pool_errors"] = sum(_num(v) or 0 for v in errors.values())
        m["s1_timeouts"] = _num(_get(s1, "shares", "timeouts"))
    m["s1_cpu_percent"] = _num(_get(records, "1", "pool", "cpu_percent"))
    for k in ("start", "peak", "end"):
        m[f"s1_rss_{k}_kib"] = _num(_get(records, "1", "pool", "rss_kib", k))
    steps = _get(records, "2", "steps")
    if isinstance(steps, list):
        result = max_rate_result(steps)
        m["s2_best_per_s"] = _get(result, "best", "answered_per_s")
        m["s2_best_p99_us"] = _num(_get(result, "best", "p99_us"))
        m["s2_stop"] = _get(result, "stop")
        m["s2_steps"] = result["steps"]
    m["s3_bytes_per_conn"] = _num(_get(records, "3", "pool", "bytes_per_connection"))
    m["s3_connections"] = _num(_get(records, "3", "loadgen", "connections", "established"))
    m["s3_requested"] = _num(_get(records, "3", "loadgen", "connections", "requested"))
    s4 = _get(records, "4", "loadgen")
    if isinstance(s4, dict):
        m["s4_requested"] = _num(_get(s4, "connections", "requested"))
        m["s4_failed"] = _num(_get(s4, "connections", "failed"))
        m["s4_subscribed"] = _num(_get(s4, "connections", "subscribed"))
        m["s4_time_to_all_ms"] = _num(_get(s4, "connections", "time_to_all_subscribed_ms"))
        m["s4_connect_errors"] = _num(_get(s4, "errors", "connect"))
    s5 = _get(records, "5", "loadgen")
    if isinstance(s5, dict):
        for q in ("p50", "p99", "max", "count"):
            m[f"s5_{q}_us"] = _num(_get(s5, "latency_us", "new_tip_to_clean_jobs", q))
        m["s5_handled_p99_us"] = _num(
            _get(s5, "latency_us", "new_tip_to_clean_jobs_handled", "p99"))
        m["s5_established"] = _num(_get(s5, "connections", "established"))
    return {k: v for k, v in m.items() if v is not None}


def run_metrics(run_dir: Path) -> dict[str, Any]:
    """{"label", "base": metrics, "variants": {name: metrics}, "setup": setup.json or {}}."""
    records = load_run(run_dir)
    setup: dict[str, Any] = {}
    try:
        setup = json.loads((run_dir / "setup.json").read_text())
    except (OSError, json.JSONDecodeError):
        pass
    return {
        "label": run_dir.name,
        "base": scenario_metrics(records.get("base", {})),
        "variants": {
            name: scenario_metrics(recs) for name, recs in sorted(records.items()) if name != "base"
        },
        "setup": setup,
    }


# ---------------------------------------------------------------------------------------------
# The summary table (shared by summary.md and the dashboard).
# ---------------------------------------------------------------------------------------------


def _ms(us: float | None) -> str:
    return "—" if us is None else f"{us / 1000:.2f} ms"


def _int(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _rate(v: float | None) -> str:
    return "—" if v is None else f"{v:,.1f}/s"


def _verdict(value: float | None, passed: bool) -> str:
    if value is None:
        return "NOT MEASURED"
    return "PASS" if passed else "SHORT"


def _handled(p99_us: Any) -> str:
    """The p99 when loadgen's task handled the message (its own queueing added), shown next to
    the arrival figure (the kernel's receive stamp on loadgen's socket)."""
    return "" if p99_us is None else f" (handled by loadgen: p99 {_ms(p99_us)})"


def summary_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """[scenario, measured, target, verdict] rows for the base variant."""
    b = metrics["base"]
    rows: list[list[str]] = []
    if "s1_accepted_per_s" in b or "s1_cpu_percent" in b:
        cpu = b.get("s1_cpu_percent")
        measured = (
            f"{_int(b.get('s1_established'))}/{_int(b.get('s1_requested'))} miners; "
            f"accepted {_rate(b.get('s1_accepted_per_s'))}, answered "
            f"{_rate(b.get('s1_answered_per_s'))}; submit→reply p50 {_ms(b.get('s1_p50_us'))}, "
            f"p99 {_ms(b.get('s1_p99_us'))}, p99.9 {_ms(b.get('s1_p999_us'))}"
            f"{_handled(b.get('s1_handled_p99_us'))}; pool CPU "
            f"{'—' if cpu is None else f'{cpu:.1f} %'}; RSS start/peak/end "
            f"{_int(b.get('s1_rss_start_kib'))}/{_int(b.get('s1_rss_peak_kib'))}/"
            f"{_int(b.get('s1_rss_end_kib'))} KiB; pool verdict errors "
            f"{_int(b.get('s1_pool_errors'))}, timeouts {_int(b.get('s1_timeouts'))}"
        )
        ok = b.get("s1_pool_errors", 1) == 0 and b.get("s1_timeouts", 1) == 0
        rows.append(["1 steady", measured, "none (pool errors and timeouts flagged)",
                     "no target" if ok else "ERRORS"])
    if "s2_steps" in b:
        best = b.get("s2_best_per_s")
        stop = b.get("s2_stop")
        why = (
            f"; stopped at {_int(_num(stop.get('offered_per_s')))}/s offered: {stop.get('why')}"
            if isinstance(stop, dict)
            else "; no step failed (the search reached its last step)"
        )
        measured = (
            f"{_rate(best)} answered, p99 {_ms(b.get('s2_best_p99_us'))} "
            if best is not None
            else "no step passed "
        ) + f"({b['s2_steps']} steps{why})"
        # Steps ran but none passed: measured, and short.
        verdict = _verdict(best or 0.0, best is not None and best >= TARGET_MAX_RATE_PER_S)
        rows.append(["2 max share rate, p99 < 5 ms", measured, "≥ 100,000 shares/s", verdict])
    if "s3_connections" in b or "s3_bytes_per_conn" in b:
        per = b.get("s3_bytes_per_conn")
        measured = (
            f"{'—' if per is None else f'{per / 1024:.2f} KiB'} per connection at "
            f"{_int(b.get('s3_connections'))} connections"
        )
        verdict = _verdict(per, per is not None and per <= TARGET_BYTES_PER_CONN)
        rows.append(["3 idle connections, RSS", measured, "≤ 4 KiB/connection", verdict])
    if "s4_requested" in b:
        failed = b.get("s4_failed")
        measured = (
            f"{_int(b.get('s4_subscribed'))}/{_int(b.get('s4_requested'))} subscribed, "
            f"{_int(failed)} failed, all subscribed after "
            f"{_ms(None if b.get('s4_time_to_all_ms') is None else b['s4_time_to_all_ms'] * 1000)}"
        )
        ok = failed == 0 and b.get("s4_subscribed") == b.get("s4_requested")
        rows.append(["4 connect storm (ramp 2 s)", measured, "no failures",
                     "PASS" if ok else "SHORT"])
    if "s5_p99_us" in b or "s5_established" in b:
        p99 = b.get("s5_p99_us")
        measured = (
            f"p50 {_ms(b.get('s5_p50_us'))}, p99 {_ms(p99)}, max {_ms(b.get('s5_max_us'))} "
            f"({_int(b.get('s5_count_us'))} clean_jobs at {_int(b.get('s5_established'))} "
            f"connections{_handled(b.get('s5_handled_p99_us'))})"
        )
        verdict = _verdict(p99, p99 is not None and p99 <= TARGET_NEW_TIP_P99_US)
        rows.append(["5 new-tip fan-out", measured, "p99 ≤ 50 ms", verdict])
    return rows


RATIO_METRICS = [
    ("s1_answered_per_s", "1 answered shares/s"),
    ("s1_accepted_per_s", "1 accepted shares/s"),
    ("s1_p99_us", "1 submit→reply p99"),
    ("s2_best_per_s", "2 highest passing shares/s"),
    ("s5_p99_us", "5 new-tip p99"),
]


def ratio_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """[variant, metric, base, variant, variant/base] rows (scenario 6)."""
    rows = []
    base = metrics["base"]
    for name, m in metrics["variants"].items():
        for key, label in RATIO_METRICS:
            a, v = base.get(key), m.get(key)
            fmt = _ms if key.endswith("_us") else _rate
            ratio = f"{v / a:.2f}" if a and v is not None else "—"
            rows.append([name, label, fmt(a), fmt(v), ratio])
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Inline SVG line charts.
# ---------------------------------------------------------------------------------------------


def _fmt_axis(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    return f"{v:.2g}"


def svg_chart(
    title: str,
    labels: list[str],
    series: list[tuple[str, list[float | None]]],
    unit: str,
    target: tuple[str, float] | None = None,
) -> str:
    """A line chart, one x position per run, one polyline per series (gaps where None)."""
    width, height = 720, 340
    left, right, top, bottom = 80, 20, 30, 110
    pw, ph = width - left - right, height - top - bottom
    values = [v for _, vs in series for v in vs if v is not None]
    if target is not None:
        values.append(target[1])
    hi = max(values) if values else 1.0
    hi = hi * 1.1 if hi > 0 else 1.0
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (pw * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + ph - (ph * v / hi)

    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="18" class="title">{html.escape(title)} ({html.escape(unit)})'
        "</text>",
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" class="axis"/>',
    ]
    for k in range(5):
        v = hi * k / 4
        out.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">'
            f"{_fmt_axis(v)}</text>"
        )
    every = max(1, math.ceil(len(labels) / 10))  # at most ~10 x labels, always the latest
    for i, label in enumerate(labels):
        if i % every and i != len(labels) - 1:
            continue
        out.append(
            f'<text x="{x(i):.1f}" y="{top + ph + 14}" class="tick" text-anchor="end" '
            f'transform="rotate(-30 {x(i):.1f} {top + ph + 14})">{html.escape(label)}</text>'
        )
    if target is not None:
        name, tv = target
        out.append(
            f'<line x1="{left}" y1="{y(tv):.1f}" x2="{left + pw}" y2="{y(tv):.1f}" '
            f'class="target"/><text x="{left + pw - 4}" y="{y(tv) - 4:.1f}" class="tick" '
            f'text-anchor="end">{html.escape(name)}</text>'
        )
    for s, (name, vs) in enumerate(series):
        color = PALETTE[s % len(PALETTE)]
        out.append(f'<g class="series" data-series="{html.escape(name)}" stroke="{color}" '
                   f'fill="{color}">')
        segment: list[str] = []
        for i, v in enumerate(vs):
            if v is None:
                if len(segment) > 1:
                    out.append(f'<polyline fill="none" points="{" ".join(segment)}"/>')
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            out.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5">'
                f"<title>{html.escape(name)} {html.escape(labels[i])}: {v:,.6g} "
                f"{html.escape(unit)}</title></circle>"
            )
        if len(segment) > 1:
            out.append(f'<polyline fill="none" points="{" ".join(segment)}"/>')
        out.append("</g>")
        lx = left + 10 + 150 * s
        out.append(
            f'<rect x="{lx}" y="{height - 16}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{height - 7}" class="tick">{html.escape(name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The page.
# ---------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.PASS { color: #176f2c; font-weight: bold; }
.SHORT, .ERRORS { color: #b3261e; font-weight: bold; }
svg.chart { display: block; margin: 1em 0; background: #fff; border: 1px solid #eee; }
svg .title { font-size: 14px; font-weight: bold; fill: #222; }
svg .tick { font-size: 11px; fill: #555; stroke: none; }
svg .axis { stroke: #444; } svg .grid { stroke: #eee; }
svg .target { stroke: #b3261e; stroke-dasharray: 6 4; }
svg polyline { stroke-width: 2; }
.note { color: #555; font-size: 0.9em; }
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for c in row:
            cls = f' class="{c}"' if c in ("PASS", "SHORT", "ERRORS") else ""
            cells.append(f"<td{cls}>{html.escape(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def find_runs(runs_dir: Path) -> list[Path]:
    """Run folders (those with a raw/ folder), oldest first (names are UTC date-times)."""
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and (p / "raw").is_dir())


def build_html(runs_dir: Path) -> str:
    runs = [run_metrics(p) for p in find_runs(runs_dir)]
    labels = [r["label"] for r in runs]

    def col(key: str, scale: float = 1.0, variant: str | None = None) -> list[float | None]:
        out: list[float | None] = []
        for r in runs:
            m = r["base"] if variant is None else r["variants"].get(variant, {})
            v = m.get(key)
            out.append(None if v is None else v / scale)
        return out

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>WarpPool performance dashboard</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>WarpPool performance dashboard</h1>",
        f'<p class="note">{len(runs)} run(s) under perf/runs/, generated by perf/dashboard.py. '
        "Every figure comes from a perf/run run on the machine named in its setup.json; "
        "pool pinned to CPU 0, loadgen and chain simulator to CPU 1, loopback only. "
        "Hover a point for its value.</p>",
    ]
    if not runs:
        parts.append("<p>No runs yet: run <code>perf/run --quick</code>.</p>")
    else:
        parts.append("<h2>Throughput</h2>")
        parts.append(svg_chart(
            "Scenario 2: highest share rate with submit→reply p99 < 5 ms", labels,
            [("max-rate", col("s2_best_per_s"))] + [
                (f"max-rate {v}", col("s2_best_per_s", variant=v))
                for v in sorted({v for r in runs for v in r["variants"]})
            ],
            "shares/s", ("target 100,000/s", TARGET_MAX_RATE_PER_S)))
        parts.append(svg_chart(
            "Scenario 1: accepted shares/s (steady)", labels,
            [("accepted/s", col("s1_accepted_per_s")),
             ("answered/s", col("s1_answered_per_s"))], "shares/s"))
        parts.append("<h2>Latency</h2>")
        parts.append(svg_chart(
            "Scenario 1: submit→reply", labels,
            [("p50", col("s1_p50_us", 1000)), ("p99", col("s1_p99_us", 1000)),
             ("p99.9", col("s1_p999_us", 1000))], "ms"))
        parts.append(svg_chart(
            "Scenario 5: new tip → clean_jobs received", labels,
            [("p50", col("s5_p50_us", 1000)), ("p99", col("s5_p99_us", 1000))], "ms",
            ("target p99 50 ms", TARGET_NEW_TIP_P99_US / 1000)))
        parts.append("<h2>Memory</h2>")
        parts.append(svg_chart(
            "Scenario 3: pool RSS per idle connection", labels,
            [("bytes/connection", col("s3_bytes_per_conn"))], "bytes",
            ("target 4 KiB", TARGET_BYTES_PER_CONN)))
        latest = runs[-1]
        setup = latest["setup"]
        parts.append(f"<h2>Latest run: {html.escape(latest['label'])}</h2>")
        facts = [
            ("commit", f"{setup.get('git_commit', '?')}"
                       f"{' (dirty)' if setup.get('git_dirty') else ''}"),
            ("driver", str(setup.get("driver", "?"))),
            ("shards", str(setup.get("shards", "?"))),
            ("quick", str(setup.get("quick", "?"))),
            ("CPU", str(_get(setup, "machine", "cpu_model") or "?")),
        ]
        parts.append(_html_table(["", ""], [[k, v] for k, v in facts]))
        parts.append(_html_table(["scenario", "measured", "target", "verdict"],
                                 summary_rows(latest)))
        ratios = ratio_rows(latest)
        if ratios:
            parts.append("<h3>Scenario 6: variants against the base, same run</h3>")
            parts.append(_html_table(["variant", "metric", "base", "variant", "variant/base"],
                                     ratios))
        parts.append(f'<p class="note">Details: <a href="runs/{html.escape(latest["label"])}/'
                     'summary.md">summary.md</a> and raw/ of that run.</p>')
        parts.append("<h2>All runs</h2>")
        parts.append(_html_table(
            ["run", "commit", "driver", "quick", "2 max/s", "1 p99", "3 B/conn", "5 p99"],
            [[r["label"], str(r["setup"].get("git_commit", "?"))[:10],
              str(r["setup"].get("driver", "?")), str(r["setup"].get("quick", "?")),
              _rate(r["base"].get("s2_best_per_s")), _ms(r["base"].get("s1_p99_us")),
              _int(r["base"].get("s3_bytes_per_conn")), _ms(r["base"].get("s5_p99_us"))]
             for r in runs]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_dashboard(runs_dir: Path, out: Path) -> None:
    text = build_html(runs_dir)
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=here / "runs", help="runs folder")
    parser.add_argument("--out", type=Path, default=here / "dashboard.html", help="output")
    args = parser.parse_args(argv)
    write_dashboard(args.runs, args.out)
    print(f"wrote {args.out} ({len(find_runs(args.runs))} run(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
