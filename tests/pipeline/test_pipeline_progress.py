"""The progress line: counts summed from the workers' files, the total from the reader, a rate over a window."""

from __future__ import annotations

import io

from pipeline import progress


def test_line_says_finished_of_total_failures_rate_and_eta():
    counts = {"stylized": 100, "skipped": 17, "error": 3}
    assert progress.progress_line(400, counts, 2.1) == "stylized 120/400 (3 failed, 17 skipped) 2.1 pairs/s, eta 2m"
    assert progress.progress_line(None, counts, 0.0) == "stylized 120/? (3 failed, 17 skipped) 0 pairs/s"
    assert progress.progress_line(120, counts, 5.0).endswith("writing the run files")
    assert [progress.duration(s) for s in (44, 600, 3 * 3600 + 300)] == ["44s", "10m", "3h05m"]


def test_writers_flush_rarely_and_the_watcher_sums_them(tmp_path):
    out, run = str(tmp_path), "r1"
    a, b = progress.ProgressWriter(out, run, 3600), progress.ProgressWriter(out, run, 3600)
    for _ in range(5):
        a.add("stylized")
    b.add("error")
    assert progress.read_counts(out, run) == (None, {"stylized": 0, "skipped": 0, "error": 0})  # nothing flushed yet
    a.flush()
    b.flush()
    progress.write_total(out, run, 10)
    assert progress.read_counts(out, run) == (10, {"stylized": 5, "skipped": 0, "error": 1})
    now = [100.0]
    stream = io.StringIO()
    watcher = progress.ProgressWatcher(out, run, 60, stream, clock=lambda: now[0])
    now[0] = 110.0
    assert watcher.report() == "stylized 6/10 (1 failed) 0.6 pairs/s, eta 7s"
    a.add("stylized")
    a.add("stylized")
    a.flush()
    now[0] = 112.0
    assert watcher.report().startswith("stylized 8/10 (1 failed) 1 pairs/s")  # 2 rows in the last 2 s
    watcher.stop()
    assert "stylized 8/10" in stream.getvalue() and not (tmp_path / "progress").exists()


def test_pairs_slower_than_the_window_still_show_a_rate_and_an_eta(tmp_path):
    out, run = str(tmp_path), "r1"
    writer = progress.ProgressWriter(out, run, 3600)
    progress.write_total(out, run, 10)
    now = [0.0]
    watcher = progress.ProgressWatcher(out, run, 60, io.StringIO(), clock=lambda: now[0])
    lines = []
    for t in range(100, 1300, 100):  # one row every 300 s, a line every 100 s: most lines see no new row
        if t % 300 == 0:
            writer.add("stylized")
            writer.flush()
        now[0] = float(t)
        lines.append(watcher.report())
    assert all("eta" in line for line in lines[2:]), lines
    assert "stylized 4/10 (0 failed) 0.00333 pairs/s, eta 30m" in lines  # 1 row in the 300 s since the one before
    assert not any(" 0 pairs/s" in line for line in lines[2:]), lines
