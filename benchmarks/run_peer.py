"""Run the peer tool (pastiche 1.6.0, PyTorch) on benchmark pairs and record its wall times.

pastiche lives in its own throwaway venv (it pulls torch); build it with
``benchmarks/peer_venv.sh``.  Results go to ``benchmarks/peer/peer_results.json`` and the peer's
images to ``benchmarks/peer/``, so the engine comparison (``compare.py``) can be rerun without
paying the peer's ten minutes per pair again.

Wall times only compare on the same CPU, so each CPU (``machine.cpu_id()``) gets its own peer
times in ``benchmarks/peer/peer_timing.json``.  ``--estimate 20,60`` times two short runs per pair
and size and extrapolates linearly to ``--steps`` (pastiche's cost per step is constant: one
forward and backward pass), which costs a fifth of a full run.

    python benchmarks/run_peer.py --size 512 --size 256              # images + times (new pairs)
    python benchmarks/run_peer.py --estimate 20,60 --size 256         # this CPU's peer times, quickly
    python benchmarks/run_peer.py --measure --size 256 --pair X        # ... or by a full run (no image kept)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pairs import PAIRS  # noqa: E402

ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from machine import cpu_id  # noqa: E402

PEER_DIR = HERE / "peer"
RESULTS = PEER_DIR / "peer_results.json"
TIMING = PEER_DIR / "peer_timing.json"
SCRATCH = Path(os.environ.get("TMPDIR", "/tmp"))  # images of runs that are only timed
VENV = os.environ.get("PEER_VENV", "/tmp/pastiche-venv")
STEPS = 300  # the peer's run that speedups are against


def record_timing(key: str, entry: dict) -> None:
    """Store one of this CPU's peer timings (``name@size``) in peer_timing.json."""
    timing = json.loads(TIMING.read_text()) if TIMING.exists() else {}
    timing.setdefault(cpu_id(), {})[key] = entry
    TIMING.write_text(json.dumps(timing, indent=2, sort_keys=True) + "\n")


def peer_cmd(exe: Path, content: Path, style: Path, out: Path, size: int, steps: int) -> list[str]:
    """The peer's command line: its defaults, seeded, on the CPU."""
    return [str(exe), "--content", str(content), "--styles", str(style), "--output", str(out),
            "--size", str(size), "--num-steps", str(steps), "--seed", "0", "--device", "cpu"]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def estimate(exe: Path, content: Path, style: Path, size: int, steps: int, short: tuple[int, int]) -> dict:
    """This CPU's wall time of a ``steps``-step peer run, extrapolated from two shorter runs."""
    a, b = short
    walls = []
    for n in (a, b):
        walls.append(timed(peer_cmd(exe, content, style, SCRATCH / f"peer_estimate_{n}.png", size, n)))
    per_step = (walls[1] - walls[0]) / (b - a)
    fixed = walls[0] - a * per_step
    return {"wall_s": round(fixed + steps * per_step, 1), "seconds_per_step": round(per_step, 4),
            "fixed_s": round(fixed, 1), "how": f"extrapolated from {a}- and {b}-step runs ({walls[0]:.1f} s, "
            f"{walls[1]:.1f} s)", "steps": steps, "date": time.strftime("%Y-%m-%d")}


def measure(exe: Path, content: Path, style: Path, size: int, steps: int) -> dict:
    """This CPU's wall time of a full ``steps``-step peer run (its image is thrown away)."""
    return measured(timed(peer_cmd(exe, content, style, SCRATCH / "peer_measure.png", size, steps)), steps)


def measured(wall: float, steps: int) -> dict:
    """A peer_timing.json entry for a timed full run."""
    return {"wall_s": round(wall, 1), "how": "measured", "steps": steps, "date": time.strftime("%Y-%m-%d")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", default=VENV)
    ap.add_argument("--size", type=int, action="append", help="longest side (repeatable)")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--pair", action="append", help="pair name(s) from pairs.py (default: all)")
    ap.add_argument("--force", action="store_true", help="rerun pairs already recorded")
    ap.add_argument("--images-only", action="store_true",
                    help="regenerate recorded pairs whose image is missing, keeping the recorded wall time "
                         "(measured on a quiet machine); the new time goes to wall_s_rerun")
    ap.add_argument("--estimate", help="A,B: only time A- and B-step runs and extrapolate to --steps "
                                       "(this CPU's entry in peer_timing.json)")
    ap.add_argument("--measure", action="store_true",
                    help="time full --steps runs for this CPU's entry in peer_timing.json (slower than "
                         "--estimate, which came out ~7 %% low against a full run)")
    args = ap.parse_args()
    sizes = args.size or [512, 256]
    PEER_DIR.mkdir(exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    exe = Path(args.venv) / "bin" / "pastiche"
    if args.estimate or args.measure:
        short = tuple(int(v) for v in args.estimate.split(",")) if args.estimate else None
        for name, (content, style) in PAIRS.items():
            for size in sizes:
                if args.pair and name not in args.pair:
                    continue
                key = f"{name}@{size}"
                entry = (measure(exe, content, style, size, args.steps) if args.measure
                         else estimate(exe, content, style, size, args.steps, short))
                record_timing(key, entry)
                print(f"{key}: {entry['wall_s']:.1f} s ({entry['how']})", flush=True)
        return 0
    for name, (content, style) in PAIRS.items():
        if args.pair and name not in args.pair:
            continue
        for size in sizes:
            key = f"{name}@{size}"
            out = PEER_DIR / f"{name}_{size}.png"
            rerun_image = args.images_only and key in results and not out.exists()
            if key in results and not args.force and not rerun_image:
                continue
            cmd = peer_cmd(exe, content, style, out, size, args.steps)
            wall = timed(cmd)
            if rerun_image:
                results[key]["wall_s_rerun"] = round(wall, 1)
            else:
                results[key] = {"pair": name, "size": size, "steps": args.steps, "wall_s": round(wall, 1),
                                "image": out.name, "command": " ".join(cmd[1:])}
                record_timing(key, measured(wall, args.steps))
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
            print(f"{key}: {wall:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
