"""Bytes per image of the output formats: stylised PNGs re-encoded as JPEG and WebP at a few qualities.

    PYTHONPATH=. .venv/bin/python benchmarks/format_sizes.py benchmarks/out/pipeline/loop/*.png

Each input is decoded and encoded again with nst_core.images.encode (provenance text included), so the
figures are what --image_format would write for those pictures; the mean pixel error says what is lost.
"""

from __future__ import annotations

import io
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nst_core import images  # noqa: E402


def main(paths: list[str]) -> int:
    if not paths:
        raise SystemExit("give stylised PNG files")
    rows: dict[str, list[tuple[int, float]]] = {}
    for p in paths:
        data = Path(p).read_bytes()
        text = images.read_text(data)
        arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        for fmt, q in (("png", 90), ("jpeg", 90), ("jpeg", 80), ("webp", 90), ("webp", 80)):
            out = images.encode(arr, fmt, q, text)
            back = np.asarray(Image.open(io.BytesIO(out)).convert("RGB")).astype(float)
            rows.setdefault(f"{fmt} q{q}" if fmt != "png" else "png", []).append((len(out), np.abs(back - arr).mean()))
    h, w = arr.shape[:2]
    print(f"{len(paths)} images of {w}x{h} px")
    base = statistics.mean(n for n, _ in rows["png"])
    for name, vals in rows.items():
        size = statistics.mean(n for n, _ in vals)
        print(f"{name:<9} mean {size / 1024:8.1f} KB  {size / base:6.1%} of png  mean abs error "
              f"{statistics.mean(e for _, e in vals):.2f} levels")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
