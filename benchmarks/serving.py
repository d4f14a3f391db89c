"""One Stylizer serving many pairs in a row: seconds and RSS per pair, for a --kernels choice.

    PYTHONPATH=. .venv/bin/python benchmarks/serving.py --size 512 --pairs 12 --kernels auto
    PYTHONPATH=. .venv/bin/python benchmarks/serving.py --size 512 --pairs 12 --kernels argument --save /tmp/a

With ``--save DIR`` each image goes to DIR/<i>.npy, so two runs' pixels can be compared
(``--compare DIR_A DIR_B`` prints the largest difference of each pair).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from machine import cpu_id  # noqa: E402
from pairs import PAIRS  # noqa: E402
from soak import status_kb  # noqa: E402


def compare(a: Path, b: Path) -> int:
    for fa in sorted(a.glob("*.npy"), key=lambda p: int(p.stem)):
        x, y = np.load(fa).astype(int), np.load(b / fa.name).astype(int)
        print(f"{fa.stem}: max |difference| {np.abs(x - y).max()}, differing {100 * (x != y).mean():.3f} %")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--kernels", default="auto", choices=("auto", "constant", "argument"))
    ap.add_argument("--save", type=Path)
    ap.add_argument("--compare", nargs=2, type=Path)
    args = ap.parse_args()
    if args.compare:
        return compare(*args.compare)
    from nst_core import StyleOptions, Stylizer

    opts = StyleOptions(size=args.size, kernels=args.kernels)
    st = Stylizer(opts)
    names = list(PAIRS)
    total = 0.0
    print(cpu_id(), f"size {args.size}, kernels {args.kernels}")
    for i in range(args.pairs):
        name = names[i % len(names)]
        content, style = PAIRS[name]
        t = time.perf_counter()
        result = st.stylize(str(content), str(style), opts)
        seconds = time.perf_counter() - t
        total += seconds
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            np.save(args.save / f"{i}.npy", result.image)
        print(f"{i:3d} {name:20s} {seconds:6.2f} s  rss {status_kb(os.getpid())['VmRSS'] // 1024:5d} MB", flush=True)
    print(f"total {total:.1f} s for {args.pairs} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
