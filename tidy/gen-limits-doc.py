#!/usr/bin/env python3
"""Regenerates docs/limits.md from the doc comments in core/src/limits.rs and the files of
core/src/limits/ it re-exports (in name order, after limits.rs).

Run from the repository root: python3 tidy/gen-limits-doc.py
"""
import glob
import re

HEADER = """# Limits

Every bound in WarpPool is a named constant in `core/src/limits.rs` (admin authentication's in
`core/src/limits/auth.rs`, the API's in `core/src/limits/api.rs`, re-exported there), checked against the others at compile time
(`const _: () = assert!(...)`). This table repeats them with their reasons; the
tidy test `every_limit_is_documented` fails when a constant is missing here. Regenerate it with
`python3 tidy/gen-limits-doc.py`.

| limit | value | why |
|---|---|---|"""


def main():
    rows, doc = [], []
    files = ["core/src/limits.rs"] + sorted(glob.glob("core/src/limits/*.rs"))
    lines = [line for path in files for line in open(path, encoding="utf-8")]
    for line in lines:
        s = line.strip()
        if s.startswith("///"):
            doc.append(s[3:].strip())
        elif s.startswith("pub const"):
            m = re.match(r"pub const (\w+): [\w\d]+ = (.*);", s)
            text = " ".join(doc).replace("|", "\\|")
            rows.append(f"| `{m.group(1)}` | `{m.group(2)}` | {text} |")
            doc = []
        elif not s.startswith("//"):
            doc = []
    with open("docs/limits.md", "w", encoding="utf-8") as f:
        f.write(HEADER + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
