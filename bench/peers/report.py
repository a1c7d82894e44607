"""Reads the JSON rows the peer scripts printed (one per line) and prints one table:
each workload's median rate per contender, courier's ratio to each peer, and the goal
issue 15 set for the ratio to the main peer. Writes the rows, with the goals and the
ratios, to the JSON path given.

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
        f"{'language':<8} {'workload':<40} {'peer':<24} {'peer/s':>9} {'courier/s':>10} {'ratio':>6}  goal"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rates = row["per_sec"]
        ours = rates["courier"]
        goal = GOALS.get((row["language"], row["workload"]))
        row["ratios"] = {}
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
                f"{row['language']:<8} {row['workload']:<40} {peer:<24} {theirs:>9,.0f} {ours:>10,.0f} "
                f"{ratio:>5.2f}x  {verdict}"
            )
    with open(out_path, "w") as f:
        json.dump(rows, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
