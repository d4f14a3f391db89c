"""A local run of many lines goes in sub-runs (--local_run_rows) and leaves the same run files as one run."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from pipeline_helpers import FAST, copy_images, make_image, read_jsonl, report_reach, write_csv

from pipeline.manifest import parse, parse_lines
from pipeline.run import counters, run
from pipeline.runfiles import AccountingError

pytestmark = pytest.mark.slow

SMALL = ["--report_sheet_rows", "2", "--local_run_rows", "4"]  # sub-runs of 4 lines, sheets of 2


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, image_dir) -> Path:
    root = copy_images(image_dir, tmp_path_factory.mktemp("subruns"))
    lines = ["id,content,style",
             "p1,content/c1.jpg,style/s1.png",
             "p2,content/c2.png,style/s1.png",
             "missing,content/nope.jpg,style/s1.png",
             "p3,content/c1.jpg,style/s2.jpg",
             "",                                    # a blank line: line numbers keep counting
             "p1,content/c2.png,style/s2.jpg",       # p1 again, in another sub-run than the first
             ",content/c2.png,style/s1.png",         # no id: its id is made from the file names
             "p4,content/c2.png,style/s2.jpg",
             ",content/c2.png,style/s1.png"]         # line 8's row again, in another sub-run
    write_csv(root / "manifest.csv", lines)
    return root


@pytest.fixture(scope="module")
def runs(catalog, tmp_path_factory):
    """The catalog as one run and as sub-runs, each into its own fresh folder."""
    one, subs = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("subs")
    args = ["--manifest", str(catalog / "manifest.csv"), *FAST, "--report_sheet_rows", "2"]
    c_one = counters(run([*args, "--output", str(one), "--local_run_rows", "0"]))
    result = run([*args, "--output", str(subs), "--local_run_rows", "4"])
    assert len(result.results) == 3  # lines 1-4, 5-8, 9-11
    return one, subs, c_one, counters(result)


def _lines(path: Path) -> list[tuple]:
    return [(r["line"], r["id"], r["status"]) for r in read_jsonl(path)]


def test_sub_runs_give_the_run_files_of_one_run(runs):
    one, subs, c_one, c_subs = runs
    assert _lines(subs / "metrics.jsonl") == _lines(one / "metrics.jsonl")
    assert (subs / "errors.jsonl").read_bytes() == (one / "errors.jsonl").read_bytes()
    errors = read_jsonl(subs / "errors.jsonl")
    assert [e["line"] for e in errors] == [4, 7, 10]  # not found, duplicate id across sub-runs, repeated row
    assert "duplicate id 'p1'" in errors[1]["reason"] and "duplicate row" in errors[2]["reason"]
    s_one, s_subs = (json.loads((d / "summary.json").read_text()) for d in (one, subs))
    drop = ("finished", "output")
    assert {k: v for k, v in s_subs.items() if k not in drop} == {k: v for k, v in s_one.items() if k not in drop}
    assert s_subs["balanced"] and (s_subs["rows"], s_subs["stylized"], s_subs["errors"]) == (8, 5, 3)
    assert c_subs["rows_read"] == c_one["rows_read"] == 8 and c_subs["pairs_stylized"] == 5
    assert not (subs / "_parts").exists()


def test_sub_runs_sheets_link_the_whole_run(runs):
    one, subs, _, _ = runs
    anchors, sheets, broken = report_reach(subs)
    assert {r["id"] for r in read_jsonl(subs / "metrics.jsonl")} <= anchors and not broken
    assert {e["id"] or f"line-{e['line']}" for e in read_jsonl(subs / "errors.jsonl")} <= anchors
    assert len(sheets) == 5 == len(list((subs / "sheets").glob("*.html")))
    navs = [re.findall(r"<nav>.*?</nav>", (subs / "sheets" / p.name).read_text()) for p in
            sorted((subs / "sheets").glob("*.html"))]
    assert [n[0] for n in navs] == [re.findall(r"<nav>.*?</nav>", p.read_text())[0]
                                    for p in sorted((one / "sheets").glob("*.html"))]
    assert "sheet 3 of 5" in navs[2][0] and "previous" in navs[2][0] and "next" in navs[2][0]


def test_orphans_across_sub_runs_are_found_and_pruned(runs, catalog):
    _, subs, _, _ = runs
    make_image(subs / "images" / "gone.png", 1)
    (subs / "metrics" / "gone.json").write_text("{}")
    result = run(["--manifest", str(catalog / "manifest.csv"), "--output", str(subs), *FAST, *SMALL, "--prune"])
    assert counters(result)["pairs_skipped"] == 5
    summary = json.loads((subs / "summary.json").read_text())
    assert summary["orphans"] == 2 and summary["balanced"]
    listed = (subs / "orphans.txt").read_text().splitlines()
    assert [p.split("/", 2)[2] for p in listed] == ["images/gone.png", "metrics/gone.json"]
    assert all((subs / p).is_file() for p in listed) and not (subs / "images" / "gone.png").exists()
    assert all((subs / r["image"]).is_file() for r in read_jsonl(subs / "metrics.jsonl"))  # claimed: kept


def test_parse_lines_checks_against_the_whole_file(catalog, image_dir):
    from nst_core import StyleOptions

    data = (catalog / "manifest.csv").read_bytes()
    every = list(parse(data, str(catalog / "manifest.csv"), StyleOptions()))
    got, total = parse_lines(data, str(catalog / "manifest.csv"), StyleOptions(), (6, 9))
    assert total == len(every) == 8
    assert got == [r for r in every if 6 <= r.line <= 9]


def test_a_lost_record_in_a_sub_run_fails_the_run(catalog, tmp_path, monkeypatch):
    from pipeline import runfiles

    real = runfiles.page_stats

    def lose_one(keyed):  # the sheet of lines 2-3 reports one row fewer than it holds
        stats = real(keyed)
        if stats["page"] == 0:
            stats["lines"] -= 1
        return stats

    monkeypatch.setattr(runfiles, "page_stats", lose_one)
    with pytest.raises(AccountingError, match="does not balance"):
        run(["--manifest", str(catalog / "manifest.csv"), "--output", str(tmp_path / "o"), *FAST, *SMALL])


def test_sub_runs_with_two_worker_processes_report_progress_and_balance(tmp_path, image_dir, capsys):
    from pipeline.run import main

    root = copy_images(image_dir, tmp_path / "cat")
    combos = [(c, s) for c in ("content/c1.jpg", "content/c2.png") for s in ("style/s1.png", "style/s2.jpg")]
    write_csv(root / "m.csv", ["id,content,style,seed", *(f"r{i},{combos[i % 4][0]},{combos[i % 4][1]},{i}"
                                                          for i in range(6))])
    out = tmp_path / "out"
    code = main(["--manifest", str(root / "m.csv"), "--output", str(out), *FAST, *SMALL, "--progress_every", "0.5",
                 "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert code == 0
    printed = capsys.readouterr().out
    lines = re.findall(r"stylized (\d+)/(\d+|\?) \((\d+) failed\)", printed)
    assert lines and lines[-1] == ("6", "6", "0"), printed  # the total is the whole manifest's from the start
    assert all(total in ("6", "?") for _, total, _ in lines)
    assert [r["id"] for r in read_jsonl(out / "metrics.jsonl")] == [f"r{i}" for i in range(6)]
    assert json.loads((out / "summary.json").read_text())["balanced"]


def test_a_shorter_rerun_removes_the_sheets_past_its_last_page(runs, catalog, tmp_path):
    one, _, _, _ = runs
    out = tmp_path / "out"
    shutil.copytree(one, out)
    assert len(list((out / "sheets").glob("*.html"))) == 5
    write_csv(catalog / "short.csv", ["id,content,style", "p1,content/c1.jpg,style/s1.png",
                                      "p2,content/c2.png,style/s1.png"])
    result = run(["--manifest", str(catalog / "short.csv"), "--output", str(out), *FAST, "--report_sheet_rows", "2"])
    assert counters(result)["pairs_skipped"] == 2
    assert sorted(p.name for p in (out / "sheets").iterdir()) == ["0001.html", "0002.html"]  # lines 1-2, 3
    anchors, sheets, broken = report_reach(out)
    assert {"p1", "p2"} <= anchors and len(sheets) == 2 and not broken
