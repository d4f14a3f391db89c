"""Paths for tests/deploy, and deploy/ on sys.path: it is a folder of scripts, not a package, so the tests
import lock, make_metadata, flex_main and gpu_profiles exactly as the scripts run.

(No conftest.py here on purpose: a second top-level ``conftest`` module would shadow tests/conftest.py
for the modules that do ``from conftest import ...``.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
for _path in (str(DEPLOY), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
README = (DEPLOY / "README.md").read_text()
