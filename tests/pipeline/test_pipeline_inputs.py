"""Reruns judge what the input files hold, not only their paths: a photo or painting replaced at the
same path is redone, a file merely copied or touched over itself is still skipped."""

from __future__ import annotations

import json
import os

import pytest
from pipeline_helpers import FAST, copy_images, make_image, read_jsonl, write_csv

from pipeline import report, storage
from pipeline.run import counters, run

pytestmark = pytest.mark.slow


def statuses(out) -> dict[str, str]:
    return {r["id"]: r["status"] for r in read_jsonl(out / "metrics.jsonl")}


def test_replaced_inputs_are_redone_and_touched_ones_skipped(tmp_path, image_dir):
    root = copy_images(image_dir, tmp_path / "cat")
    write_csv(root / "m.csv", ["id,content,style", "a,content/c1.jpg,style/s1.png", "b,content/c2.png,style/s2.jpg"])
    out = tmp_path / "out"
    argv = ["--manifest", str(root / "m.csv"), "--output", str(out), *FAST]
    assert counters(run(argv))["pairs_stylized"] == 2
    recorded = json.loads((out / "metrics" / "a.json").read_text())["inputs"]
    assert set(recorded) == {str(root / "content" / "c1.jpg"), str(root / "style" / "s1.png")}
    assert all(len(r["sha256"]) == 64 and r["size"] > 0 for r in recorded.values())

    first_a = (out / "images" / "a.png").read_bytes()
    source_thumb = out / report.source_rel(str(root / "content" / "c1.jpg"))
    first_thumb = source_thumb.read_bytes()
    make_image(root / "content" / "c1.jpg", 99)  # same path, other pixels
    (root / "style" / "s2.jpg").write_bytes((root / "style" / "s2.jpg").read_bytes())  # same bytes, new mtime
    c = counters(run(argv))
    assert (c["pairs_stylized"], c["pairs_skipped"]) == (1, 1)
    assert statuses(out) == {"a": "stylized", "b": "skipped"}
    assert (out / "images" / "a.png").read_bytes() != first_a
    assert source_thumb.read_bytes() != first_thumb  # the report shows the new photo, not the old one

    make_image(root / "style" / "s2.jpg", 77, (36, 36))  # a new painting at the old path
    run(argv)
    assert statuses(out) == {"a": "skipped", "b": "stylized"}


def test_unchanged_judges_stamp_then_content(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    rec = {**storage.stamp(str(path)), "sha256": storage.sha256(b"abc")}
    assert storage.unchanged(str(path), rec)
    os.utime(path, ns=(1, 1))
    assert storage.unchanged(str(path), rec)  # touched only: the sha256 decides
    path.write_bytes(b"abd")
    assert not storage.unchanged(str(path), rec)
    path.unlink()
    assert not storage.unchanged(str(path), rec)
