"""Prints a fingerprint of one default stylisation (image sha1, total loss, seconds), to compare two trees.

    PYTHONPATH=<tree> python benchmarks/same_image.py --size 128
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--content", default=str(SAMPLES / "content" / "chelsea.jpg"))
    p.add_argument("--style", default=str(SAMPLES / "style" / "starry_night.jpg"))
    args = p.parse_args()
    from nst_core import StyleOptions, Stylizer

    t0 = time.perf_counter()
    r = Stylizer().stylize(args.content, args.style, StyleOptions(size=args.size))
    print(f"sha1 {hashlib.sha1(r.image.tobytes()).hexdigest()[:16]} total {r.losses['total']:.7f} "
          f"seconds {time.perf_counter() - t0:.1f}")


if __name__ == "__main__":
    main()
