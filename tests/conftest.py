"""Shared fixtures: a session-wide Stylizer (VGG19 built once), image factories."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def stylizer():
    from nst_core import Stylizer

    return Stylizer()


@pytest.fixture(scope="session")
def features32(stylizer):
    return stylizer.features("max", "float32")
