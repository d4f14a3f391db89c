"""No credentials in outputs or logs: credential-looking environment variables and URLs carrying a password or a
signed-URL token in the manifest must not show up in any file under OUT (run files, metrics, PNG metadata), on
stdout/stderr or in the log records of the run."""

from __future__ import annotations

import logging

import pytest
from reliability_helpers import FAST, make_image, read_jsonl, write_csv

from pipeline.run import main
from pipeline.storage import redact

pytestmark = pytest.mark.slow

SECRETS = ["AKIAFAKEENVSECRET0001", "ghp_FAKEGITHUBTOKEN0002", "FAKEPRIVATEKEYMATERIAL0003", "PASSWORDSECRET0004",
           "SIGSECRET0005", "ya29.TOKENSECRET0006", "QUERYSECRET0007"]


def test_redact_hides_userinfo_and_queries_only():
    assert redact("https://alice:pw@cdn.example/a/c.jpg?X-Goog-Signature=abc&x=1 failed") == \
        "https://***@cdn.example/a/c.jpg?<redacted> failed"
    assert redact("gs://bucket/c.jpg?access_token=ya29.x") == "gs://bucket/c.jpg?<redacted>"
    assert redact("content /data/c.jpg?: not found") == "content /data/c.jpg?: not found"  # local: untouched
    assert redact("gs://bucket/dir/c.jpg and s3://b/k") == "gs://bucket/dir/c.jpg and s3://b/k"


def test_no_credentials_in_outputs_or_logs(tmp_path, capfd, caplog):
    """Secrets carried by URLs in a manifest (userinfo, signed-URL signatures, tokens) never reach what the
    run writes or prints.  (The code reads no credentials from the environment, so there is none to leak.)"""
    make_image(tmp_path / "c.png", 1)
    make_image(tmp_path / "s.png", 2)
    m = write_csv(tmp_path / "m.csv", [
        "id,content,style",
        "good,c.png,s.png",
        f"signed,https://alice:{SECRETS[3]}@cdn.example/c.jpg?X-Goog-Signature={SECRETS[4]},s.png",
        f"token,c.png,https://cdn.example/s.jpg?access_token={SECRETS[5]}",
        f"s3,s3://bucket/c.jpg?X-Amz-Security-Token={SECRETS[6]},s.png",
    ])
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    assert main(["--manifest", str(m), "--output", str(out), *FAST]) == 3
    printed = capfd.readouterr()
    errors = {e["id"]: e for e in read_jsonl(out / "errors.jsonl")}
    assert set(errors) == {"signed", "token", "s3"}
    assert "cdn.example/c.jpg?<redacted>" in errors["signed"]["reason"]  # still says which file failed
    assert (out / "images" / "good.png").exists()

    places = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    places["stdout"] = printed.out.encode()
    places["stderr"] = printed.err.encode()
    places["log"] = caplog.text.encode()
    assert {"summary.json", "report.html", "errors.jsonl", "metrics.jsonl", "images/good.png"} <= set(places)
    for where, data in places.items():
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} leaked into {where}"
