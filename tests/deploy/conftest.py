"""tests/deploy: the Dataflow deployment (deploy/), checked offline except the one `network` test.

deploy/ is a folder of scripts, not a package: its directory goes on sys.path so the tests import
lock, make_metadata, flex_main and gpu_profiles exactly as the scripts run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
for path in (str(ROOT), str(DEPLOY)):
    if path not in sys.path:
        sys.path.insert(0, path)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    config.addinivalue_line("markers", "network: needs PyPI (metadata only, cached by content); runs in CI")


@pytest.fixture(scope="session")
def readme_text() -> str:
    return (DEPLOY / "README.md").read_text()
