"""The small parts: option flags, atomic storage, the accounting check and the report page."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from nst_core import options as engine_options
from pipeline import report, storage
from pipeline.options import PIPELINE_FLAGS, NSTPipelineOptions, flag_names
from pipeline.runfiles import Accounting, RunStats, account, page_stats, reason_key, summary_line


def _other_value(spec: engine_options.OptionSpec) -> str:
    """A valid value of ``spec`` other than its default, as text on a command line."""
    if spec.name == "style_layer_weights":
        return "1,1,1,1,2"
    if spec.choices:
        return next(c for c in spec.choices if c not in (spec.default if spec.type == "list" else (spec.default,)))
    if spec.type == "list":
        return "1,2"
    if spec.type == "int":
        return str(spec.default + 1 if spec.hi is None or spec.default + 1 <= spec.hi else spec.default - 1)
    if spec.type == "float":
        return str(spec.default / 2 if spec.default else 0.5)
    return {"init": "noise", "weights": "/tmp/vgg.npz", "background": "#808080"}.get(spec.name, "x")


@pytest.mark.parametrize("spelling", ["underscore", "dashed"])
def test_every_engine_option_is_a_pipeline_flag_that_reaches_the_engine(spelling):
    for spec in engine_options.specs():
        flag = f"--{spec.name}" if spelling == "underscore" else spec.flag
        value = _other_value(spec)
        got = NSTPipelineOptions([f"{flag}={value}"]).style_options()
        default = engine_options.StyleOptions()
        assert getattr(got, spec.name) != getattr(default, spec.name), (flag, value)
        assert got.replace(**{spec.name: getattr(default, spec.name)}) == default, flag  # and nothing else
    assert {"manifest", "contents", "styles", "output"} <= set(flag_names()) and set(PIPELINE_FLAGS) <= set(
        flag_names())


def test_both_spellings_and_dataflow_round_trip():
    opts = NSTPipelineOptions(["--manifest", "m.csv", "--content-weight", "2", "--style_weight=3", "--size", "64",
                               "--style-layers", "block1_conv1,block2_conv1", "--runner", "DirectRunner"])
    base = opts.style_options()
    assert (base.content_weight, base.style_weight, base.size) == (2.0, 3.0, 64)
    assert base.style_layers == ("block1_conv1", "block2_conv1")
    assert base.steps == engine_options.StyleOptions().steps  # engine default
    given = opts.get_all_options(drop_default=True)
    assert given["content_weight"] == 2.0 and "steps" not in given
    again = PipelineOptions.from_dictionary(given).view_as(NSTPipelineOptions)  # how Dataflow workers rebuild it
    assert again.style_options() == base


def test_bad_engine_flag_names_the_option():
    with pytest.raises(ValueError, match="style_weight"):
        NSTPipelineOptions(["--style_weight", "-2"]).style_options()


def test_resolve_relative_paths():
    assert storage.resolve("/a/b", "c/../../d.jpg") == "/a/d.jpg"
    assert storage.resolve("/a/b", "/abs.jpg") == "/abs.jpg"
    assert storage.resolve("gs://bk/x", "y/z.jpg") == "gs://bk/x/y/z.jpg"
    assert storage.resolve("/a", "gs://bk/z.jpg") == "gs://bk/z.jpg"


def test_atomic_write_never_shows_a_partial_file(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    big = [bytes([i]) * 2_000_000 for i in range(1, 6)]
    seen: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                continue
            seen.add(len(data))
            assert len(set(data[::4096])) == 1  # one whole version, never a mix

    t = threading.Thread(target=reader)
    t.start()
    for blob in big:
        storage.write_atomic(str(target), blob)
    stop.set()
    t.join()
    assert seen <= {2_000_000} and target.read_bytes() == big[-1]
    assert os.listdir(target.parent) == ["f.bin"]


def test_stale_temps_removed(tmp_path):
    (tmp_path / ".a.png.tmp-123").write_bytes(b"x")
    (tmp_path / "a.png").write_bytes(b"y")
    assert storage.remove_stale_temps(str(tmp_path)) == 1 and os.listdir(tmp_path) == ["a.png"]


def _accounting(recs: list[dict], page_rows: int = 2) -> dict:
    """The streamed accounting as the pipeline computes it: per sheet, then combined."""
    pages: dict[int, list[dict]] = {}
    for r in recs:
        pages.setdefault((r["line"] - 1) // page_rows, []).append(r)
    fn = Accounting()
    accs = [fn.add_input(fn.create_accumulator(), page_stats((k, v))) for k, v in pages.items()]
    return fn.extract_output(fn.merge_accumulators(accs))


def test_accounting_balances_or_says_what_is_wrong():
    recs = [{"line": 2, "status": "stylized"}, {"line": 3, "status": "skipped"}, {"line": 4, "status": "error"}]
    ok = account(_accounting(recs), 3)
    assert ok["balanced"] and summary_line(ok).endswith("[OK]")
    lost = account(_accounting(recs[:2]), 3)
    assert not lost["balanced"] and "MISMATCH" in summary_line(lost) and lost["missing_lines"] == ["?"]
    doubled = account(_accounting([*recs, recs[0]]), 4)
    assert not doubled["balanced"] and doubled["doubled_lines"] == [2]
    swapped = account(_accounting([recs[0], recs[1], {"line": 3, "status": "error"}]), 3)  # 3 twice, 4 lost
    assert not swapped["balanced"] and swapped["doubled_lines"] == [3]


def test_run_stats_are_bounded_and_merge_like_one_pass():
    recs = [{"line": i + 2, "id": f"p{i}", "status": "stylized", "styles": [f"s{i % 3}.jpg"], "seconds": 1.0 + i,
             "losses": {"content": 0.1 * (i + 1), "style": 1.0 / (i + 1)}, "retried": "float32" if i == 4 else ""}
            for i in range(50)]
    recs += [{"line": 60 + i, "id": f"e{i}", "status": "error", "reason": f"content /data/c{i}.jpg: file not found",
              "row": {"style": "s0.jpg"}} for i in range(7)]
    fn = RunStats(page_rows=20, worst=5)
    one = fn.extract_output(fn.merge_accumulators([fn.add_input(fn.create_accumulator(), r) for r in recs]))
    halves = [fn.create_accumulator(), fn.create_accumulator()]
    for i, r in enumerate(recs):
        fn.add_input(halves[i % 2], r)
    merged = fn.extract_output(fn.merge_accumulators(halves))
    assert one["worst"] == merged["worst"]
    assert [r["id"] for r in one["worst"]["content"]] == ["p49", "p48", "p47", "p46", "p45"]
    assert [r["id"] for r in one["worst"]["style"]][0] == "p0" and one["worst"]["retried"][0]["id"] == "p4"
    assert one["worst"]["slowest"][0]["page"] == (51 - 1) // 20
    assert one["reasons"] == merged["reasons"] and list(one["reasons"]) == ["content <path>: file not found"]
    assert one["reasons"]["content <path>: file not found"]["count"] == 7
    assert one["styles"]["s0.jpg"]["error"] == 7 and sum(g["rows"] for g in one["styles"].values()) == 57
    assert sum(one["hist"]["seconds"].values()) == 50


def test_reason_key_groups_alike_failures():
    assert reason_key("content gs://b/x/1.jpg: file not found") == reason_key("content /tmp/2.png: file not found")
    assert reason_key("option size: 0 is below the minimum 16") == "option size: N is below the minimum N"
    assert reason_key("duplicate id 'p1'") == reason_key("duplicate id 'zz'")


def test_report_pages_escape_and_link_thumbnail_files():
    assert report.thumbnail(np.zeros((50, 80, 3), np.uint8), 32)[:4] == b"RIFF"
    assert report.thumbnail(b"not an image", 32) is None
    rgba = report.thumbnail(np.zeros((10, 10, 4), np.uint8), 32)
    import io

    from PIL import Image
    assert Image.open(io.BytesIO(rgba)).mode == "RGBA"
    recs = [{"id": "x<1>", "line": 2, "status": "stylized", "content": "c.jpg", "styles": ["s.jpg"],
             "thumb": "thumbs/x<1>.webp", "losses": {"total": 1.5, "content": float("nan")}, "image": "images/x.png",
             "metrics": "metrics/x.json", "trace": [3.0, 2.0, 1.0], "mask": "m.png"},
            {"line": 3, "id": "", "status": "error", "reason": "content: <missing>", "row": {"content": ""}}]
    page = report.render_sheet(recs, 0, [0, 1], "2 rows", 32, (2, 3))
    assert "x&lt;1&gt;" in page and "&lt;missing&gt;" in page and "<missing>" not in page
    assert 'src="../thumbs/x&lt;1&gt;.webp"' in page and f'src="../{report.source_rel("m.png")}"' in page
    assert "<polyline" in page and "href='../sheets/0002.html'" in page and "previous" not in page
