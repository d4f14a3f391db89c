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


def _records(mask_uri: str | None, cut_uri: str | None) -> tuple[list[dict], dict[str, str | None]]:
    rec = {"line": 2, "id": "shoe", "status": "stylized", "content": "c/shoe.jpg", "styles": ["s/a.jpg"],
           "mask": "m/shoe.png", "losses": {}, "image": "images/shoe.png", "metrics": "metrics/shoe.json",
           "thumb": cut_uri}
    return [rec], {"c/shoe.jpg": cut_uri, "s/a.jpg": cut_uri, "m/shoe.png": mask_uri}


def test_mask_and_alpha_show_in_chromium(tmp_path):
    m = np.zeros((80, 80), np.uint8)
    m[:, 40:] = 255
    mask_uri = report.thumbnail(m.repeat(3).reshape(80, 80, 3), 80)
    cut = np.zeros((80, 80, 4), np.uint8)
    cut[..., 2] = 255
    cut[20:60, 20:60, 3] = 255  # a blue square on transparency (black under it)
    cut_uri = report.thumbnail(cut, 80)
    done, sources = _records(mask_uri, cut_uri)
    page = tmp_path / "report.html"
    page.write_text(report.render(done, [], {"rows": 1, "stylized": 1}, sources, 80))
    assert ">mask</div>" in page.read_text()
    shot = screenshot(page, tmp_path / "shot.png")
    light_grey = (np.abs(shot - 204) <= 8).all(axis=2).sum()  # the checkerboard's dark squares
    blue = ((shot[..., 2] > 200) & (shot[..., 0] < 60) & (shot[..., 1] < 60)).sum()
    assert light_grey > 500 and blue > 1000  # the cut-out on a checkerboard (not on black)
    black = (shot.max(axis=2) < 30).sum()
    assert black > 1500  # the mask's black half (the page is otherwise white and grey text)
    no_mask = _records(None, cut_uri)
    no_mask[0][0]["mask"] = None
    page.write_text(report.render(no_mask[0], [], {"rows": 1}, no_mask[1], 80))
    assert (screenshot(page, tmp_path / "plain.png").max(axis=2) < 30).sum() < black // 2
