"""Run the peer tool (pastiche 1.6.0, PyTorch) on benchmark pairs and record its wall times.

pastiche lives in its own throwaway venv (it pulls torch); build it with
``benchmarks/peer_venv.sh``.  Results go to ``benchmarks/peer/peer_results.json`` and the peer's
images to ``benchmarks/peer/``, so the engine comparison (``compare.py``) can be rerun without
paying the peer's ten minutes per pair again.

    python benchmarks/run_peer.py --size 512 --size 256
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

PEER_DIR = HERE / "peer"
RESULTS = PEER_DIR / "peer_results.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", default=os.environ.get("PEER_VENV", "/tmp/pastiche-venv"))
    ap.add_argument("--size", type=int, action="append", help="longest side (repeatable)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--pair", action="append", help="pair name(s) from pairs.py (default: all)")
    ap.add_argument("--force", action="store_true", help="rerun pairs already recorded")
    ap.add_argument("--images-only", action="store_true",
                    help="regenerate recorded pairs whose image is missing, keeping the recorded wall time "
                         "(measured on a quiet machine); the new time goes to wall_s_rerun")
    args = ap.parse_args()
    sizes = args.size or [512, 256]
    PEER_DIR.mkdir(exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    exe = Path(args.venv) / "bin" / "pastiche"
    for name, (content, style) in PAIRS.items():
        if args.pair and name not in args.pair:
            continue
        for size in sizes:
            key = f"{name}@{size}"
            out = PEER_DIR / f"{name}_{size}.png"
            rerun_image = args.images_only and key in results and not out.exists()
            if key in results and not args.force and not rerun_image:
                continue
            cmd = [str(exe), "--content", str(content), "--styles", str(style), "--output", str(out),
                   "--size", str(size), "--num-steps", str(args.steps), "--seed", "0", "--device", "cpu"]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            if rerun_image:
                results[key]["wall_s_rerun"] = round(wall, 1)
            else:
                results[key] = {"pair": name, "size": size, "steps": args.steps, "wall_s": round(wall, 1),
                                "image": out.name, "command": " ".join(cmd[1:])}
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
            print(f"{key}: {wall:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
