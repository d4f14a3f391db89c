"""Fixtures for the pipeline tests (helpers live in pipeline_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import make_image


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    """content/c1.jpg, content/c2.png, style/s1.png, style/s2.jpg and a text file that is not an image."""
    root = tmp_path_factory.mktemp("images")
    make_image(root / "content" / "c1.jpg", 1)
    make_image(root / "content" / "c2.png", 2, (32, 40))
    make_image(root / "style" / "s1.png", 3)
    make_image(root / "style" / "s2.jpg", 4, (36, 36))
    (root / "content" / "notes.txt").write_text("not an image")
    return root
