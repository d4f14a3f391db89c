"""report.html and its contact sheets in real headless Chromium: they load with no console errors, every
picture shows, and the links reach every sheet.  NST_SCREENSHOTS=<folder> keeps the screenshots to look at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser import CHROMIUM, visit
from PIL import Image
from pipeline_helpers import FAST, copy_images, read_jsonl, write_csv

from pipeline.run import main

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="apt-get install -y chromium")]


def test_report_and_sheets_in_a_real_browser(tmp_path, image_dir, capsys):
    root = copy_images(image_dir, tmp_path / "cat")
    alpha = np.zeros((32, 40, 4), np.uint8)
    alpha[..., 0], alpha[..., 3] = 200, np.linspace(0, 255, 40, dtype=np.uint8)[None, :]
    Image.fromarray(alpha, "RGBA").save(root / "content" / "see-through.png")
    rows = [f"p{i},content/{c},style/{s}" for i, (c, s) in enumerate(
        [(c, s) for c in ("c1.jpg", "c2.png", "see-through.png") for s in ("s1.png", "s2.jpg")])]
    rows += ["gone,content/nope.jpg,style/s1.png", "gone2,content/nope2.jpg,style/s2.jpg",
             "text,content/notes.txt,style/s1.png"]
    write_csv(root / "m.csv", ["id,content,style", *rows])
    out = tmp_path / "out"
    assert main(["--manifest", str(root / "m.csv"), "--output", str(out), *FAST, "--thumbnail_size", "64",
                 "--report_sheet_rows", "4", "--progress_every", "0"]) == 3
    capsys.readouterr()
    # a copy of OUT elsewhere (as downloaded from a bucket) must work the same
    copy = tmp_path / "downloaded"
    shutil.copytree(out, copy)
    keep = os.environ.get("NST_SCREENSHOTS")
    index = visit((copy / "report.html").as_uri())
    assert index.problems == [], index.problems
    assert index.images and all(w > 0 for w in index.images.values()), index.images
    sheets = sorted({link.split("#")[0] for link in index.links if "/sheets/" in link})
    assert len(sheets) == 3  # 9 rows, lines 2-10, 4 lines a sheet
    ids = set()
    for n, url in enumerate(sheets):
        page = visit(url)
        assert page.problems == [], (url, page.problems)
        assert all(w > 0 for w in page.images.values()), (url, page.images)
        ids |= {Path(link).name for link in page.links if "/images/" in link}
        if keep:
            Path(keep, f"sheet-{n + 1}.png").write_bytes(page.png)
    assert ids == {Path(r["image"]).name for r in read_jsonl(out / "metrics.jsonl")}
    if keep:
        Path(keep, "index.png").write_bytes(index.png)
    assert index.png[:8] == b"\x89PNG\r\n\x1a\n" and len(index.png) > 10_000
