"""What a new user trips over: bad flags fail before any work with one line (exit 2), repeated globs add up,
outputs no row claims are listed (and moved aside on request), and --plan says what a run would do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_helpers import FAST, copy_images, make_image, read_jsonl, write_csv

from pipeline.run import counters, main, run

pytestmark = pytest.mark.slow


def one_line_error(capsys, code: int, fragment: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err


def test_bad_output_models_weights_and_columns_fail_before_any_work(tmp_path, image_dir, capsys):
    root = copy_images(image_dir, tmp_path / "cat")
    m = write_csv(root / "m.csv", ["id,content,style", "a,content/c1.jpg,style/s1.png"])
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    base = ["--manifest", str(m), *FAST]
    one_line_error(capsys, main([*base, "--output", str(a_file)]), "exists and is not a folder")
    one_line_error(capsys, main([*base, "--output", str(a_file / "sub")]), "is a file, so the folder cannot be made")
    out = str(tmp_path / "out")
    one_line_error(capsys, main([*base, "--output", out, "--mode", "fast", "--models", str(tmp_path / "nope")]),
                   "no such folder")
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, main([*base, "--output", out, "--mode", "fast", "--models", str(tmp_path / "empty")]),
                   "holds no .keras style networks")
    one_line_error(capsys, main([*base, "--output", out, "--weights", str(tmp_path / "vgg.npz")]), "--weights")
    bad_header = write_csv(root / "typo.csv", ["content,style,stpes", "content/c1.jpg,style/s1.png,", "x,y,3"])
    one_line_error(capsys, main(["--manifest", str(bad_header), "--output", out]), "unknown column(s) 'stpes'")
    one_line_error(capsys, main([*base, "--output", out, "--dry_run=true"]), "--plan")
    one_line_error(capsys, main([*base, "--output", out, "--style_blend", "-1,2"]), "option style_blend: -1")
    assert not Path(out).exists()  # nothing was started, nothing written


def test_repeated_globs_take_the_union(tmp_path, image_dir):
    out = tmp_path / "out"
    content, style = image_dir / "content", image_dir / "style"
    c = counters(run(["--contents", str(content / "c1*"), "--contents", str(content / "c2*"),
                      "--contents", str(content / "c1*"), "--styles", str(style / "s1*"),
                      "--styles", str(style / "s2*"), "--output", str(out), *FAST]))
    assert c["rows_read"] == 4 and c["pairs_stylized"] == 4
    ids = sorted(r["id"] for r in read_jsonl(out / "metrics.jsonl"))
    assert ids == ["c1_s1", "c1_s2", "c2_s1", "c2_s2"]  # readable ids, as nst-stylize names its files


def test_orphans_are_listed_and_pruned_only_on_request(tmp_path, image_dir, capsys):
    root = copy_images(image_dir, tmp_path / "cat")
    m = root / "m.csv"
    write_csv(m, ["content,style", "content/c1.jpg,style/s1.png", "content/c2.png,style/s1.png"])
    out = tmp_path / "out"
    argv = ["--manifest", str(m), "--output", str(out), *FAST]
    assert main(argv) == 0
    write_csv(m, ["content,style", "content/c1.jpg,style/s2.jpg", "content/c2.png,style/s1.png"])  # row 1 changed
    assert main(argv) == 0
    assert "3 output file(s) that no row claims, left in place" in capsys.readouterr().err
    assert (out / "orphans.txt").read_text().split() == ["images/c1_s1.png", "metrics/c1_s1.json", "thumbs/c1_s1.webp"]
    assert json.loads((out / "summary.json").read_text())["orphans"] == 3
    assert (out / "images" / "c1_s1.png").exists()  # never deleted without --prune
    assert main([*argv, "--prune"]) == 0
    moved = (out / "orphans.txt").read_text().split()
    assert len(moved) == 3 and all((out / p).is_file() for p in moved) and moved[0].startswith("pruned/")
    assert sorted(p.name for p in (out / "images").iterdir()) == ["c1_s2.png", "c2_s1.png"]
    assert main(argv) == 0 and (out / "orphans.txt").read_text() == ""


def test_plan_says_what_a_run_would_do_and_writes_nothing_under_out(tmp_path, image_dir, capsys):
    root = copy_images(image_dir, tmp_path / "cat")
    m = write_csv(root / "m.csv", ["id,content,style", "a,content/c1.jpg,style/s1.png", "b,content/c2.png,style/s1.png",
                                   "c,content/nope.jpg,style/s1.png", "d,content/c1.jpg,style/s2.jpg",
                                   "bad,content/c1.jpg,style/s1.png"])
    with open(m, "a") as f:
        f.write("e,content/c1.jpg\n")  # a row with a missing column
    out = tmp_path / "out"
    argv = ["--manifest", str(m), "--output", str(out), *FAST]
    main(argv)
    capsys.readouterr()
    make_image(root / "content" / "c2.png", 50, (32, 40))  # b's photo replaced: b is redone
    write_csv(root / "m2.csv", [*(root / "m.csv").read_text().splitlines(), "f,content/c2.png,style/s2.jpg"])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    plan_file = tmp_path / "plan.jsonl"
    assert main(["--manifest", str(root / "m2.csv"), "--output", str(out), *FAST, "--plan",
                 "--plan_file", str(plan_file)]) == 0
    printed = capsys.readouterr().out
    assert "rows 7 = stylize 2 (new 1, redo 1) + skip 3 + error 2" in printed, printed
    assert "estimate: " in printed and "of the 3 done in OUT" in printed
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    plan = {e["id"] or e["line"]: e for e in read_jsonl(plan_file)}
    assert [plan[k]["plan"] for k in ("a", "b", "d", "f")] == ["skip", "stylize", "skip", "stylize"]
    assert "changed since its output was made" in plan["b"]["reason"]
    assert plan["c"]["plan"] == "error" and "nope.jpg: file not found" in plan["c"]["reason"]
    without_a = [line for line in (root / "m.csv").read_text().splitlines() if not line.startswith("a,")]
    write_csv(root / "m3.csv", without_a)
    assert main(["--manifest", str(root / "m3.csv"), "--output", str(out), *FAST, "--plan",
                 "--plan_file", str(plan_file)]) == 0
    assert "3 output file(s) in OUT that no row claims" in capsys.readouterr().out  # a's image, metrics and thumb


def test_a_non_image_caught_by_a_cross_glob_is_one_error_not_one_per_style(tmp_path, image_dir):
    out = tmp_path / "out"
    c = counters(run(["--contents", str(image_dir / "content" / "*"), "--styles", str(image_dir / "style" / "*"),
                      "--output", str(out), *FAST]))
    assert (c["rows_read"], c["pairs_stylized"], c["pairs_failed"]) == (5, 4, 1)
    (err,) = read_jsonl(out / "errors.jsonl")
    assert err["line"] == 5 and "notes.txt: not an image (2 combination(s) not made)" in err["reason"]
    assert json.loads((out / "summary.json").read_text())["balanced"]


def test_help_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from pipeline.run import main; main(['--help']); "
            "print('tf' if 'tensorflow' in sys.modules else '')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0 and "--plan" in proc.stdout and "--prune" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] != "tf" and proc.stderr == ""


def test_a_two_worker_run_prints_nothing_on_stderr(tmp_path, image_dir):
    """No TensorFlow banner, no 'Discarding unparseable args', no worker start-up warnings: only the result."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    proc = subprocess.run([sys.executable, "-m", "pipeline.run", "--contents", str(image_dir / "content" / "c*"),
                           "--styles", str(image_dir / "style" / "s1*"), "--output", str(tmp_path / "out"), *FAST,
                           "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
                          capture_output=True, text=True, timeout=300, cwd=root, env={**env, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    assert "rows in 2 = stylized 2 + skipped 0 + errors 0 [OK]" in proc.stdout


def test_a_pair_too_large_for_the_memory_budget_is_its_rows_error(tmp_path, image_dir):
    """Over a catalog one huge pair must not crash a worker: the engine refuses it before any work."""
    root = copy_images(image_dir, tmp_path / "cat")
    write_csv(root / "m.csv", ["id,content,style,size", "small,content/c1.jpg,style/s1.png,",
                               "huge,content/c2.png,style/s1.png,4096"])
    out = tmp_path / "out"
    c = counters(run(["--manifest", str(root / "m.csv"), "--output", str(out), *FAST, "--memory_budget", "2000"]))
    assert (c["pairs_stylized"], c["pairs_failed"]) == (1, 1)
    (err,) = read_jsonl(out / "errors.jsonl")
    assert err["id"] == "huge" and "4096" in err["reason"] and "budget" in err["reason"], err["reason"]
