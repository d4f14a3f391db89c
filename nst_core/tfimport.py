"""Import TensorFlow (and Keras) without the C++ start-up banner on stderr.

Every nst_core module gets TensorFlow from here (``from nst_core.tfimport import tf``), so the first
one to load it does so quietly; Beam workers and other callers can call :func:`import_tensorflow`.

TensorFlow's C++ side writes its banner straight to file descriptor 2, part of it before it reads
``TF_CPP_MIN_LOG_LEVEL`` ("All log messages before absl::InitializeLog() ...", "Could not find cuda
drivers", "failed call to cuInit" on every CPU machine), so setting the variable alone does not
silence it.  Here the import and the first device query run with fd 2 pointed at a temporary file;
afterwards the known start-up lines (:data:`NOISE`) are dropped and anything else is written to
stderr as it came.  If the import fails, everything captured is written out and the error re-raised.

``TF_CPP_MIN_LOG_LEVEL`` is set to 1 (no INFO lines) when the user has not set it; a user who sets
it to 0 asked for every log line and gets them unfiltered.  The dropped lines stay readable in
:func:`suppressed` (e.g. to explain why no GPU was found).

Before the import, glibc's malloc is told to keep freed blocks for reuse (:mod:`nst_core.allocator`).
The import runs with the cyclic garbage collector paused, and the objects it leaves are then frozen
(``gc.freeze``): they live as long as the process, so every later full collection, the one at exit
included, would only walk them again (benchmarks/RESULTS.md, Quality per second: start-up).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

# Start-up lines of TensorFlow/XLA that say nothing a user can act on.
NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"cudart_stub\.cc.*Could not find cuda drivers",
    r"cuda_(platform|executor|diagnostics)\.cc.*(cuInit|CUDA error|kernel driver|retrieving CUDA diagnostic)",
    r"cpu_feature_guard\.cc",
    r"^To enable the following instructions:.*rebuild TensorFlow",
    r"oneDNN custom operations are on",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation_placer\.cc.*already registered",
    r"TF-TRT Warning: Could not find TensorRT",
]))

_lock = threading.RLock()
_suppressed: list[str] = []
_ready: dict[str, ModuleType] = {}


def suppressed() -> list[str]:
    """The start-up lines dropped so far (empty when nothing was filtered)."""
    return list(_suppressed)


def _filtering() -> bool:
    """True unless the user asked for every C++ log line (TF_CPP_MIN_LOG_LEVEL=0)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # set before the import: TF reads it once
    return os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() != "0"


@contextlib.contextmanager
def _fd2_captured() -> Iterator[list[str]]:
    """Point fd 2 at a temporary file for the block; the yielded list gets its lines afterwards."""
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (a daemon): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()  # Python-level writes made inside the block belong to the capture
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, then as it was (a caller's gc.disable() stands)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_tensorflow() -> ModuleType:
    from nst_core.allocator import keep_freed_memory

    keep_freed_memory()  # before TensorFlow allocates: its tensors are the blocks worth keeping
    with _gc_paused():  # the import makes ~270k long-lived objects: full collections in it only cost time
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe ("failed call to cuInit") logs here, once
    # Keep those objects out of every later full collection, the one at interpreter exit included.
    gc.freeze()
    return tf


def import_tensorflow() -> ModuleType:
    """The ``tensorflow`` module, imported (the first time) without the start-up banner."""
    with _lock:
        if "tensorflow" not in _ready:
            _ready["tensorflow"] = _quietly(_load_tensorflow)
        return _ready["tensorflow"]


def import_keras() -> ModuleType:
    """The ``keras`` module, imported after :func:`import_tensorflow` and as quietly."""
    import_tensorflow()
    with _lock:
        if "keras" not in _ready:
            import importlib

            _ready["keras"] = _quietly(lambda: importlib.import_module("keras"))
        return _ready["keras"]


def _quietly(load: Any) -> Any:
    """Run ``load()`` with fd 2 captured: start-up noise dropped, anything else passed on.

    A failed ``load()`` writes everything it printed (unfiltered) before its error propagates.
    """
    if not _filtering():
        return load()
    error: BaseException | None = None
    with _fd2_captured() as lines:
        try:
            value = load()
        except BaseException as e:  # noqa: BLE001  re-raised below, once fd 2 is back
            error = e
    keep = lines if error is not None else [ln for ln in lines if not NOISE.search(ln)]
    if error is None:
        _suppressed.extend(ln for ln in lines if NOISE.search(ln))
    if keep:
        sys.stderr.write("\n".join(keep) + "\n")
        sys.stderr.flush()
    if error is not None:
        raise error
    return value


def __getattr__(name: str) -> ModuleType:
    # ``from nst_core.tfimport import tf`` (or ``keras``) imports it quietly on first use.
    if name == "tf":
        return import_tensorflow()
    if name == "keras":
        return import_keras()
    raise AttributeError(f"module 'nst_core.tfimport' has no attribute {name!r}")
