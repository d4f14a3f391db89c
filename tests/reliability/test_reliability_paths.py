"""No output ever lands outside OUT: hostile ids in a manifest, hostile file names in cross mode.

Every file and folder a run creates must be under OUT; hostile ids fail only their own row with a reason;
hostile names reach report.html escaped.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_helpers import FAST, make_image, read_jsonl, temp_files, tree

from nst_core import InputError
from pipeline.manifest import check_id
from pipeline.run import counters, run

pytestmark = pytest.mark.slow

HOSTILE_IDS = [
    "../x", "../../escaped", "a/b", "/abs", "/tmp/abs", "..", ".", "...", "a\\b", "..\\x", "C:\\x", "c:x",
    "x\x00y", "x\ny", "\u202eevil", "zero\u200bwidth", "line\u2028sep",
    "\uff0e\uff0e\uff0fx",   # full-width '../x'
    "a\uff0fb", "a\uff3cb",  # full-width solidus and reverse solidus
    "a\u2215b", "a\u2044b",  # division slash, fraction slash
    "\uff0e\uff0e", " pad", "pad ", "x" * 500,
]


def test_hostile_ids_refused_one_by_one():
    for bad in HOSTILE_IDS:
        with pytest.raises(InputError):
            check_id(bad)
    for ok in ("sku-123", "SKU_9.v2", "caf\u00e9", "\u65e5\u672c", "~home", "a b"):
        assert check_id(ok) == ok


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_accepted_id_is_one_plain_file_name(value):
    try:
        pair_id = check_id(value)
    except InputError:
        return
    import os
    import unicodedata

    for form in (pair_id, unicodedata.normalize("NFKC", pair_id)):
        name = f"{form}.png"
        assert os.path.basename(name) == name and "/" not in name and "\\" not in name
        assert ".." not in form and not form.startswith(".")
        assert os.path.normpath(os.path.join("/out/images", name)).startswith("/out/images/")


def test_hostile_ids_in_a_manifest_write_nothing_outside_out(tmp_path):
    work = tmp_path / "work"
    make_image(work / "c.png", 1)
    make_image(work / "s.png", 2)
    rows = [{"id": i, "content": "c.png", "style": "s.png"} for i in HOSTILE_IDS]
    rows += [{"id": i, "content": "c.png", "style": "s.png", "steps": n} for n, i in enumerate(
        ["../../../../../../../tmp/nst-escape", "images/../../up"], start=3)]
    (work / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = work / "out"
    before = tree(tmp_path)
    result = run(["--manifest", str(work / "m.jsonl"), "--output", str(out), *FAST])
    created = tree(tmp_path) - before
    assert created and all(p == "work/out" or p.startswith("work/out/") for p in created), sorted(created)
    errors = read_jsonl(out / "errors.jsonl")
    assert len(errors) == len(rows) and all(e["stage"] == "parse" and "id" in e["reason"] for e in errors)
    assert not (out / "images").exists() or not any((out / "images").iterdir())
    c = counters(result)
    assert (c["pairs_failed"], c["pairs_stylized"], c["model_loads"]) == (len(rows), 0, 0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["balanced"] and summary["errors"] == len(rows)


def test_hostile_file_names_in_cross_mode_stay_inside_out_and_escaped(tmp_path):
    src = tmp_path / "src"
    hostile = ["<img src=x onerror=alert(1)>.png", "..png", "-rf ;rm x.png", "new\nline.png", "\u202egnp.png"]
    for n, name in enumerate(hostile):
        make_image(src / "c" / name, n)
    make_image(src / "s" / "'quote\".png", 9)
    out = tmp_path / "out"
    before = tree(tmp_path)
    c = counters(run(["--contents", str(src / "c" / "*"), "--styles", str(src / "s" / "*"), "--output", str(out),
                      *FAST]))
    created = tree(tmp_path) - before
    assert all(p == "out" or p.startswith("out/") for p in created), sorted(created)
    assert (c["pairs_stylized"], c["pairs_failed"]) == (len(hostile), 0)
    names = sorted(p.name for p in (out / "images").iterdir())
    assert len(names) == len(hostile) and all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.png", n) for n in names)
    assert not [n for n in names if ".." in n], names
    assert not temp_files(out)
    pages = [p.read_text(encoding="utf-8") for p in (out / "report.html", *sorted((out / "sheets").glob("*.html")))]
    assert not any("<img src=x" in page for page in pages)
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1]  # the sheet names the content file, escaped
