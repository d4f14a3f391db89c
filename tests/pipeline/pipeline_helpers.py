"""Helpers for the pipeline tests: tiny images, manifests, fast engine flags (40 px, 1-2 steps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

FAST = ["--size", "40", "--steps", "2", "--coarse_steps", "1",
        "--coarse_steps_power", "1", "--min_size", "20", "--thumbnail_size", "32"]


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


def report_reach(out: Path) -> tuple[set[str], set[str], list[str]]:
    """Follow report.html's links to every contact sheet and, sheet to sheet, its previous/next links:
    (row anchors found on the sheets, sheets reached, image files the pages show that do not exist)."""
    import re
    from urllib.parse import unquote

    anchors: set[str] = set()
    seen: set[str] = set()
    broken: list[str] = []
    todo = [out / "report.html"]
    while todo:
        page = todo.pop().resolve()
        if str(page) in seen:
            continue
        seen.add(str(page))
        text = page.read_text(encoding="utf-8")
        broken += [src for src in re.findall(r'<img src="([^"]+)"', text)
                   if not (page.parent / unquote(html_unescape(src))).is_file()]
        if page.name != "report.html":
            anchors |= {html_unescape(a) for a in re.findall(r"<tr id='([^']+)'", text)}
        for href in re.findall(r"href='([^'#]+\.html)", text):
            todo.append(page.parent / html_unescape(href))
    return anchors, {s for s in seen if "/sheets/" in s}, broken


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)
