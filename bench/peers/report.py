"""Reads the JSON rows the peer scripts printed (one per line) and prints one table:
each workload's median rate per contender, courier's ratio to each peer, and the goal
issue 15 set for the ratio to the main peer. Writes the rows, with the goals and the
ratios, to the JSON path given.

A second table splits each contender's CPU time per operation (from /proc, in
microseconds): the calling thread (the event loop or the Python thread; not measured on
the JVM), the whole client process (courier's Rust workers included) and the rest of
the machine (the upstream or the broker, and noise). On 2 cores, a workload that keeps
both busy runs at most 2,000,000 / (process + rest) operations per second; the split
says where courier's time goes and what its ceiling is.

Usage: report.py ROWS.jsonl OUT.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

# (language, workload) -> (main peer, ratio courier must reach against it)
GOALS: dict[tuple[str, str], tuple[str, float]] = {
    ("python", "sync GET, c=1"): ("httpx", 3.0),
    ("python", "async GET, 64 tasks"): ("aiohttp", 2.0),
    ("python", "async confirmed publish, 256 in flight"): ("aio-pika", 3.0),
    ("node", "GET, c=1"): ("undici", 1.0),
    ("node", "GET, 64 concurrent"): ("undici Pool(64)", 1.2),
    ("node", "confirmed publish, 256 in flight"): ("amqplib ConfirmChannel", 1.2),
    ("kotlin", "GET, c=1"): ("OkHttp", 1.0),
    ("kotlin", "GET, 64 coroutines vs 64 threads"): ("OkHttp, 64 threads", 1.0),
    ("kotlin", "confirmed publish, 256 in flight"): ("Java client ConfirmChannel", 1.0),
}


def main() -> None:
    rows_path, out_path = sys.argv[1], sys.argv[2]
    rows: list[dict[str, Any]] = []
    with open(rows_path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    header = (
        f"{'language':<8} {'workload':<40} {'peer':<34} {'peer/s':>9} {'courier/s':>10} {'ratio':>6}  goal"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rates = row["per_sec"]
        ours = rates["courier"]
        goal = GOALS.get((row["language"], row["workload"]))
        row["ratios"] = {}
        if row["workload"].startswith("hand-off floor"):  # courier's own figures, no peer
            for who, figure in rates.items():
                print(f"{row['language']:<8} {row['workload']:<40} {who:<34} {'-':>9} {figure:>10,.0f}")
            continue
        for peer, theirs in rates.items():
            if peer == "courier":
                continue
            ratio = ours / theirs
            row["ratios"][peer] = ratio
            verdict = ""
            if goal and goal[0] == peer:
                row["goal"] = {"peer": peer, "ratio": goal[1], "met": ratio >= goal[1]}
                verdict = f">= {goal[1]:.1f}x {'met' if ratio >= goal[1] else 'NOT met'}"
            print(
                f"{row['language']:<8} {row['workload']:<40} {peer:<34} {theirs:>9,.0f} {ours:>10,.0f} "
                f"{ratio:>5.2f}x  {verdict}"
            )
    print_cpu(rows)
    with open(out_path, "w") as f:
        json.dump(rows, f, indent=2)
        f.write("\n")


def print_cpu(rows: list[dict[str, Any]]) -> None:
    """The CPU split per operation, for the rows that carry one."""
    header = (
        f"\n{'language':<8} {'workload':<40} {'contender':<34} "
        f"{'caller':>7} {'process':>8} {'rest':>7} {'total':>7}"
    )
    print(header + "\n" + "-" * (len(header) - 1) + "  (CPU microseconds per operation)")
    for row in rows:
        for who, cpu in row.get("cpu_us_per_op", {}).items():
            caller = f"{cpu['caller']:>7.1f}" if "caller" in cpu else f"{'-':>7}"
            print(
                f"{row['language']:<8} {row['workload']:<40} {who:<34} {caller} {cpu['process']:>8.1f} "
                f"{cpu['rest']:>7.1f} {cpu['process'] + cpu['rest']:>7.1f}"
            )


if __name__ == "__main__":
    main()
