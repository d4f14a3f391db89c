"""Quiet TensorFlow import: start-up noise dropped, real errors and other output kept, options import no TF."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from images_factory import CONTENT, STYLE

from nst_core import tfimport

ROOT = Path(__file__).resolve().parents[1]
BANNER = ("I0000 00:00:1796155188.419910    3216 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
          "GPU will not be used.")
CUINIT = ("E0000 00:00:1796155192.944176    3216 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
          "Failed call to cuInit: UNKNOWN ERROR (303)")


def _write_fd2(*lines: str) -> None:
    os.write(2, ("\n".join(lines) + "\n").encode())  # as TensorFlow's C++ side does, below sys.stderr


def test_noise_dropped_other_lines_kept(capfd, monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert tfimport._quietly(lambda: _write_fd2(BANNER, "something real", CUINIT) or 7) == 7
    err = capfd.readouterr().err
    assert err == "something real\n"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert CUINIT in tfimport.suppressed()


def test_failed_import_shows_everything_and_raises(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")

    def broken():
        _write_fd2(BANNER, "libtensorflow_framework.so.2: cannot open shared object file")
        raise ImportError("no module named _pywrap_tensorflow_internal")

    with pytest.raises(ImportError, match="_pywrap"):
        tfimport._quietly(broken)
    err = capfd.readouterr().err
    assert "cannot open shared object file" in err and "cudart_stub" in err


def test_log_level_0_means_unfiltered(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    tfimport._quietly(lambda: _write_fd2(BANNER))
    assert "cudart_stub" in capfd.readouterr().err


@pytest.mark.parametrize("module", ["nst_core.options", "nst_core", "nst_core.cli", "nst_core.train_cli",
                                    "nst_core.weights", "nst_core.images", "nst_core.tfimport"])
def test_cheap_modules_do_not_import_tensorflow(module):
    code = f"import sys, {module}; sys.exit(3 if 'tensorflow' in sys.modules else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, f"importing {module} imported TensorFlow\n{proc.stderr}"


@pytest.mark.parametrize("level", [None, "3"])
def test_quiet_run_prints_nothing(tmp_path, level):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    exe = Path(sys.executable).parent / "nst-stylize"
    proc = subprocess.run([str(exe), "--ci", str(CONTENT), "--si", str(STYLE), "--o", str(tmp_path / "o.png"),
                           "--size", "32", "--steps", "1", "--coarse-steps", "1", "--min-size", "16", "--quiet"],
                          capture_output=True, text=True, env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert (tmp_path / "o.png").is_file()


@pytest.mark.parametrize("disabled_before", [False, True])
def test_import_freezes_tensorflow_objects_and_leaves_the_collector_as_it_was(disabled_before):
    code = ("import gc, sys\n"
            f"{'gc.disable()' if disabled_before else ''}\n"
            "seen = []\n"
            "gc.callbacks.append(lambda phase, info: phase == 'start' and seen.append(info['generation']))\n"
            "from nst_core.tfimport import import_tensorflow\n"
            "before = len(seen)\n"
            "import_tensorflow()\n"
            "print(gc.isenabled(), gc.get_freeze_count(), seen[before:].count(2))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    enabled, frozen, full_collections = proc.stdout.split()
    assert enabled == str(not disabled_before)
    assert int(frozen) > 100_000  # TensorFlow's modules, functions and op definitions
    assert int(full_collections) == 0  # none ran while TensorFlow imported
