"""WorkerResources: what one worker process loads once and serves every pair from.

Shaped like Beam's ``ModelHandler`` (load once, then serve) and acquired through one ``Shared``
handle per run, so every stylizing step in a process (optimize, style networks, fast passes) and
every thread there use one object:

- the Stylizer: the one VGG19 of the process, which optimizes pairs, scores fast passes and trains
  style networks, and its Gram-target cache bounded in bytes; built on the first pair that needs it,
  so a worker that only skips pairs loads nothing;
- the style images' bytes, an LRU bounded in bytes and keyed by the file's stamp, so a painting
  replaced at the same path is read again;
- the style networks, an LRU of loaded models;
- the ``--models`` index and the local copies of gs:// network files.

Loads run outside every lock: a thread that asks for another key never waits for one that loads.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apache_beam.utils.shared import Shared

from nst_core import StyleOptions
from nst_core.cache import LoadOnce
from pipeline import storage

LOG = logging.getLogger("pipeline")


@dataclass(frozen=True)
class Limits:
    """What one worker process may keep; the defaults suit a GPU worker with several processes under MPS."""

    style_bytes: int = 64 * 1024 * 1024  # encoded style images (a catalog reuses few styles)
    networks: int = 4  # loaded style networks (~7 MB of weights each, plus their traced graph)
    grams: int | None = None  # style Gram targets in bytes; None: nst_core.stylizer.GRAM_CACHE_BYTES (128 MiB)


class WorkerSetupError(RuntimeError):
    """This worker cannot serve any pair (e.g. --require_gpu and no GPU): fail its bundle, never a row."""


def driver_version() -> str:
    """The NVIDIA kernel driver's version line, or why there is none (for the no-GPU message)."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().strip() or "empty /proc/driver/nvidia/version"
    except OSError:
        return "no NVIDIA kernel driver loaded (/proc/driver/nvidia/version absent)"


def device_report(require_gpu: bool) -> tuple[tuple[str, ...], str]:
    """(GPUs TensorFlow sees, the precision ``auto`` resolves to); WorkerSetupError if a GPU is required and
    there is none.  Imports TensorFlow."""
    from nst_core.features import configure_devices, resolve_precision
    from nst_core.tfimport import import_tensorflow

    gpus = configure_devices()
    if require_gpu and not gpus:
        devices = [d.name for d in import_tensorflow().config.list_physical_devices()]
        raise WorkerSetupError(f"--require_gpu: TensorFlow sees no GPU on {socket.gethostname()} (devices: "
                               f"{', '.join(devices) or 'none'}; driver: {driver_version()})")
    return gpus, resolve_precision("auto")


class Served:
    """A loaded model and the lock that serializes its calls (it is not thread-safe, and TensorFlow already
    uses every core within one call)."""

    def __init__(self, model: Any):
        self.model = model
        self.lock = threading.Lock()


class WorkerResources:
    """One per worker process: see the module docstring."""

    def __init__(self, engine_options: StyleOptions, limits: Limits = Limits(), require_gpu: bool = False):
        self.engine_options = engine_options
        self.limits = limits
        self.require_gpu = require_gpu
        self._devices: LoadOnce[tuple] = LoadOnce()
        self._stylizer: LoadOnce[Served] = LoadOnce()
        self._style_bytes: LoadOnce[bytes] = LoadOnce(max_bytes=limits.style_bytes, size=len)
        self._networks: LoadOnce[Served] = LoadOnce(max_entries=limits.networks)
        self._indexes: LoadOnce[dict] = LoadOnce()
        self._local: LoadOnce[str] = LoadOnce()

    def check_devices(self) -> tuple[str, ...]:
        """The GPUs this process sees, found once and logged once (device and precision, at a level Dataflow
        shows); WorkerSetupError, every time, if a GPU is required and there is none."""
        def find() -> tuple:
            gpus, auto = device_report(self.require_gpu)
            precision = self.engine_options.precision
            LOG.info("worker %s pid %d: %s; precision %s", socket.gethostname(), os.getpid(),
                        f"GPU {', '.join(gpus)}" if gpus else "no GPU, CPU only",
                        auto if precision == "auto" else precision)
            return gpus
        return self._devices.get("devices", find)

    def stylizer(self, on_load: Callable[[], None] = lambda: None) -> Served:
        """The Stylizer (``.model``), built on first use; ``on_load()`` is called when it is built."""
        def build() -> Served:
            from nst_core import Stylizer  # TensorFlow: imported by the workers that stylize, not by the launcher

            self.check_devices()
            bound = {} if self.limits.grams is None else {"gram_cache_bytes": self.limits.grams}
            served = Served(Stylizer(self.engine_options, **bound))
            on_load()
            return served
        return self._stylizer.get("stylizer", build)

    def style_bytes(self, path: str, stamp: dict[str, Any] | None = None) -> bytes:
        """The bytes of a style image, read once per process while its stamp stays the same."""
        stamp = stamp if stamp is not None else storage.stamp(path)
        return self._style_bytes.get((path, json.dumps(stamp, sort_keys=True)), lambda: storage.read_bytes(path))

    def network(self, path: str, on_load: Callable[[], None] = lambda: None) -> Served:
        """The style network at ``path`` (``.model``), loaded once while it stays among the recently used."""
        def load() -> Served:
            from nst_core import fast

            self.check_devices()
            served = Served(fast.load_style_network(self.local_file(path)))
            on_load()
            return served
        return self._networks.get(path, load)

    def local_file(self, path: str) -> str:
        """A local path holding ``path``'s bytes (a gs:// object is copied once per process)."""
        if storage.is_local(path):
            return path

        def copy() -> str:
            local = os.path.join(tempfile.mkdtemp(prefix="nst-models-"), storage.basename(path))
            with open(local, "wb") as f:
                f.write(storage.read_bytes(path))
            return local
        return self._local.get(path, copy)

    def models_index(self, folder: str, build: Callable[[str, Callable[[str], str]], dict]) -> dict:
        """``build(folder, local_file)``, once per folder and process."""
        return self._indexes.get(folder, lambda: build(folder, self.local_file))


def acquire(shared: Shared, engine_options: StyleOptions, require_gpu: bool = False) -> WorkerResources:
    """This process's WorkerResources for these engine options (one per process and run)."""
    tag = json.dumps({**{k: v for k, v in engine_options.to_dict().items() if k in ("precision", "weights", "kernels")},
                      "require_gpu": require_gpu}, sort_keys=True)
    return shared.acquire(lambda: WorkerResources(engine_options, require_gpu=require_gpu), tag=tag)
