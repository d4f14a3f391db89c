"""gs:// round trip on a real GCS emulator (loopback only): manifest and images in a bucket, outputs back there."""

from __future__ import annotations

import json
import socket

import pytest
from pipeline_helpers import FAST

from nst_core.images import read_png_text
from pipeline import report

pytestmark = pytest.mark.slow
BUCKET = "nst-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gcs(monkeypatch):
    """An in-memory GCS emulator; Beam's GCS client pointed at it, anonymously."""
    from apache_beam.internal.gcp import auth
    from gcp_storage_emulator.server import create_server
    from google.cloud import storage

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    # No credentials on this machine: skip Beam's ~20 s of retried lookups and connect anonymously at once.
    monkeypatch.setattr(auth._Credentials, "_credentials_init", True)
    monkeypatch.setattr(auth._Credentials, "_credentials", None)
    try:
        yield storage.Client.create_anonymous_client().bucket(BUCKET)
    finally:
        server.stop()


def test_gs_to_gs_round_trip(gcs, image_dir):
    from pipeline.run import counters, run

    for rel in ("content/c1.jpg", "content/c2.png", "style/s1.png"):
        gcs.blob(f"in/{rel}").upload_from_filename(str(image_dir / rel))
    gcs.blob("in/notes.txt").upload_from_string(b"not an image")
    gcs.blob("in/manifest.csv").upload_from_string(
        "id,content,style,steps\n"
        "g1,content/c1.jpg,style/s1.png,\n"
        "g2,content/c2.png,gs://nst-test/in/style/s1.png,1\n"
        "bad,notes.txt,style/s1.png,\n")
    argv = ["--manifest", f"gs://{BUCKET}/in/manifest.csv", "--output", f"gs://{BUCKET}/out", *FAST]
    c = counters(run(argv))
    assert (c["pairs_stylized"], c["pairs_failed"], c["model_loads"]) == (2, 1, 1)

    names = {b.name for b in gcs.client.list_blobs(BUCKET, prefix="out/")}
    sources = {f"out/{report.source_rel(f'gs://{BUCKET}/in/{rel}')}" for rel in ("content/c1.jpg", "content/c2.png",
                                                                               "style/s1.png")}
    sources |= {s.rsplit(".", 1)[0] + ".stamp.json" for s in sources}  # what each thumbnail was made from
    # no progress or part files left behind: the run's temporary objects are deleted at its end
    assert names == {"out/images/g1.png", "out/images/g2.png", "out/metrics/g1.json", "out/metrics/g2.json",
                     "out/thumbs/g1.webp", "out/thumbs/g2.webp", "out/sheets/0001.html", *sources,
                     "out/metrics.jsonl", "out/errors.jsonl", "out/report.html", "out/summary.json",
                     "out/orphans.txt"}
    assert json.loads(read_png_text(gcs.blob("out/images/g1.png").download_as_bytes())["nst:options"])["steps"] == 2
    assert json.loads(gcs.blob("out/metrics/g2.json").download_as_bytes())["options"]["steps"] == 1
    done = [json.loads(x) for x in gcs.blob("out/metrics.jsonl").download_as_text().splitlines()]
    assert [r["id"] for r in done] == ["g1", "g2"]
    assert done[0]["content"] == f"gs://{BUCKET}/in/content/c1.jpg"
    (err,) = [json.loads(x) for x in gcs.blob("out/errors.jsonl").download_as_text().splitlines()]
    assert err["id"] == "bad" and "not an image" in err["reason"]
    sheet = gcs.blob("out/sheets/0001.html").download_as_text()
    assert "id='g1'" in sheet and "id='g2'" in sheet and 'src="../thumbs/g1.webp"' in sheet
    assert "Errors by reason (1 rows" in gcs.blob("out/report.html").download_as_text()

    c = counters(run(argv))  # rerun from the bucket: everything done is skipped
    assert (c["pairs_stylized"], c["pairs_skipped"], c["pairs_failed"]) == (0, 2, 1)
    assert json.loads(gcs.blob("out/summary.json").download_as_bytes())["skipped"] == 2

    recorded = json.loads(gcs.blob("out/metrics/g1.json").download_as_bytes())["inputs"]
    assert recorded[f"gs://{BUCKET}/in/content/c1.jpg"]["crc32c"]
    gcs.blob("in/content/c1.jpg").upload_from_filename(str(image_dir / "content/c2.png"))  # replaced in place
    c = counters(run(argv))
    assert (c["pairs_stylized"], c["pairs_skipped"]) == (1, 1)


def test_missing_gs_manifest_fails_with_its_name(gcs):
    from pipeline.run import UsageError, run

    with pytest.raises(UsageError, match=f"gs://{BUCKET}/nope.csv: not found"):
        run(["--manifest", f"gs://{BUCKET}/nope.csv", "--output", f"gs://{BUCKET}/out"])


def test_gs_sub_runs_merge_and_a_shorter_rerun_drops_stale_sheets(gcs, image_dir):
    from pipeline.run import counters, run

    for rel in ("content/c1.jpg", "content/c2.png", "style/s1.png"):
        gcs.blob(f"in/{rel}").upload_from_filename(str(image_dir / rel))
    rows = ["g1,content/c1.jpg,style/s1.png,", "g2,content/c2.png,style/s1.png,", "bad,content/nope.jpg,style/s1.png,",
            "g3,content/c2.png,style/s1.png,1"]
    gcs.blob("in/manifest.csv").upload_from_string("id,content,style,steps\n" + "\n".join(rows) + "\n")
    argv = ["--output", f"gs://{BUCKET}/out", *FAST, "--report_sheet_rows", "2", "--local_run_rows", "2"]
    result = run(["--manifest", f"gs://{BUCKET}/in/manifest.csv", *argv])
    assert len(result.results) == 3  # lines 1-2, 3-4, 5-6
    c = counters(result)
    assert (c["pairs_stylized"], c["pairs_failed"]) == (3, 1)
    names = {b.name for b in gcs.client.list_blobs(BUCKET, prefix="out/")}
    assert {n for n in names if n.startswith("out/sheets/")} == {f"out/sheets/000{i}.html" for i in (1, 2, 3)}
    assert not [n for n in names if "/_parts/" in n or "/progress/" in n]
    summary = json.loads(gcs.blob("out/summary.json").download_as_bytes())
    assert (summary["balanced"], summary["stylized"], summary["errors"], summary["sheets"]) == (True, 3, 1, 3)
    done = [json.loads(x)["id"] for x in gcs.blob("out/metrics.jsonl").download_as_text().splitlines()]
    assert done == ["g1", "g2", "g3"]

    gcs.blob("in/short.csv").upload_from_string("id,content,style,steps\n" + rows[0] + "\n")
    c = counters(run(["--manifest", f"gs://{BUCKET}/in/short.csv", *argv]))
    assert c["pairs_skipped"] == 1
    names = {b.name for b in gcs.client.list_blobs(BUCKET, prefix="out/")}
    assert {n for n in names if n.startswith("out/sheets/")} == {"out/sheets/0001.html"}
    assert json.loads(gcs.blob("out/summary.json").download_as_bytes())["orphans"] == 6  # g2, g3: 3 files each
