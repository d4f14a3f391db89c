"""Shared fixtures: sample paths, a session-wide Stylizer (VGG19 built once), image factories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CONTENT = SAMPLES / "content" / "chelsea.jpg"
STYLE = SAMPLES / "style" / "starry_night.jpg"


@pytest.fixture(scope="session")
def stylizer():
    from nst_core import Stylizer

    return Stylizer()


@pytest.fixture(scope="session")
def features32(stylizer):
    return stylizer.features("max", "float32")
