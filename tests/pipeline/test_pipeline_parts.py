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
from pipeline.transforms import account, summary_line


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


def test_accounting_balances_or_says_what_is_wrong():
    recs = [{"line": 2, "status": "stylized"}, {"line": 3, "status": "skipped"}, {"line": 4, "status": "error"}]
    ok = account(recs, 3)
    assert ok["balanced"] and summary_line(ok).endswith("[OK]")
    lost = account(recs[:2], 3)
    assert not lost["balanced"] and "MISMATCH" in summary_line(lost)
    doubled = account([*recs, recs[0]], 4)
    assert not doubled["balanced"] and doubled["doubled_lines"] == [2]


def test_report_escapes_and_embeds():
    thumb = report.thumbnail(np.zeros((50, 80, 3), np.uint8), 32)
    assert thumb.startswith("data:image/jpeg;base64,")
    assert report.thumbnail(b"not an image", 32) is None
    page = report.render(
        [{"id": "x<1>", "line": 2, "status": "stylized", "content": "c.jpg", "styles": ["s.jpg"], "thumb": thumb,
          "losses": {"total": 1.5, "content": float("nan")}, "image": "images/x.png", "metrics": "metrics/x.json"}],
        [{"line": 3, "id": "", "reason": "content: <missing>", "row": {"content": ""}}],
        {"rows": 2, "stylized": 1, "errors": 1}, {"c.jpg": thumb, "s.jpg": None}, 32)
    assert "x&lt;1&gt;" in page and "&lt;missing&gt;" in page and "<missing>" not in page
    assert page.count(thumb) == 2 and "(no preview)" in page
