#!/usr/bin/env python3
"""Regenerate deploy/requirements.txt: every package of the worker image pinned with == and a sha256.

    python deploy/lock.py            # resolve against PyPI, write deploy/requirements.txt, then verify it
    python deploy/lock.py --check    # only verify the committed file (what tests/deploy runs)

Input: the project's runtime pins in ``requirements.txt`` with ``tensorflow`` widened to
``tensorflow[and-cuda]`` (the CUDA/cuDNN wheels for the GPU).  Target: the image's interpreter and
platform, :data:`TARGET` (CPython 3.11 on Debian 12 "bookworm", glibc 2.36, x86_64).

Resolving needs a host of the same kind (Linux x86_64, CPython 3.11), because a few of Beam's
dependencies (google-apitools, crcmod, ...) exist only as source distributions, which pip refuses
to resolve for a foreign ``--platform``.  Verifying does not: ``--check`` asks pip for every pinned
file with ``--platform/--python-version/--implementation/--abi`` (metadata only, nothing large is
downloaded) and then checks that the pinned set is closed and consistent -- every requirement of
every package, markers evaluated for the target, is satisfied by a pin -- which is what ``pip
check`` would say inside the image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOCK = HERE / "requirements.txt"
RUNTIME = ROOT / "requirements.txt"


@dataclass(frozen=True)
class Target:
    python: str = "3.11"
    python_full: str = "3.11.13"  # only used to evaluate markers such as python_full_version
    implementation: str = "cp"
    abi: str = "cp311"
    glibc: tuple[int, int] = (2, 36)  # Debian 12 bookworm, the base of python:3.11-slim-bookworm
    arch: str = "x86_64"
    base_image: str = "python:3.11-slim-bookworm"

    def platforms(self) -> list[str]:
        """Every manylinux platform tag the image accepts, newest first (pip does not expand them)."""
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 4, -1)]
        return tags + [f"manylinux2014_{self.arch}", f"manylinux2010_{self.arch}", f"manylinux1_{self.arch}"]

    def environment(self) -> dict[str, str]:
        """PEP 508 marker environment of the image."""
        return {
            "implementation_name": "cpython", "implementation_version": self.python_full,
            "os_name": "posix", "platform_machine": self.arch, "platform_python_implementation": "CPython",
            "platform_release": "", "platform_system": "Linux", "platform_version": "",
            "python_full_version": self.python_full, "python_version": self.python, "sys_platform": "linux",
        }

    def wheel_ok(self, filename: str) -> bool:
        _, _, _, tags = parse_wheel_filename(filename)
        plats = set(self.platforms()) | {"any"}
        interps = {"py3", f"py{self.python.replace('.', '')}", "py2.py3",
                   f"{self.implementation}{self.python.replace('.', '')}"}
        abis = {"none", "abi3", self.abi}
        for tag in tags:
            if tag.platform in plats and tag.abi in abis and (
                    tag.interpreter in interps or (tag.abi == "abi3" and tag.interpreter.startswith("cp3")
                                                   and int(tag.interpreter[3:]) <= int(self.abi[3:]))):
                return True
        return False


TARGET = Target()


def lock_inputs() -> list[str]:
    """The runtime pins of requirements.txt, with TensorFlow's CUDA extra for the GPU image."""
    out = []
    for line in RUNTIME.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if canonicalize_name(req.name) == "tensorflow":
            req.extras = set(req.extras) | {"and-cuda"}
        out.append(str(req))
    return out


def clean_pip_env() -> dict[str, str]:
    """pip without this machine's config files, find-links or constraints: plain PyPI, like the image build."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    for keep in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run_pip(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_pip_env())
        if proc.returncode != 0:
            raise SystemExit(f"pip failed ({proc.returncode}):\n{' '.join(cmd)}\n{proc.stderr[-4000:]}")
        return json.loads(report.read_text())


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    filename: str
    sha256: str
    requires_dist: tuple[str, ...]


def pins_from_report(report: dict) -> dict[str, Pin]:
    pins = {}
    for item in report["install"]:
        meta = item["metadata"]
        info = item["download_info"]
        hashes = info.get("archive_info", {}).get("hashes", {})
        sha = hashes.get("sha256") or info.get("archive_info", {}).get("hash", "").removeprefix("sha256=")
        pin = Pin(canonicalize_name(meta["name"]), meta["version"], info["url"].rsplit("/", 1)[-1].split("#")[0],
                  sha, tuple(meta.get("requires_dist") or ()))
        pins[pin.name] = pin
    return pins


def resolve() -> dict[str, Pin]:
    if not (sys.platform == "linux" and platform.machine() == TARGET.arch
            and f"{sys.version_info.major}.{sys.version_info.minor}" == TARGET.python):
        raise SystemExit(f"resolve on Linux {TARGET.arch} with Python {TARGET.python} (this is {sys.platform} "
                         f"{platform.machine()} Python {platform.python_version()}); --check works anywhere")
    with tempfile.NamedTemporaryFile("w", suffix=".in", delete=False) as f:
        f.write("\n".join(lock_inputs()) + "\n")
    try:
        return pins_from_report(run_pip(["-r", f.name]))
    finally:
        os.unlink(f.name)


def render(pins: dict[str, Pin]) -> str:
    lines = [
        "# The worker/launcher image's Python packages, every one pinned, with the sha256 of the file",
        f"# for {TARGET.base_image} (CPython {TARGET.python}, glibc {TARGET.glibc[0]}.{TARGET.glibc[1]}, "
        f"{TARGET.arch}).",
        "# Generated by `python deploy/lock.py` from requirements.txt (tensorflow -> tensorflow[and-cuda]).",
        "# Do not edit by hand: change requirements.txt, rerun deploy/lock.py, commit both.",
        "",
    ]
    extras = {canonicalize_name(Requirement(r).name): sorted(Requirement(r).extras) for r in lock_inputs()}
    for name in sorted(pins):
        pin = pins[name]
        ex = f"[{','.join(extras[name])}]" if extras.get(name) else ""
        lines.append(f"{name}{ex}=={pin.version} \\\n    --hash=sha256:{pin.sha256}")
    return "\n".join(lines) + "\n"


_LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(?:\[(?P<extras>[^\]]*)\])?==(?P<version>\S+)\s*(?P<rest>.*)$")


def read_lock(text: str) -> dict[str, tuple[str, frozenset[str], tuple[str, ...]]]:
    """name -> (version, extras, sha256s) of a requirements file in the format :func:`render` writes."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = {}
    for raw in joined.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"not an exact pin: {raw!r}")
        hashes = tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", m["rest"]))
        extras = frozenset(e.strip() for e in (m["extras"] or "").split(",") if e.strip())
        out[canonicalize_name(m["name"])] = (m["version"], extras, hashes)
    return out


def check_closure(pins: dict[str, Pin], locked: dict, target: Target = TARGET) -> list[str]:
    """Problems with the pinned set as the image would see them (an empty list: consistent and complete)."""
    problems = []
    env = target.environment()
    # extras asked for: by the lock file itself and, transitively, by requirements with extras
    wanted: dict[str, set[str]] = {n: set(e) for n, (_, e, _) in locked.items()}
    changed = True
    while changed:
        changed = False
        for name, pin in pins.items():
            for spec in pin.requires_dist:
                req = Requirement(spec)
                if not _applies(req, env, wanted.get(name, set())):
                    continue
                dep = canonicalize_name(req.name)
                if req.extras - wanted.setdefault(dep, set()):
                    wanted[dep] |= req.extras
                    changed = True
    for name, pin in sorted(pins.items()):
        for spec in pin.requires_dist:
            req = Requirement(spec)
            if not _applies(req, env, wanted.get(name, set())):
                continue
            dep = canonicalize_name(req.name)
            if dep not in pins:
                problems.append(f"{name} {pin.version} needs {spec!r}, which is not pinned")
            elif not req.specifier.contains(pins[dep].version, prereleases=True):
                problems.append(f"{name} {pin.version} needs {spec!r}, but {dep}=={pins[dep].version} is pinned")
    for name, pin in sorted(pins.items()):
        if pin.filename.endswith(".whl") and not target.wheel_ok(pin.filename):
            problems.append(f"{pin.filename} does not install on the image's platform")
        version, _, hashes = locked.get(name, (None, None, ()))
        if version != pin.version:
            problems.append(f"{name}: pip chose {pin.version}, the lock pins {version}")
        elif pin.sha256 and hashes and pin.sha256 not in hashes:
            problems.append(f"{name}: pip chose {pin.filename} (sha256 {pin.sha256}), not the pinned file")
    for name in sorted(set(locked) - set(pins)):
        problems.append(f"{name} is pinned but pip did not select it")
    return problems


def _applies(req: Requirement, env: dict[str, str], extras: set[str]) -> bool:
    if req.marker is None:
        return True
    for extra in sorted(extras) or [""]:
        if Marker(str(req.marker)).evaluate({**env, "extra": extra}):
            return True
    return False


def verify_args(lock: Path = LOCK, target: Target = TARGET) -> list[str]:
    """pip arguments that fetch the metadata of every pinned file for the target platform."""
    args = ["--no-deps", "--python-version", target.python, "--implementation", target.implementation,
            "--abi", target.abi, "--abi", "abi3", "--abi", "none"]
    for plat in target.platforms():
        args += ["--platform", plat]
    return args + ["-r", str(lock)]


def cache_path(lock: Path, target: Target = TARGET) -> Path:
    """Where a verified pip report for exactly this lock file and target is kept (PyPI files are immutable)."""
    import hashlib

    key = hashlib.sha256(repr((lock.read_bytes(), target, verify_args(Path("lock"), target))).encode()).hexdigest()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nst-deploy" / f"pip-report-{key[:24]}.json"


def check(lock: Path = LOCK, use_cache: bool = False) -> list[str]:
    locked = read_lock(lock.read_text())
    problems = []
    for req in lock_inputs():
        r = Requirement(req)
        name = canonicalize_name(r.name)
        if name not in locked:
            problems.append(f"{req} (requirements.txt) is not in {lock.name}")
        elif not r.specifier.contains(locked[name][0], prereleases=True) or not r.extras <= locked[name][1]:
            problems.append(f"requirements.txt says {req}, {lock.name} pins {name}=={locked[name][0]}")
    cache = cache_path(lock)
    if use_cache and cache.is_file():
        report = json.loads(cache.read_text())
    else:
        report = run_pip(verify_args(lock))
    problems += check_closure(pins_from_report(report), locked)
    if use_cache and not problems:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(report))
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only verify the committed lock file")
    args = p.parse_args(argv)
    if not args.check:
        LOCK.write_text(render(resolve()))
        print(f"wrote {LOCK.relative_to(ROOT)}")
    problems = check()
    for line in problems:
        print("PROBLEM:", line, file=sys.stderr)
    if not problems:
        print(f"{LOCK.relative_to(ROOT)}: {len(read_lock(LOCK.read_text()))} pins resolve for {TARGET.base_image}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
