"""The end-of-run accounting check: printed in the run summary, and a lost or doubled row fails the run loudly
(exit 1, AccountingError naming the mismatch) even though every file was written."""

from __future__ import annotations

import json

import pytest
from reliability_helpers import FAST, write_csv

from pipeline import transforms
from pipeline.run import main


def _manifest(tmp_path):
    # Files that do not exist: the rows fail in the stylize step without loading the model (fast).
    return write_csv(tmp_path / "m.csv", ["id,content,style", "a,no-a.png,no-s.png", "lost,no-b.png,no-s.png",
                                          "twice,no-c.png,no-s.png"])


def test_balanced_run_prints_the_invariant(tmp_path, capsys):
    assert main(["--manifest", str(_manifest(tmp_path)), "--output", str(tmp_path / "out"), *FAST]) == 3
    assert "rows in 3 = stylized 0 + skipped 0 + errors 3 [OK]; model loads 0" in capsys.readouterr().out


@pytest.mark.parametrize("fault", ["lost", "twice"])
def test_lost_or_doubled_row_fails_the_run_loudly(tmp_path, monkeypatch, capsys, fault):
    real = transforms.StylizeDoFn.process

    def faulty(self, pair):
        for record in real(self, pair):
            if record["id"] == fault:
                if fault == "lost":
                    continue
                yield record
            yield record

    monkeypatch.setattr(transforms.StylizeDoFn, "process", faulty)
    out = tmp_path / "out"
    assert main(["--manifest", str(_manifest(tmp_path)), "--output", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "AccountingError: accounting does not balance" in err and "[MISMATCH]" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["balanced"] is False
    if fault == "lost":
        assert "rows in 3 = stylized 0 + skipped 0 + errors 2" in err and summary["missing_lines"] == ["?"]
    else:
        assert "errors 4" in err and summary["doubled_lines"] == [4]
