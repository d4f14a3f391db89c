"""Masks and alpha in the pipeline: the mask column, --masks in cross mode, row errors, resume and redo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pipeline_helpers import FAST, copy_images, read_jsonl, write_csv

from nst_core import StyleOptions
from pipeline import manifest, report
from pipeline.run import main, run

pytestmark = pytest.mark.slow


def _mask(path: Path, left: bool, size=(40, 32)) -> Path:
    m = np.zeros((size[1], size[0]), np.uint8)
    if left:
        m[:, : size[0] // 2] = 255
    else:
        m[:, size[0] // 2:] = 255
    Image.fromarray(m).save(path)
    return path


@pytest.fixture()
def catalog(tmp_path, image_dir) -> Path:
    root = copy_images(image_dir, tmp_path / "catalog")
    (root / "masks").mkdir()
    _mask(root / "masks" / "c1.png", left=True)
    Image.new("L", (40, 32), 0).save(root / "masks" / "black.png")
    rgba = np.asarray(Image.open(root / "content" / "c1.jpg").convert("RGBA")).copy()
    rgba[:8, :, 3] = 0
    rgba[8:12, :, 3] = 128
    Image.fromarray(rgba, "RGBA").save(root / "content" / "cut.png")
    write_csv(root / "manifest.csv", [
        "id,content,style,mask",
        "masked,content/c1.jpg,style/s1.png,masks/c1.png",
        "cutout,content/cut.png,style/s1.png,",
        "black,content/c1.jpg,style/s1.png,masks/black.png",
        "notimg,content/c1.jpg,style/s1.png,content/notes.txt",
        "nomask,content/c1.jpg,style/s1.png,masks/none.png",
    ])
    return root


def test_masks_in_a_run_a_rerun_skips_and_a_changed_mask_redoes_the_pair(catalog, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--manifest", str(catalog / "manifest.csv"), "--output", str(out), *FAST]
    assert main(args) == 3
    done = {r["id"]: r for r in read_jsonl(out / "metrics.jsonl")}
    errors = {r["id"]: r["reason"] for r in read_jsonl(out / "errors.jsonl")}
    assert set(done) == {"masked", "cutout"} and all(r["status"] == "stylized" for r in done.values())
    assert "all black" in errors["black"] and "not an image" in errors["notimg"]
    assert "not found" in errors["nomask"] and all("mask" in why for why in errors.values())
    assert all("\n" not in why for why in errors.values())

    mask_path = str(catalog / "masks" / "c1.png")
    assert done["masked"]["mask"] == mask_path
    metrics = json.loads((out / "metrics" / "masked.json").read_text())
    assert metrics["mask"] == mask_path and mask_path in metrics["inputs"] and metrics["alpha"] == "none"
    content = np.asarray(Image.open(catalog / "content" / "c1.jpg").convert("RGB")).astype(int)
    got = np.asarray(Image.open(out / "images" / "masked.png")).astype(int)
    assert (got[:, 20:] == content[:, 20:]).all()  # the black half: the content, exactly
    assert np.abs(got[:, :16] - content[:, :16]).mean() > 5
    cut = np.asarray(Image.open(out / "images" / "cutout.png"))
    src = np.asarray(Image.open(catalog / "content" / "cut.png"))
    assert cut.shape[2] == 4 and (cut[..., 3] == src[..., 3]).all()
    assert json.loads((out / "metrics" / "cutout.json").read_text())["alpha"] == "kept"
    sheet = (out / "sheets" / "0001.html").read_text()  # the contact sheet shows the mask beside its content
    assert sheet.count(f'alt="mask {mask_path}"') == 1
    mask_thumb = out / report.source_rel(str(mask_path))
    assert Image.open(mask_thumb).format == "WEBP"

    capsys.readouterr()
    assert main(args) == 3
    again = {r["id"]: r["status"] for r in read_jsonl(out / "metrics.jsonl")}
    assert again == {"masked": "skipped", "cutout": "skipped"}

    _mask(catalog / "masks" / "c1.png", left=False)  # same path, other pixels
    assert main(args) == 3
    third = {r["id"]: r["status"] for r in read_jsonl(out / "metrics.jsonl")}
    assert third == {"masked": "stylized", "cutout": "skipped"}
    got = np.asarray(Image.open(out / "images" / "masked.png")).astype(int)
    assert (got[:, :20] == content[:, :20]).all()  # now the left half is kept


def test_cross_mode_pairs_each_content_with_its_mask(catalog, tmp_path):
    out = tmp_path / "out"
    run(["--contents", str(catalog / "content" / "c?.*"), "--styles", str(catalog / "style" / "s1.png"),
         "--masks", str(catalog / "masks" / "{stem}.png"), "--output", str(out), *FAST])
    done = {r["content"]: r for r in read_jsonl(out / "metrics.jsonl")}
    errors = read_jsonl(out / "errors.jsonl")
    assert done[str(catalog / "content" / "c1.jpg")]["mask"] == str(catalog / "masks" / "c1.png")
    assert [e["reason"] for e in errors] == [f"mask {catalog / 'masks' / 'c2.png'}: file not found"]


def test_the_mask_is_part_of_the_fingerprint(tmp_path):
    base = StyleOptions()
    rows = [{"content": "c.jpg", "style": "s.jpg"}, {"content": "c.jpg", "style": "s.jpg", "mask": "m.png"},
            {"content": "c.jpg", "style": "s.jpg", "mask": "n.png"}]
    pairs = [manifest.build_pair(r, i + 2, str(tmp_path), base) for i, r in enumerate(rows)]
    assert len({p.fingerprint for p in pairs}) == 3
    assert pairs[0].mask is None and pairs[1].mask == str(tmp_path / "m.png")
    assert pairs[0].fingerprint == manifest.fingerprint(pairs[0].content, pairs[0].styles, base)
    assert manifest.mask_path("gs://b/m/{stem}.png", "gs://b/c/shoe.v2.jpg") == "gs://b/m/shoe.v2.png"
    assert manifest.mask_path("m/{name}", "c/a.jpg") == "m/a.jpg"
    bad = manifest.build_pair({"content": "c.jpg", "style": "s.jpg", "mask": 3}, 2, str(tmp_path), base)
    assert isinstance(bad, manifest.RowError) and "mask: expected a path" in bad.reason


def test_masks_outside_cross_mode_is_a_usage_error(catalog, tmp_path, capsys):
    rc = main(["--manifest", str(catalog / "manifest.csv"), "--masks", "m/{stem}.png", "--output",
               str(tmp_path / "o"), *FAST])
    assert rc == 2 and "--masks: only in cross mode" in capsys.readouterr().err


def test_fast_mode_applies_the_mask_and_resumes(catalog, tmp_path):
    write_csv(catalog / "fast.csv", ["id,content,style,mask", "m1,content/c1.jpg,style/s1.png,masks/c1.png",
                                     "p2,content/c2.png,style/s1.png,"])
    out = tmp_path / "out"
    args = ["--manifest", str(catalog / "fast.csv"), "--output", str(out), *FAST, "--fast_train_steps", "2",
            "--fast_crop", "16", "--fast_train_contents", "2", "--mode", "fast"]
    run(args)
    done = {r["id"]: r for r in read_jsonl(out / "metrics.jsonl")}
    assert {k: (r["status"], r["mode"], r["mask"]) for k, r in done.items()} == {
        "m1": ("stylized", "fast", str(catalog / "masks" / "c1.png")), "p2": ("stylized", "fast", None)}
    content = np.asarray(Image.open(catalog / "content" / "c1.jpg").convert("RGB")).astype(int)
    got = np.asarray(Image.open(out / "images" / "m1.png")).astype(int)
    assert (got[:, 20:] == content[:, 20:]).all() and np.abs(got[:, :16] - content[:, :16]).mean() > 5
    _mask(catalog / "masks" / "c1.png", left=False)
    run(args)
    assert {r["id"]: r["status"] for r in read_jsonl(out / "metrics.jsonl")} == {"m1": "stylized", "p2": "skipped"}
