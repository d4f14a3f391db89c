"""End-to-end runs on tiny images (DirectRunner, in process): outputs, metrics, report, errors, reruns, resume."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from pipeline_helpers import FAST, copy_images, read_jsonl, report_reach, write_csv

from nst_core.images import read_png_text
from pipeline.run import build, counters, main, resolve_options, run

pytestmark = pytest.mark.slow

GOOD = ["p1", "p2", "p3"]
# line -> (row, reason fragment) of the planted bad rows; line numbers count the header as line 1
BAD = {
    6: ("missing,content/nope.jpg,style/s1.png,,,", "file not found"),
    7: ("notimg,content/notes.txt,style/s1.png,,,", "not an image"),
    8: ("badsize,content/c1.jpg,style/s1.png,0,,", "size"),
    9: ("negw,content/c1.jpg,style/s1.png,,-1,", "style_weight"),
    10: ("p1,content/c2.png,style/s2.jpg,,,", "duplicate id 'p1'"),
    11: ("a/b,content/c1.jpg,style/s1.png,,,", "path separators"),
    12: ("up..dir,content/c1.jpg,style/s1.png,,,", "'..'"),
    13: ("nanw,content/c1.jpg,style/s1.png,,nan,", "style_weight"),
    14: ("short,content/c1.jpg", "field(s)"),
    15: ("empty,,style/s1.png,,,", "content: missing or empty"),
    16: ("nostyle,content/c1.jpg,style/nope.png,,,", "file not found"),
    17: ("badseed,content/c1.jpg,style/s1.png,,,-3", "seed"),
}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, image_dir) -> Path:
    root = copy_images(image_dir, tmp_path_factory.mktemp("catalog"))
    lines = ["id,content,style,size,style_weight,seed",
             "p1,content/c1.jpg,style/s1.png,,,",
             "p2,content/c2.png,style/s1.png,,,",      # same style as p1: cached style targets
             "p3,content/c1.jpg,style/s2.jpg,32,,3",
             ",content/c2.png,style/s2.jpg,,,"]         # no id: stable hash
    lines += [row for _, (row, _) in sorted(BAD.items())]
    write_csv(root / "manifest.csv", lines)
    with open(root / "manifest.csv", "ab") as f:       # line 18: bytes that are not UTF-8
        f.write(b"bad\xffutf8,content/c1.jpg,style/s1.png,,,\n")
    return root


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = run(["--manifest", str(catalog / "manifest.csv"), "--output", str(out), *FAST])
    return out, counters(result)


def test_outputs_exist_and_are_valid(first_run):
    out, _ = first_run
    done = read_jsonl(out / "metrics.jsonl")
    ids = [r["id"] for r in done]
    assert ids == [*GOOD, "c2_s2"]  # the id-less row: content and style stems
    for rec in done:
        assert rec["status"] == "stylized"
        png = (out / rec["image"]).read_bytes()
        text = read_png_text(png)
        assert json.loads(text["nst:options"])["steps"] == 2
        metrics = json.loads((out / rec["metrics"]).read_text())
        assert set(metrics["losses"]) >= {"content", "style", "tv", "total"}
        assert metrics["trace"] and metrics["versions"]["nst_core"] and metrics["fingerprint"]
        assert metrics["seconds"] > 0 and metrics["id"] == rec["id"]
    p3 = json.loads((out / "metrics" / "p3.json").read_text())
    assert max(p3["size"]) == 32 and p3["seed"] == 3  # per-row overrides applied
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_planted_bad_rows_are_exactly_the_errors(first_run):
    out, _ = first_run
    errors = read_jsonl(out / "errors.jsonl")
    assert [e["line"] for e in errors] == [*sorted(BAD), 18]
    for err in errors[:-1]:
        assert BAD[err["line"]][1] in err["reason"], err
        assert err["row"] or err["line"] == 14
    assert "UTF-8" in errors[-1]["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["balanced"] and (summary["rows"], summary["stylized"], summary["errors"]) == (17, 4, 13)


def test_counters_one_model_load_and_style_cache(first_run):
    _, c = first_run
    assert c["model_loads"] == 1
    assert (c["rows_read"], c["pairs_stylized"], c["pairs_skipped"], c["pairs_failed"]) == (17, 4, 0, 13)
    assert c["style_cache_hits"] >= 1


def test_report_pages_reach_every_row(first_run):
    out, _ = first_run
    anchors, sheets, broken = report_reach(out)
    done, errors = read_jsonl(out / "metrics.jsonl"), read_jsonl(out / "errors.jsonl")
    assert {r["id"] for r in done} <= anchors and not broken
    assert {e["id"] or f"line-{e['line']}" for e in errors} <= anchors
    page = (out / "report.html").read_text()
    assert "duplicate id" in page and "Errors by reason (13 rows" in page and "Highest style loss" in page
    for rec in done:
        assert (out / rec["thumb"]).is_file() and rec["thumb"] == f"thumbs/{rec['id']}.webp"


def test_rerun_skips_everything_and_rewrites_the_run_files(first_run, catalog):
    out, _ = first_run
    before = snapshot(out)
    result = run(["--manifest", str(catalog / "manifest.csv"), "--output", str(out), *FAST])
    c = counters(result)
    assert (c["pairs_stylized"], c["pairs_skipped"], c["pairs_failed"]) == (0, 4, 13)
    assert c["model_loads"] <= 1  # only the not-an-image row reaches the engine (it decodes the images)
    after = snapshot(out)
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if k.startswith(("images/", "metrics/"))} == \
        {k: v for k, v in before.items() if k.startswith(("images/", "metrics/"))}
    done = read_jsonl(out / "metrics.jsonl")
    assert [r["status"] for r in done] == ["skipped"] * 4
    assert [r["losses"] for r in done] == [r["losses"] for r in read_jsonl_bytes(before["metrics.jsonl"])]
    assert after["errors.jsonl"] == before["errors.jsonl"]


def read_jsonl_bytes(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def test_half_done_pairs_are_redone_and_match_an_uninterrupted_run(tmp_path, image_dir):
    """TestPipeline + assert_that on the summary; then a crash is staged and a rerun repairs it."""
    root = copy_images(image_dir, tmp_path / "cat")
    write_csv(root / "m.csv", ["id,content,style", "a,content/c1.jpg,style/s1.png", "b,content/c2.png,style/s1.png",
                               "c,content/c1.jpg,style/s2.jpg", "d,content/c2.png,style/s2.jpg"])
    out = tmp_path / "out"
    argv = ["--manifest", str(root / "m.csv"), "--output", str(out), *FAST]
    opts, base = resolve_options(PipelineOptions(argv))
    with BeamTestPipeline(options=PipelineOptions(argv)) as p:
        summary = build(p, opts, base)
        assert_that(summary | beam.Map(lambda s: (s["rows"], s["stylized"], s["skipped"], s["errors"], s["balanced"])),
                    equal_to([(4, 4, 0, 0, True)]))
    clean = snapshot(out)
    # the crash: a's metrics never written, b's metrics torn, c's image lost, temp files left behind
    (out / "metrics" / "a.json").unlink()
    (out / "metrics" / "b.json").write_text((out / "metrics" / "b.json").read_text()[:40])
    (out / "images" / "c.png").unlink()
    (out / "images" / ".a.png.tmp-0123456789ab").write_bytes(b"\x89PNG half")
    (out / "report.html").unlink()
    c = counters(run(argv))
    assert (c["pairs_stylized"], c["pairs_skipped"], c["pairs_failed"]) == (3, 1, 0)
    repaired = snapshot(out)
    assert set(repaired) == set(clean)
    assert [r["id"] for r in read_jsonl(out / "metrics.jsonl")] == ["a", "b", "c", "d"]
    for name in ("images/a.png", "images/b.png", "images/c.png"):
        assert read_png_text(repaired[name])["nst:options"] == read_png_text(clean[name])["nst:options"]


def test_changed_options_redo_rows_with_fixed_ids(tmp_path, image_dir):
    root = copy_images(image_dir, tmp_path / "cat")
    write_csv(root / "m.csv", ["id,content,style", "a,content/c1.jpg,style/s1.png"])
    argv = ["--manifest", str(root / "m.csv"), "--output", str(tmp_path / "out"), *FAST]
    assert counters(run(argv))["pairs_stylized"] == 1
    c = counters(run([*argv, "--steps", "3"]))
    assert (c["pairs_stylized"], c["pairs_skipped"]) == (1, 0)
    assert json.loads((tmp_path / "out" / "metrics" / "a.json").read_text())["options"]["steps"] == 3


def test_cross_mode_and_jsonl_free_main(tmp_path, image_dir, capsys):
    out = tmp_path / "out"
    code = main(["--contents", str(image_dir / "content" / "c*"), "--styles", str(image_dir / "style" / "*"),
                 "--output", str(out), *FAST, "--report_sheet_rows", "2", "--report_worst", "1"])
    assert code == 0
    done = read_jsonl(out / "metrics.jsonl")
    assert len(done) == 4 and {(Path(r["content"]).name, Path(r["styles"][0]).name) for r in done} == \
        {(c, s) for c in ("c1.jpg", "c2.png") for s in ("s1.png", "s2.jpg")}
    assert "rows in 4 = stylized 4 + skipped 0 + errors 0 [OK]; model loads 1" in capsys.readouterr().out
    anchors, sheets, broken = report_reach(out)
    assert anchors == {r["id"] for r in done} and len(sheets) == 2 and not broken  # 4 rows, 2 a sheet
    page = (out / "report.html").read_text()
    assert page.count("<div class='card'>") == 3  # one pair each: highest content, style loss, slowest


def test_main_exit_codes_and_messages(tmp_path, image_dir, capsys):
    out = str(tmp_path / "out")
    missing = tmp_path / "missing.csv"
    assert main(["--manifest", str(missing), "--output", out]) == 2
    assert f"manifest {missing}: not found" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_bytes(b"")
    assert main(["--manifest", str(tmp_path / "empty.csv"), "--output", out]) == 2
    assert "empty.csv: empty file" in capsys.readouterr().err
    assert main(["--manifest", str(missing)]) == 2
    assert "--output is required" in capsys.readouterr().err
    assert main(["--contents", str(tmp_path / "*.jpg"), "--styles", "x", "--output", out]) == 2
    assert "matched no files" in capsys.readouterr().err
    assert main(["--manifest", str(missing), "--output", out, "--size", "0"]) == 2
    assert "size" in capsys.readouterr().err
    assert main(["--manifest", str(missing), "--output", out, "--stpes", "5"]) == 2
    assert "unknown flag(s) --stpes" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "--content_weight" in capsys.readouterr().out
    root = copy_images(image_dir, tmp_path / "cat")
    (root / "m.jsonl").write_text('{"id": "ok", "content": "content/c1.jpg", "style": "style/s1.png"}\n'
                                  '{"id": "bad", "content": "content/c1.jpg", "style": "style/s1.png", "size": 0}\n')
    assert main(["--manifest", str(root / "m.jsonl"), "--output", out, *FAST]) == 3
    assert "1 row(s) failed" in capsys.readouterr().err
    assert [e["id"] for e in read_jsonl(Path(out) / "errors.jsonl")] == ["bad"]
