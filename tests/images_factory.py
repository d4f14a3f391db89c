"""Builds the awkward image files the loader and the CLI must cope with."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CONTENT = SAMPLES / "content" / "chelsea.jpg"
STYLE = SAMPLES / "style" / "starry_night.jpg"


def gradient(w: int = 40, h: int = 30) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), np.full_like(x, 90)], 2).astype(np.uint8)


def write_bad_files(d: Path) -> dict[str, Path]:
    """name -> path, for each kind of unusable input, with the reason the error must mention."""
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    files["zero"] = d / "zero.png"
    files["zero"].write_bytes(b"")
    files["text"] = d / "notes.png"
    files["text"].write_text("this is not an image\n")
    good = io.BytesIO()
    Image.fromarray(gradient(64, 64)).save(good, "PNG")
    files["truncated"] = d / "truncated.png"
    files["truncated"].write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    corrupt = bytearray(good.getvalue())
    corrupt[60:200] = bytes(140)
    files["corrupt"] = d / "corrupt.png"
    files["corrupt"].write_bytes(bytes(corrupt))
    # A decompression bomb: a tiny PNG declaring 20000 x 20000 pixels.
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")
    files["bomb"] = d / "bomb.png"
    files["bomb"].write_bytes(bomb.getvalue())
    files["missing"] = d / "does-not-exist.jpg"
    return files


BAD_REASONS = {
    "zero": "empty file",
    "text": "not an image",
    "truncated": "truncated",
    "corrupt": "corrupt",
    "bomb": "decompression bomb",
    "missing": "not found",
}


def write_odd_files(d: Path) -> dict[str, Path]:
    """Valid but awkward images: each must load as the right RGB picture."""
    d.mkdir(parents=True, exist_ok=True)
    g = gradient()
    files = {}
    files["rgba"] = d / "rgba.png"
    rgba = np.dstack([g, np.full(g.shape[:2], 255, np.uint8)])
    rgba[:5, :5, 3] = 0  # transparent corner -> white
    Image.fromarray(rgba, "RGBA").save(files["rgba"])
    files["grey"] = d / "grey.png"
    Image.fromarray(g[..., 0], "L").save(files["grey"])
    files["cmyk"] = d / "cmyk.jpg"
    Image.fromarray(g).convert("CMYK").save(files["cmyk"], quality=95)
    files["png16"] = d / "sixteen.png"
    Image.fromarray(g[..., 0].astype(np.uint16) * 257).save(files["png16"])
    files["exif"] = d / "rotated.jpg"
    img = Image.fromarray(g)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise on display
    img.save(files["exif"], quality=95, exif=exif)
    files["gif"] = d / "animated.gif"
    frames = [Image.fromarray(g), Image.fromarray(255 - g)]
    frames[0].save(files["gif"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["palette"] = d / "palette.png"
    Image.fromarray(g).convert("P").save(files["palette"])
    return files
