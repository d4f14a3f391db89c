"""Runs in other processes: two DirectRunner worker processes (one model load each), and a run killed mid-way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import FAST, copy_images, read_jsonl, write_csv

from pipeline.run import counters, main, run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NETAUDIT = Path(__file__).resolve().parent / "netaudit"
sys.path.insert(0, str(NETAUDIT))
import sitecustomize  # noqa: E402  (the audit module; this test installs its hook in-process too)


def manifest(root: Path, n: int) -> Path:
    combos = [(c, s) for c in ("content/c1.jpg", "content/c2.png") for s in ("style/s1.png", "style/s2.jpg")]
    rows = [f"r{i},{combos[i % 4][0]},{combos[i % 4][1]},{i}" for i in range(n)]
    return write_csv(root / "m.csv", ["id,content,style,seed", *rows])


def test_two_worker_processes_load_the_model_once_each_offline(tmp_path, image_dir, capsys, monkeypatch):
    root = copy_images(image_dir, tmp_path / "cat")
    out = tmp_path / "out"
    # Every process of the run (this launcher and the worker processes it starts) logs attempts to reach
    # another host: a local DirectRunner run must make none (no credential lookup, no download).
    audit = tmp_path / "network.log"
    audit.touch()
    monkeypatch.setenv("NST_NET_AUDIT", str(audit))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(NETAUDIT), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    sitecustomize.install(str(audit))
    # 40 steps a pair: long enough that a 0.5 s progress tick lands while pairs are being stylized
    code = main(["--manifest", str(manifest(root, 6)), "--output", str(out), *FAST, "--steps", "40",
                 "--direct_running_mode=multi_processing", "--direct_num_workers=2", "--progress_every", "0.5"])
    assert code == 0
    captured = capsys.readouterr()
    # the launcher's progress lines, summed from both worker processes' progress files while they ran
    lines = re.findall(r"stylized (\d+)/(\d+|\?) \((\d+) failed\) [0-9.e+-]+ pairs/s", captured.out)
    assert len(lines) >= 2 and lines[-1] == ("6", "6", "0"), captured.out
    assert any(done not in ("0", "6") for done, _, _ in lines), "no line while pairs were being stylized"
    assert not (out / "progress").exists()  # the run's progress files are gone when it ends
    assert audit.read_text() == "", "network attempts during a local run:\n" + audit.read_text()
    printed = captured.out
    loads = int(printed.split("model loads ")[1].split()[0])
    pids = {json.loads(p.read_text())["worker"]["pid"] for p in (out / "metrics").glob("*.json")}
    assert os.getpid() not in pids           # the pairs ran in the worker processes
    assert 1 <= loads == len(pids) <= 2      # one model per worker process that served pairs
    assert len(read_jsonl(out / "metrics.jsonl")) == 6


def test_killed_run_rerun_ends_like_an_uninterrupted_one(tmp_path, image_dir):
    root = copy_images(image_dir, tmp_path / "cat")
    m = manifest(root, 8)
    slow = [*FAST, "--steps", "25", "--size", "48"]  # slow enough to be killed between pairs
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.run", "--manifest", str(m), "--output", str(killed),
                             *slow], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((killed / "metrics").glob("*.json")):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    half = len(list((killed / "metrics").glob("*.json")))
    assert 1 <= half < 8 and not (killed / "summary.json").exists()

    c = counters(run(["--manifest", str(m), "--output", str(killed), *slow]))
    assert c["pairs_skipped"] == half and c["pairs_stylized"] == 8 - half
    run(["--manifest", str(m), "--output", str(clean), *slow])

    def files(out: Path) -> set[str]:
        return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}

    def rows(out: Path) -> list[tuple]:
        return [(r["line"], r["id"], r["image"], r["options"]["seed"]) for r in read_jsonl(out / "metrics.jsonl")]

    assert files(killed) == files(clean)
    assert rows(killed) == rows(clean) and len(rows(clean)) == 8
    assert (killed / "errors.jsonl").read_text() == (clean / "errors.jsonl").read_text() == ""
