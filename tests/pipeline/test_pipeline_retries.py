"""Transient storage failures (HTTP 429/5xx, timeouts) are retried with backoff and then raised for Beam to
retry the bundle; they never become a row's error. A missing or undecodable input stays that row's error."""

from __future__ import annotations

import pytest
from flaky_fs import FAILURES, OPENS, PREFIX
from pipeline_helpers import FAST, copy_images, read_jsonl, write_csv

from pipeline import storage
from pipeline.run import counters, run

pytestmark = pytest.mark.slow


@pytest.fixture
def flaky_catalog(tmp_path, image_dir, monkeypatch):
    monkeypatch.setattr(storage, "RETRY_DELAYS", (0.0, 0.0, 0.0, 0.0))
    FAILURES.clear()
    OPENS.clear()
    root = copy_images(image_dir, tmp_path / "cat")
    return root, {name: f"{PREFIX}{root / 'content' / name}" for name in ("c1.jpg", "c2.png", "gone.jpg")}


def test_transient_failures_are_retried_and_bad_inputs_stay_row_errors(flaky_catalog, tmp_path):
    root, paths = flaky_catalog
    FAILURES[paths["c1.jpg"]] = 2  # two 503s, then the bytes
    write_csv(root / "m.csv", ["id,content,style", f"a,{paths['c1.jpg']},style/s1.png",
                               f"gone,{paths['gone.jpg']},style/s1.png", "txt,content/notes.txt,style/s1.png"])
    out = tmp_path / "out"
    c = counters(run(["--manifest", str(root / "m.csv"), "--output", str(out), *FAST]))
    assert (c["pairs_stylized"], c["pairs_failed"]) == (1, 2)
    assert FAILURES[paths["c1.jpg"]] == 0 and OPENS[paths["c1.jpg"]] >= 3  # both 503s met, then read
    reasons = {e["id"]: e["reason"] for e in read_jsonl(out / "errors.jsonl")}
    assert "file not found" in reasons["gone"] and "not an image" in reasons["txt"]


def test_a_failure_that_outlasts_the_retries_fails_the_bundle_not_the_row(flaky_catalog, tmp_path):
    root, paths = flaky_catalog
    FAILURES[paths["c2.png"]] = 100
    write_csv(root / "m.csv", ["id,content,style", f"b,{paths['c2.png']},style/s1.png"])
    out = tmp_path / "out"
    with pytest.raises(Exception, match="still failing after 5 tries"):
        run(["--manifest", str(root / "m.csv"), "--output", str(out), *FAST])
    assert OPENS[paths["c2.png"]] >= 5
    assert not (out / "errors.jsonl").exists() and not (out / "metrics" / "b.json").exists()


def test_is_transient_sees_through_wrapping():
    from apache_beam.io.filesystem import BeamIOError
    from google.api_core.exceptions import NotFound, TooManyRequests

    assert storage.is_transient(BeamIOError("open failed", {"gs://b/x": TooManyRequests("429")}))
    assert storage.is_transient(TimeoutError("read timed out"))
    try:
        try:
            raise TooManyRequests("slow down")
        except TooManyRequests as e:
            raise OSError("wrapped") from e
    except OSError as wrapped:
        assert storage.is_transient(wrapped)
    assert not storage.is_transient(NotFound("404")) and not storage.is_transient(FileNotFoundError("x"))
