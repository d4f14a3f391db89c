"""Catalog-scale neural style transfer: nst_core (the engine) and pipeline (the Beam job)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
REQUIREMENTS = [
    line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="nst-catalog",
    version=re.search(r'^__version__ = "([^"]+)"', (HERE / "nst_core" / "__init__.py").read_text(), re.M).group(1),
    description="Gatys neural style transfer for catalogs: a TensorFlow engine and an Apache Beam job",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["nst_core", "nst_core.*", "pipeline", "pipeline.*"]),
    install_requires=REQUIREMENTS,
    entry_points={
        "console_scripts": [
            "nst-stylize=nst_core.cli:entry",
            "nst-train-style=nst_core.train_cli:entry",
            "nst-pipeline=pipeline.run:main",
        ]
    },
)
