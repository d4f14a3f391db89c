"""Bad and awkward image files through the whole pipeline (in-process DirectRunner).

Each unusable file (corrupt, truncated, zero-byte, not an image, decompression bomb, missing) fails only
its own row, in errors.jsonl, with a reason naming the file and what is wrong, and leaves no image or
metrics behind; each awkward but valid kind (animated GIF, RGBA, greyscale, CMYK, 16-bit PNG, EXIF-rotated
JPEG, palette) is stylized, as content and as style.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from images_factory import BAD_REASONS, write_bad_files, write_odd_files
from PIL import Image
from reliability_helpers import FAST, make_image, read_jsonl, temp_files, write_csv

from pipeline.run import counters, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("badimg")
    bad = write_bad_files(root / "bad")
    odd = write_odd_files(root / "odd")
    make_image(root / "good" / "c.png", 1)
    make_image(root / "good" / "s.png", 2)
    lines = ["id,content,style"]
    expect_error: dict[str, tuple[Path, str]] = {}
    for kind in sorted(BAD_REASONS):
        lines.append(f"bad-content-{kind},bad/{bad[kind].name},good/s.png")
        expect_error[f"bad-content-{kind}"] = (bad[kind], BAD_REASONS[kind])
        lines.append(f"bad-style-{kind},good/c.png,bad/{bad[kind].name}")
        expect_error[f"bad-style-{kind}"] = (bad[kind], BAD_REASONS[kind])
    for kind, path in sorted(odd.items()):
        lines.append(f"odd-content-{kind},odd/{path.name},good/s.png")
        lines.append(f"odd-style-{kind},good/c.png,odd/{path.name}")
    lines.append("good,good/c.png,good/s.png")
    write_csv(root / "m.csv", lines)
    out = root / "out"
    result = run(["--manifest", str(root / "m.csv"), "--output", str(out), *FAST])
    return out, counters(result), expect_error, sorted(odd), len(lines) - 1


def test_each_bad_file_fails_only_its_row_naming_the_file(bad_run):
    out, c, expect_error, _, rows = bad_run
    errors = {e["id"]: e for e in read_jsonl(out / "errors.jsonl")}
    assert set(errors) == set(expect_error)
    for pair_id, (path, reason) in expect_error.items():
        msg = errors[pair_id]["reason"]
        assert str(path) in msg and reason in msg, (pair_id, msg)
        assert errors[pair_id]["stage"] == "stylize"
        assert not (out / "images" / f"{pair_id}.png").exists()
        assert not (out / "metrics" / f"{pair_id}.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["balanced"] and summary["rows"] == rows
    assert (summary["errors"], summary["stylized"]) == (len(expect_error), rows - len(expect_error))
    assert (c["pairs_failed"], c["model_loads"]) == (len(expect_error), 1)
    assert not temp_files(out)


def test_awkward_but_valid_images_are_stylized(bad_run):
    out, _, _, odd_kinds, _ = bad_run
    done = {r["id"]: r for r in read_jsonl(out / "metrics.jsonl")}
    want = {f"odd-{role}-{k}" for k in odd_kinds for role in ("content", "style")} | {"good"}
    assert set(done) == want and all(r["status"] == "stylized" for r in done.values())
    for pair_id in want:
        with Image.open(out / "images" / f"{pair_id}.png") as img:
            assert img.mode == ("RGBA" if pair_id == "odd-content-rgba" else "RGB"), pair_id  # alpha kept
            arr = np.asarray(img)
        h, w = arr.shape[:2]
        if pair_id == "odd-content-exif":
            assert (h, w) == (32, 24)  # EXIF orientation applied: the 40x30 landscape is stored portrait
        elif pair_id.startswith("odd-content-"):
            assert (h, w) == (24, 32), pair_id
        assert arr.std() > 0, pair_id  # a picture, not a blank
        metrics = json.loads((out / "metrics" / f"{pair_id}.json").read_text())
        assert all(np.isfinite(v) for v in metrics["losses"].values())
    sheets = "".join(p.read_text() for p in (out / "sheets").glob("*.html"))
    assert all(f"id='{i}'" in sheets for i in want)
