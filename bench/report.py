#!/usr/bin/env python3
"""Turn criterion's estimates for the `hash` and `share` benches into markdown tables.

Reads target/criterion/<group>/<bench>/new/{estimates.json,benchmark.json} for the groups
`headers` and `nodes`, prints ns/item (mean, with the 95% confidence interval) and the ratios
against the baselines measured in the same run:

* `sha2-naive`     - sha2 0.11, Sha256::digest twice (SHA-NI at run time);
* `sha2soft-naive` - sha2 0.10 with force-soft (portable code).

Usage: python3 bench/report.py [TARGET_DIR]   (default: ./target). Standard library only.
"""

import json
import os
import sys

GROUPS = ["headers", "nodes", "share"]
# (group, candidate prefix, baseline, target ratio, label)
TARGETS = [
    ("headers", "best-", "sha2-naive", 1.35, "best header path vs sha2 naive"),
    ("headers", "midstate-best-", "sha2-naive", 1.35, "midstate header path vs sha2 naive"),
    ("nodes", "best-", "sha2-naive", 1.5, "best node path vs sha2 naive"),
    ("headers", "kernel-avx2", "sha2soft-naive", 3.0, "AVX2 headers vs sha2 force-soft"),
    ("headers", "kernel-avx512", "sha2soft-naive", 3.0, "AVX-512 headers vs sha2 force-soft"),
    ("nodes", "kernel-avx2", "sha2soft-naive", 3.0, "AVX2 nodes vs sha2 force-soft"),
    ("nodes", "kernel-avx512", "sha2soft-naive", 3.0, "AVX-512 nodes vs sha2 force-soft"),
    # ratio = hashing_only / full: the share of a full validation that is hashing.
    ("share", "full", "hashing_only", 0.8, "pure hashing / full share validation"),
]


def load(root, group):
    out = {}
    gdir = os.path.join(root, "criterion", group)
    if not os.path.isdir(gdir):
        return out
    for name in sorted(os.listdir(gdir)):
        new = os.path.join(gdir, name, "new")
        est_path = os.path.join(new, "estimates.json")
        meta_path = os.path.join(new, "benchmark.json")
        if not os.path.isfile(est_path):
            continue
        with open(est_path) as f:
            est = json.load(f)
        items = 1
        if os.path.isfile(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            tp = meta.get("throughput") or {}
            items = tp.get("Elements") or tp.get("Bytes") or 1
            name = meta.get("function_id") or name
        mean = est["mean"]
        out[name] = (
            mean["point_estimate"] / items,
            mean["confidence_interval"]["lower_bound"] / items,
            mean["confidence_interval"]["upper_bound"] / items,
        )
    return out


def ratio(results, base, name):
    if base not in results or name not in results:
        return None
    return results[base][0] / results[name][0]


def fmt_ratio(r):
    return "" if r is None else f"{r:.2f}x"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target"
    all_results = {}
    for group in GROUPS:
        res = load(root, group)
        all_results[group] = res
        if not res:
            print(f"(no results for group `{group}` under {root}/criterion)\n")
            continue
        print(f"### {group}\n")
        print("| benchmark | ns/item (mean) | 95% CI | vs sha2-naive | vs sha2soft-naive |")
        print("|---|---:|---:|---:|---:|")
        for name, (ns, lo, hi) in sorted(res.items(), key=lambda kv: -kv[1][0]):
            print(
                f"| {name} | {ns:.1f} | {lo:.1f}–{hi:.1f} | "
                f"{fmt_ratio(ratio(res, 'sha2-naive', name))} | "
                f"{fmt_ratio(ratio(res, 'sha2soft-naive', name))} |"
            )
        if group == "share" and "full" in res:
            print(f"\nFull share validation: {1e9 / res['full'][0]:,.0f} shares/s on one core.")
        print()
    print("### Targets\n")
    print("| target | candidate | ratio | goal | met |")
    print("|---|---|---:|---:|---|")
    for group, prefix, base, goal, label in TARGETS:
        res = all_results.get(group, {})
        cands = [n for n in res if n == prefix or n.startswith(prefix)]
        if not cands:
            print(f"| {label} | (not measured) | | {goal:.2f}x | n/a |")
            continue
        name = min(cands, key=lambda n: res[n][0])
        r = ratio(res, base, name)
        met = "yes" if r is not None and r >= goal else "NO"
        print(f"| {label} | {group}/{name} | {fmt_ratio(r)} | {goal:.2f}x | {met} |")


if __name__ == "__main__":
    main()
