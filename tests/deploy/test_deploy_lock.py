"""deploy/requirements.txt: fully pinned, hashed, in step with requirements.txt and the Dockerfile, and it
resolves for the image's platform and Python (pip metadata for manylinux/glibc 2.36, CPython 3.11)."""

from __future__ import annotations

import re

import deploy_paths  # noqa: F401  (puts deploy/ on sys.path)
import lock
import pytest
from deploy_paths import DEPLOY, ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def dockerfile_arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, re.M)
    assert m, f"Dockerfile has no ARG {name}"
    return m.group(1)


def test_every_line_is_an_exact_pin_with_a_hash():
    text = lock.LOCK.read_text()
    pins = lock.read_lock(text)
    assert len(pins) > 100  # the whole closure, not just the top level
    for name, (version, _extras, hashes) in pins.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), name
        assert len(hashes) == 1, f"{name}: one sha256 (the image platform's file)"
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert all(ln.startswith("    --hash=sha256:") or "==" in ln for ln in body)


def test_lock_carries_the_runtime_pins_and_cuda():
    pins = lock.read_lock(lock.LOCK.read_text())
    for line in lock_inputs_plain():
        req = Requirement(line)
        version, extras, _ = pins[canonicalize_name(req.name)]
        assert req.specifier.contains(version), f"requirements.txt {line} vs lock {version}"
        assert req.extras <= extras
    assert "and-cuda" in pins["tensorflow"][1]
    for cuda in ("nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"):
        assert cuda in pins, f"{cuda} missing: tensorflow[and-cuda] was not resolved"


def lock_inputs_plain() -> list[str]:
    return [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
            if ln.split("#")[0].strip()]


def test_dockerfile_versions_match_the_lock():
    pins = lock.read_lock(lock.LOCK.read_text())
    assert dockerfile_arg("BEAM_VERSION") == pins["apache-beam"][0], "Beam boot and apache-beam must match"
    assert dockerfile_arg("PYTHON_VERSION") == lock.TARGET.python
    assert "python311-template-launcher-base" in DOCKERFILE  # the launcher for the same Python
    assert "python:${PYTHON_VERSION}-slim-bookworm" in DOCKERFILE  # the glibc the lock targets
    assert lock.TARGET.base_image == f"python:{lock.TARGET.python}-slim-bookworm"
    assert "--require-hashes" in DOCKERFILE and "deploy/requirements.txt" in DOCKERFILE


def _pin(name, version, requires=(), filename=None):
    return lock.Pin(name, version, filename or f"{name}-{version}-py3-none-any.whl", "0" * 64, tuple(requires))


def test_closure_check_catches_what_pip_check_would():
    locked = {"a": ("1.0", frozenset(), ("0" * 64,)), "b": ("2.0", frozenset(), ("0" * 64,))}
    good = {"a": _pin("a", "1.0", ["b>=2", "c; sys_platform == 'win32'", "d; extra == 'x'"]), "b": _pin("b", "2.0")}
    assert lock.check_closure(good, locked) == []
    missing = {"a": _pin("a", "1.0", ["b>=2", "e"]), "b": _pin("b", "2.0")}
    assert any("'e'" in p and "not pinned" in p for p in lock.check_closure(missing, locked))
    conflict = {"a": _pin("a", "1.0", ["b<2"]), "b": _pin("b", "2.0")}
    assert any("b==2.0 is pinned" in p for p in lock.check_closure(conflict, locked))
    foreign = {"a": _pin("a", "1.0", filename="a-1.0-cp311-cp311-macosx_11_0_arm64.whl"), "b": _pin("b", "2.0")}
    assert any("does not install" in p for p in lock.check_closure(foreign, locked))
    too_new = {"a": _pin("a", "1.0", filename="a-1.0-cp311-cp311-manylinux_2_39_x86_64.whl"), "b": _pin("b", "2.0")}
    assert lock.check_closure(too_new, locked), "a wheel needing glibc 2.39 must not pass for bookworm"


def test_target_platform_tags():
    t = lock.TARGET
    assert t.wheel_ok("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl")
    assert t.wheel_ok("protobuf-6.33.6-cp39-abi3-manylinux2014_x86_64.whl")
    assert t.wheel_ok("keras-3.15.1-py3-none-any.whl")
    assert not t.wheel_ok("numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.whl")
    assert not t.wheel_ok("x-1-cp311-cp311-musllinux_1_2_x86_64.whl")
    assert "manylinux_2_36_x86_64" in t.platforms() and "manylinux2014_x86_64" in t.platforms()


@pytest.mark.network  # needs PyPI (metadata only); run apart from the suite (make test), cached by the lock
def test_lock_resolves_for_the_image_platform_and_python():
    """pip, told the image's platform/Python/ABI, finds every pinned file (metadata only) and the set is closed.

    About 40 s against PyPI with a cold pip cache; the verified report is cached by the lock file's
    content (PyPI files are immutable), so reruns of an unchanged lock take well under a second.
    """
    problems = lock.check(use_cache=True)
    assert problems == [], "\n".join(problems)
