"""report.html in a real headless Chromium: a pair's mask next to its content, transparency on a checkerboard."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium)")


def screenshot(page: Path, png: Path, size: str = "900,500") -> np.ndarray:
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", f"--screenshot={png}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def _sheet(out: Path, with_mask: bool) -> Path:
    """One contact sheet under ``out`` whose pair has a cut-out content, result and (optionally) a mask."""
    m = np.zeros((80, 80), np.uint8)
    m[:, 40:] = 255
    cut = np.zeros((80, 80, 4), np.uint8)
    cut[..., 2] = 255
    cut[20:60, 20:60, 3] = 255  # a blue square on transparency (black under it)
    files = {report.source_rel("c/shoe.png"): report.thumbnail(cut, 80),
             report.source_rel("s/a.jpg"): report.thumbnail(cut, 80),
             report.thumb_rel("shoe"): report.thumbnail(cut, 80),
             report.source_rel("m/shoe.png"): report.thumbnail(m.repeat(3).reshape(80, 80, 3), 80)}
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    rec = {"line": 2, "id": "shoe", "status": "stylized", "content": "c/shoe.png", "styles": ["s/a.jpg"],
           "mask": "m/shoe.png" if with_mask else None, "losses": {}, "image": "images/shoe.png",
           "metrics": "metrics/shoe.json", "thumb": report.thumb_rel("shoe")}
    page = out / report.sheet_rel(0)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(report.render_sheet([rec], 0, [0], "rows 1", 80, (2, 2)))
    return page


def test_mask_and_alpha_show_in_chromium(tmp_path):
    page = _sheet(tmp_path / "masked", with_mask=True)
    assert "mask m/shoe.png" in page.read_text()
    shot = screenshot(page, tmp_path / "shot.png")
    light_grey = (np.abs(shot - 204) <= 8).all(axis=2).sum()  # the checkerboard's dark squares
    blue = ((shot[..., 2] > 200) & (shot[..., 0] < 60) & (shot[..., 1] < 60)).sum()
    assert light_grey > 500 and blue > 1000  # the cut-out on a checkerboard (not on black)
    black = (shot.max(axis=2) < 30).sum()
    assert black > 1500  # the mask's black half (the page is otherwise white and grey text)
    plain = screenshot(_sheet(tmp_path / "plain", with_mask=False), tmp_path / "plain.png")
    assert (plain.max(axis=2) < 30).sum() < black // 2
