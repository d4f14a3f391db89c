"""Helpers for the reliability tests: tiny images, manifests, fast engine flags, file snapshots.

Named uniquely (no conftest.py here: a second conftest module would shadow tests/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# 32 px, 2 steps at the final scale and 1 at a 16 px coarse scale: a pair takes well under a second.
FAST = ["--size", "32", "--steps", "2", "--coarse_steps", "1",
        "--coarse_steps_power", "1", "--min_size", "16", "--thumbnail_size", "16"]


def make_image(path: Path, seed: int, size: tuple[int, int] = (32, 24), value: int | None = None) -> Path:
    """A small RGB picture: noisy gradient, or one flat colour when ``value`` is given."""
    w, h = size
    if value is not None:
        arr = np.full((h, w, 3), value, np.uint8)
    else:
        rng = np.random.default_rng(seed)
        base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
        arr = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path, format="PNG")
    return path


def write_csv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tree(root: Path) -> set[str]:
    """Every file and folder under ``root`` (hidden ones included), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name]
