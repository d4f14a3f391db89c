"""What a mask or an alpha channel costs: the same pair plain, masked and as a cut-out, in one run.

The runs alternate (plain, masked, cut-out, plain, ...) so all three share the machine's load; the
median of --repeats warm runs each, and the median ratio to plain per round, are printed with the CPU.

    python benchmarks/masks.py                      # 256 px, 3 repeats
    python benchmarks/masks.py --size 512 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_id  # noqa: E402
from nst_core import StyleOptions, Stylizer, images  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--content", default=str(ROOT / "samples" / "content" / "coffee.jpg"))
    ap.add_argument("--style", default=str(ROOT / "samples" / "style" / "starry_night.jpg"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    content = images.load_image(args.content)
    h, w = content.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    mask = (np.hypot((yy - h / 2) / (0.4 * h), (xx - w / 2) / (0.4 * w)) < 1).astype(np.float32)
    cutout = np.dstack([images.to_uint8(content), images.to_uint8(mask * 255)])
    opts = StyleOptions(size=args.size)
    engine = Stylizer(opts)
    runs = {"plain": lambda: engine.stylize(content, args.style, opts),
            "masked": lambda: engine.stylize(content, args.style, opts, mask=mask),
            "cut-out": lambda: engine.stylize(cutout, args.style, opts)}
    for run in runs.values():  # warm: tracing, style targets
        run()
    seconds: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - t)
    print(f"cpu: {cpu_id()}; {Path(args.content).name} at {args.size} px, median of {args.repeats}; ratio: the "
          "median of each round's ratio to that round's plain run (rounds share the load)")
    for name, s in seconds.items():
        ratio = statistics.median(v / p for v, p in zip(s, seconds["plain"]))
        print(f"{name:8s} {statistics.median(s):7.2f} s  x{ratio:.3f}  ({', '.join(f'{v:.2f}' for v in s)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
