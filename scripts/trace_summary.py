#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A text summary of a `rabbit run|bench --trace FILE.json` timeline, beside Perfetto's view.

    python3 scripts/trace_summary.py FILE.json

Per track: the spans, their total time and the share of the run's wall time it covers; per
pass on the tokens track: the prompt's and the median decode step's time; per unit on the
compute track: the median time of a decode step's span of it. Standard library only.
"""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    with open(path) as f:
        doc = json.load(f)
    names, spans = {}, defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "M" and e["name"] == "thread_name":
            names[e["tid"]] = e["args"]["name"]
        elif e["ph"] == "X":
            spans[e["tid"]].append(e)
    if not spans:
        sys.exit(f"{path}: no spans")
    t0 = min(e["ts"] for v in spans.values() for e in v)
    t1 = max(e["ts"] + e["dur"] for v in spans.values() for e in v)
    wall = max(t1 - t0, 1e-9)
    print(f"{path}: {wall / 1e3:.1f} ms from the first span to the end of the last")
    for tid in sorted(spans):
        busy = sum(e["dur"] for e in spans[tid])
        print(f"  {names.get(tid, tid):28} {len(spans[tid]):6} spans, {busy / 1e3:10.1f} ms busy ({100 * busy / wall:5.1f} %)")
    tokens = spans.get(5, [])
    prompts = [e for e in tokens if e["name"].startswith("prompt")]
    steps = [e for e in tokens if e["name"].startswith("token")]
    for p in prompts:
        print(f"  {p['name']}: {p['dur'] / 1e3:.1f} ms")
    if steps:
        print(f"  decode: {len(steps)} steps, median {statistics.median(e['dur'] for e in steps) / 1e3:.2f} ms")
        # Each unit's median span within the decode steps.
        per_unit = defaultdict(list)
        for c in spans.get(4, []):
            for s in steps:
                if s["ts"] - 1 <= c["ts"] and c["ts"] + c["dur"] <= s["ts"] + s["dur"] + 1:
                    per_unit[c["name"]].append(c["dur"])
                    break
        if per_unit:
            print("  compute per decode step, median:")
            for name, durs in per_unit.items():
                print(f"    {name:24} {statistics.median(durs) / 1e3:8.3f} ms")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
