"""A cut-out product photo stylized with its alpha, against the naive way (stylize the stored RGB, put the
alpha back after): the style distance of the opaque region alone, and the edge band's luminance.

The naive run's Grams include the flat background (black under the transparency here), so its object
matches the style less; and VGG19 sees the black contour, so the band along the edge darkens.  Images
go to benchmarks/out/masks/ to look at.

    python benchmarks/cutout_quality.py                     # samples/product/coffee_cutout.png at 384 px
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_id  # noqa: E402
from nst_core import StyleOptions, Stylizer, images, losses, masks, tiling  # noqa: E402
from nst_core.tfimport import tf  # noqa: E402

OUT = HERE / "out" / "masks"


def region_style(engine: Stylizer, opts: StyleOptions, rgba: np.ndarray, style: np.ndarray) -> float:
    """Mean style-layer distance of the image's opaque part (alpha-weighted Grams) to the style's Grams."""
    img = rgba.astype(np.float32)
    levels = masks.layer_weights(img[..., 3] / 255.0, 4)
    acts = engine.features("max", "float32")(tf.constant(img[None, ..., :3]), opts.style_layers)
    targets = engine.style_targets(opts, "float32", style, img.shape[:2])
    return float(np.mean([float(losses.style_layer_loss(
        losses.masked_gram(acts[n], tf.constant(levels[tiling.level(n)][None, ..., None])), targets[i]))
        for i, n in enumerate(opts.style_layers)]))


def edge_band(rgba: np.ndarray, alpha: np.ndarray) -> float:
    """Mean luminance of opaque pixels within 3 px of a transparent one, minus that of those 6-12 px in."""
    def grow(b: np.ndarray, n: int) -> np.ndarray:
        for _ in range(n):
            b = b | np.roll(b, 1, 0) | np.roll(b, -1, 0) | np.roll(b, 1, 1) | np.roll(b, -1, 1)
        return b
    clear, opaque = alpha == 0, alpha == 255
    y = rgba[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114]
    band, inner = grow(clear, 3) & opaque, grow(clear, 12) & ~grow(clear, 6) & opaque
    return float(y[band].mean() - y[inner].mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--content", default=str(ROOT / "samples" / "product" / "coffee_cutout.png"))
    ap.add_argument("--style", default=str(ROOT / "samples" / "style" / "starry_night.jpg"))
    ap.add_argument("--size", type=int, default=384)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    opts = StyleOptions(size=args.size)
    engine = Stylizer(opts)
    style = images.load_image(args.style)
    src = np.asarray(Image.open(args.content).convert("RGBA"))
    t = time.perf_counter()
    ours = engine.stylize(args.content, args.style, opts).image
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    flat = engine.stylize(src[..., :3].copy(), args.style, opts).image
    t_naive = time.perf_counter() - t
    alpha = ours[..., 3]
    naive = np.dstack([flat, alpha])
    given = np.dstack([images.to_uint8(images.resize(src[..., :3].astype(np.float32), alpha.shape)), alpha])
    print(f"cpu: {cpu_id()}; {Path(args.content).name} x {Path(args.style).name} at {args.size} px")
    print("               region style  edge band - inside (luminance)  seconds")
    for name, img, sec in (("content", given, None), ("with alpha", ours, t_ours), ("naive", naive, t_naive)):
        style_d = region_style(engine, opts, img, style) if sec is not None else float("nan")
        print(f"{name:12s} {style_d:13.4f}  {edge_band(img, alpha):+28.1f}  {'-' if sec is None else f'{sec:.1f}'}")
        Image.fromarray(img, "RGBA").save(OUT / f"cutout_{name.replace(' ', '_')}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
