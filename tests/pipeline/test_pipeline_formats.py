"""Output formats in the pipeline: provenance in every format, resume within a format, another format redone."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from pipeline_helpers import FAST, copy_images, read_jsonl, write_csv

from nst_core.images import read_text
from pipeline.run import counters, run

pytestmark = pytest.mark.slow


def test_formats_carry_provenance_resume_and_a_new_format_is_a_new_output(tmp_path, image_dir):
    root = copy_images(image_dir, tmp_path / "cat")
    write_csv(root / "m.csv", ["id,content,style", "a,content/c1.jpg,style/s1.png", "b,content/c2.png,style/s2.jpg"])
    out = tmp_path / "out"
    argv = ["--manifest", str(root / "m.csv"), "--output", str(out), *FAST, "--progress_every", "0"]
    seen = {}
    for fmt, ext, pil in (("jpeg", "jpg", "JPEG"), ("webp", "webp", "WEBP"), ("png", "png", "PNG")):
        c = counters(run([*argv, "--image_format", fmt, "--image_quality", "80"]))
        assert (c["pairs_stylized"], c["pairs_skipped"]) == (2, 0), fmt  # another format: made, not skipped
        for rec in read_jsonl(out / "metrics.jsonl"):
            assert rec["image"] == f"images/{rec['id']}.{ext}"
            data = (out / rec["image"]).read_bytes()
            assert Image.open(out / rec["image"]).format == pil
            text = read_text(data)
            assert json.loads(text["nst:options"])["steps"] == 2 and text["nst:content"] == rec["content"]
        seen[fmt] = {p.name: p.read_bytes() for p in (out / "images").glob(f"*.{ext}")}
        again = counters(run([*argv, "--image_format", fmt, "--image_quality", "80"]))
        assert (again["pairs_stylized"], again["pairs_skipped"]) == (0, 2), fmt  # same format: resumed
        assert {p.name: p.read_bytes() for p in (out / "images").glob(f"*.{ext}")} == seen[fmt]
    # the earlier formats' files are no row's output now: listed as orphans, not mistaken for the png outputs
    orphans = (out / "orphans.txt").read_text().split()
    assert sorted(orphans) == ["images/a.jpg", "images/a.webp", "images/b.jpg", "images/b.webp"]
    assert json.loads((out / "summary.json").read_text())["orphans"] == 4
    c = counters(run([*argv, "--image_format", "jpeg", "--image_quality", "60"]))  # another quality: redone too
    assert c["pairs_stylized"] == 2


def test_an_rgba_result_for_jpeg_is_composited_onto_the_background_and_says_so(tmp_path):
    import numpy as np

    from nst_core import StyleOptions
    from nst_core.stylizer import Result
    from pipeline.manifest import Pair
    from pipeline.transforms import PairDoFn

    opts = StyleOptions(image_format="jpeg", background="#102030")
    pair = Pair(id="a", line=2, content="c.png", styles=("s.png",), options=opts, fingerprint="f")
    image = np.zeros((32, 32, 4), np.uint8)
    image[12:20, 12:20] = (200, 100, 50, 255)  # an opaque square on a transparent background
    rgba = Result(image=image, losses={}, steps=0, seconds=0.0, trace=[], options=opts, precision="float32")
    rec = PairDoFn(str(tmp_path), opts).attempt(pair, lambda inputs: rgba)
    assert rec["status"] == "stylized", rec
    # the transparent corner is the background colour (its mean: JPEG rings around dark colours)
    got = np.asarray(Image.open(tmp_path / "images" / "a.jpg")).astype(int)
    assert got.shape == (32, 32, 3) and np.abs(got[:4, :4].mean(axis=(0, 1)) - (16, 32, 48)).max() <= 6
    metrics = json.loads((tmp_path / "metrics" / "a.json").read_text())
    assert metrics["alpha"] == "composited onto #102030"
