"""Helpers for the pipeline tests: tiny images, manifests, fast engine flags (40 px, 1-2 steps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

FAST = ["--size", "40", "--steps", "2", "--coarse_steps", "1", "--min_size", "20", "--thumbnail_size", "32"]


def make_image(path: Path, seed: int, size: tuple[int, int] = (40, 32)) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    arr = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path)
    return path


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def copy_images(src: Path, dst: Path) -> Path:
    """A private copy of the image tree next to a test's manifest (relative paths resolve against it)."""
    for p in src.rglob("*"):
        if p.is_file():
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(p.read_bytes())
    return dst
