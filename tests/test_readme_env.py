"""Every NST_* environment variable the READMEs name is one the code reads (a renamed variable once left the
README promising $NST_CACHE while the code read NST_CACHE_DIR)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_env_variables_named_in_the_readmes_are_read_by_the_code():
    docs = (ROOT / "README.md").read_text() + (ROOT / "deploy" / "README.md").read_text()
    named = set(re.findall(r"\b(NST_[A-Z0-9_]+)\b", docs))
    code = "".join(p.read_text() for d in ("nst_core", "pipeline", "deploy") for p in (ROOT / d).glob("*.py"))
    code += (ROOT / "deploy" / "Dockerfile").read_text()
    read = set(re.findall(r"""environ(?:\.get)?\(?\[?["'](NST_[A-Z0-9_]+)["']""", code))
    read |= set(re.findall(r"""env\.get\(["'](NST_[A-Z0-9_]+)["']""", code))
    read |= set(re.findall(r"^ENV (NST_[A-Z0-9_]+)=", code, re.M))
    assert named, "the READMEs name the weights cache variable"
    assert named <= read, sorted(named - read)
