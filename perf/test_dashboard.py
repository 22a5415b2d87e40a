#!/usr/bin/env python3
"""Tests of perf/dashboard.py: a dashboard from a temporary runs folder of contract reports.

    python3 perf/test_dashboard.py

Run by `cargo test -p warppool-tidy` (tidy/tests/perf_dashboard.rs). Standard library only.
The reports below are hand-written test inputs in the loadgen contract format, kept in a
temporary folder; they are never written under perf/runs/.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import tempfile
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # no perf/__pycache__ in the worktree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard  # noqa: E402


def hist(p50: int, p99: int, p999: int, mx: int, count: int = 1000) -> dict:
    return {"count": count, "p50": p50, "p90": p50, "p99": p99, "p999": p999, "max": mx}


def report(scenario: str, *, tls: bool = False, duration_s: float = 60.0, requested: int = 2000,
           established: int = 2000, failed: int = 0, accepted: int = 36000,
           rejected23: int = 0, submitted: int | None = None, timeouts: int = 0,
           submit: dict | None = None, tip: dict | None = None,
           time_to_all_ms: float | None = 812.5) -> dict:
    """One loadgen report in the contract format of issue 5."""
    if submitted is None:
        submitted = accepted + rejected23
    return {
        "tool": "warppool-loadgen", "version": "0.1.0", "scenario": scenario,
        "target": "127.0.0.1:3333", "tls": tls, "mode": "rate", "personality": "mix",
        "started_unix_ms": 1_764_000_000_000, "duration_s": duration_s,
        "connections": {"requested": requested, "established": established, "failed": failed,
                        "subscribed": established, "time_to_all_subscribed_ms": time_to_all_ms,
                        "disconnected_by_pool": 0},
        "shares": {"submitted": submitted, "accepted": accepted,
                   "rejected": {"21": 0, "22": 0, "23": rejected23, "other": 0},
                   "accepted_per_s": accepted / duration_s,
                   "submitted_per_s": submitted / duration_s, "timeouts": timeouts,
                   "pool_errors": {"valid_rejected": 0, "invalid_accepted": 0}},
        "latency_us": {"connect_to_first_notify": hist(900, 4000, 6000, 9000),
                       "submit_to_reply": submit, "new_tip_to_clean_jobs": tip},
        "errors": {"connect": failed, "io": 0, "protocol": 0},
        "personalities": {"bitaxe": established},
    }


def write(run: Path, name: str, doc: dict) -> None:
    (run / "raw").mkdir(parents=True, exist_ok=True)
    (run / "raw" / f"{name}.json").write_text(json.dumps(doc))


def make_run(runs: Path, label: str, *, p99_us: int, tip_p99_us: int, best_ok_rate: int,
             bytes_per_conn: float, storm_failed: int) -> Path:
    run = runs / label
    write(run, "base-1-steady", report("steady", accepted=36_000,
                                       submit=hist(310, p99_us, p99_us * 2, p99_us * 3)))
    write(run, "base-4-connect-storm", report("connect-storm", failed=storm_failed,
                                              established=2000 - storm_failed, accepted=0))
    write(run, "base-5-new-tip", report("new-tip", accepted=0,
                                        tip=hist(tip_p99_us // 3, tip_p99_us, tip_p99_us,
                                                 tip_p99_us + 500, 12_000)))
    write(run, "tls-5-new-tip", report("new-tip", tls=True, accepted=0,
                                       tip=hist(tip_p99_us, tip_p99_us * 2, tip_p99_us * 2,
                                                tip_p99_us * 3, 12_000)))
    steps = []
    for rate in (10_000, best_ok_rate, best_ok_rate * 2):
        passing = rate <= best_ok_rate
        n = rate * 10
        steps.append({"offered_per_s": rate, "miners": 200, "loadgen": report(
            "steady", duration_s=10.0, accepted=n // 2, rejected23=n // 2,
            submit=hist(400, 1200 if passing else 9000, 15000, 20000))})
    write(run, "base-2-max-rate", {"perf_run": 1, "scenario_id": "2", "variant": "base",
                                   "steps": steps})
    write(run, "base-3-idle", {
        "perf_run": 1, "scenario_id": "3", "variant": "base",
        "loadgen": report("idle", requested=19_900, established=19_900, accepted=0),
        "pool": {"bytes_per_connection": bytes_per_conn, "rss_kib": {"start": 9000}}})
    (run / "setup.json").write_text(json.dumps({
        "git_commit": f"commit-{label}", "git_dirty": False, "driver": "io_uring", "shards": 1,
        "quick": True, "machine": {"cpu_model": "Test CPU"}}))
    return run


class DashboardTest(unittest.TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="warppool-dashboard-test-")
        self.runs = Path(self._tmp.name) / "runs"
        make_run(self.runs, "2026-11-28T10-00-00Z", p99_us=3_200, tip_p99_us=41_000,
                 best_ok_rate=40_000, bytes_per_conn=5_120.0, storm_failed=3)
        make_run(self.runs, "2026-11-29T10-00-00Z", p99_us=2_100, tip_p99_us=23_000,
                 best_ok_rate=120_000, bytes_per_conn=3_000.0, storm_failed=0)
        # Not a run (no raw/): ignored.
        (self.runs / "notes").mkdir()

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def test_html_is_self_contained_and_plots_every_series(self) -> None:
        out = Path(self._tmp.name) / "dashboard.html"
        self.assertEqual(dashboard.main(["--runs", str(self.runs), "--out", str(out)]), 0)
        page = out.read_text()
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        # Self-contained: no external fetch of any kind, no script at all.
        for forbidden in ("http://", "https://", "<script", "<link", " src=", "@import", "url("):
            self.assertNotIn(forbidden, page)
        # One chart per plot, every series present.
        self.assertEqual(page.count("<svg"), 5)
        for series in ("max-rate", "accepted/s", "p50", "p99", "p99.9", "bytes/connection",
                       "max-rate tls"):
            self.assertIn(f'data-series="{series}"', page)
        # Both runs are on the x axis; the plotted points carry their values.
        self.assertIn("2026-11-28T10-00-00Z", page)
        self.assertIn("p99 2026-11-28T10-00-00Z: 3.2 ms", page)
        self.assertIn("p99 2026-11-29T10-00-00Z: 2.1 ms", page)
        self.assertIn("p99 2026-11-29T10-00-00Z: 23 ms", page)  # new tip
        self.assertIn("bytes/connection 2026-11-29T10-00-00Z: 3,000 bytes", page)
        self.assertIn("max-rate 2026-11-29T10-00-00Z: 120,000 shares/s", page)
        # Two runs: every series with data in both draws a line.
        self.assertGreaterEqual(page.count("<polyline"), 7)
        # The latest run's table.
        self.assertIn("Latest run: 2026-11-29T10-00-00Z", page)
        self.assertIn("commit-2026-11-29T10-00-00Z", page)
        self.assertNotIn('class="SHORT"', page.split("Latest run")[1].split("All runs")[0])

    def test_summary_rows_give_honest_verdicts(self) -> None:
        old = dashboard.run_metrics(self.runs / "2026-11-28T10-00-00Z")
        rows = {r[0]: r for r in dashboard.summary_rows(old)}
        self.assertEqual(rows["2 max share rate, p99 < 5 ms"][3], "SHORT")
        self.assertIn("40,000.0/s", rows["2 max share rate, p99 < 5 ms"][1])
        self.assertIn("p99 9.00 ms >= 5 ms", rows["2 max share rate, p99 < 5 ms"][1])
        self.assertEqual(rows["3 idle connections, RSS"][3], "SHORT")
        self.assertIn("5.00 KiB", rows["3 idle connections, RSS"][1])
        self.assertEqual(rows["4 connect storm (ramp 2 s)"][3], "SHORT")
        self.assertEqual(rows["5 new-tip fan-out"][3], "PASS")
        self.assertIn("p99 41.00 ms", rows["5 new-tip fan-out"][1])
        new = dashboard.run_metrics(self.runs / "2026-11-29T10-00-00Z")
        verdicts = [r[3] for r in dashboard.summary_rows(new)]
        self.assertEqual(verdicts, ["no target"] + ["PASS"] * 4)
        # Scenario 6: the TLS variant's new-tip p99 is twice the base.
        ratios = dashboard.ratio_rows(new)
        tip = [r for r in ratios if r[0] == "tls" and r[1] == "5 new-tip p99"]
        self.assertEqual(tip[0][4], "2.00")
        table = dashboard.markdown_table(["a", "b"], [["x|y", "z"]])
        self.assertIn("x\\|y", table)

    def test_step_verdicts(self) -> None:
        good = {"offered_per_s": 1000, "loadgen": report(
            "steady", duration_s=10.0, accepted=10_000, submit=hist(100, 900, 1000, 2000))}
        self.assertEqual(dashboard.step_verdict(good), (True, "ok"))
        slow = copy.deepcopy(good)
        slow["loadgen"]["latency_us"]["submit_to_reply"]["p99"] = 5000
        self.assertFalse(dashboard.step_verdict(slow)[0])
        lost = copy.deepcopy(good)
        lost["loadgen"]["shares"]["submitted"] = 10_050
        self.assertEqual(dashboard.step_verdict(lost), (False, "50 shares unanswered"))
        limited = copy.deepcopy(good)
        limited["offered_per_s"] = 2000
        self.assertTrue(re.match("loadgen-limited", dashboard.step_verdict(limited)[1]))
        self.assertFalse(dashboard.step_verdict({"offered_per_s": 1, "loadgen": None})[0])
        result = dashboard.max_rate_result([good, slow])
        self.assertEqual(result["best"]["answered_per_s"], 1000.0)
        self.assertEqual(result["stop"]["offered_per_s"], 1000)
        self.assertIsNone(dashboard.max_rate_result([slow, good])["stop"])

    def test_missing_measurements_are_not_verdicts(self) -> None:
        run = self.runs / "2026-11-30T10-00-00Z"
        # A bare idle report has no pool samples: RSS per connection is not measured.
        write(run, "idle", report("idle", requested=19_900, established=19_900, accepted=0))
        slow = {"offered_per_s": 5000, "loadgen": report(
            "steady", duration_s=10.0, accepted=50_000, submit=hist(100, 7000, 9000, 9000))}
        write(run, "base-2-max-rate", {"perf_run": 1, "scenario_id": "2", "steps": [slow]})
        rows = {r[0]: r for r in dashboard.summary_rows(dashboard.run_metrics(run))}
        self.assertEqual(rows["3 idle connections, RSS"][3], "NOT MEASURED")
        self.assertIn("19,900 connections", rows["3 idle connections, RSS"][1])
        self.assertEqual(rows["2 max share rate, p99 < 5 ms"][3], "SHORT")
        self.assertNotIn("5 new-tip fan-out", rows)

    def test_empty_runs_folder(self) -> None:
        page = dashboard.build_html(Path(self._tmp.name) / "missing")
        self.assertIn("No runs yet", page)
        self.assertNotIn("<svg", page)

    def test_unreadable_raw_file_is_skipped(self) -> None:
        run = self.runs / "2026-11-29T10-00-00Z"
        (run / "raw" / "broken.json").write_text("{not json")
        (run / "raw" / "other.json").write_text(json.dumps({"tool": "something-else"}))
        metrics = dashboard.run_metrics(run)
        self.assertEqual(metrics["base"]["s5_p99_us"], 23_000.0)


if __name__ == "__main__":
    unittest.main()
