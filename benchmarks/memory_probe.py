"""Peak RSS of one ``nst-stylize`` run against the planner's estimate, with few steps (memory, not looks).

The peak of a tiled scale is reached at its second step: the L-BFGS memory arrives full from the scale
before (carried curvature), so a run with 2 steps per scale peaks as a default run does.

    python benchmarks/memory_probe.py --pair astronaut-scream --size 4096
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from highres import OUT, run_child, stylize_cmd  # noqa: E402
from machine import cpu_id  # noqa: E402
from pairs import PAIRS  # noqa: E402

FEW_STEPS = ["coarse_steps=2", "steps=2", "detail_steps=2"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pair", default="astronaut-scream")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--set", action="append", default=[], help="engine option override key=value")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    content, style = PAIRS[args.pair]
    out = OUT / f"{args.pair}_{args.size}_probe.png"
    cmd = stylize_cmd(content, style, args.size, out, FEW_STEPS + args.set)
    wall, rss = run_child(cmd)
    trace = json.loads(out.with_suffix(".json").read_text())["trace"]
    planned = max(e.get("planned_mb", 0) for e in trace) / 1024
    row = {"pair": args.pair, "size": args.size, "hw": [trace[-1]["height"], trace[-1]["width"]],
           "tiles": max(e.get("tiles", 1) for e in trace), "rss_gib": round(rss, 2), "planned_gib": round(planned, 2),
           "planned_vs_measured": round(planned / rss - 1, 3), "wall_s": round(wall, 1), "cpu": cpu_id(),
           "command": " ".join(cmd[1:])}
    print(json.dumps(row, indent=1))
    (OUT / f"probe_{args.pair}_{args.size}.json").write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
