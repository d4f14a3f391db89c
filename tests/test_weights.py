"""The VGG19 weights reader: sha256 first, then an allow-list unpickler; nothing else runs."""

import io
import pickle
import struct

import numpy as np
import pytest

from nst_core import weights
from nst_core.errors import InputError, WeightsError


def _legacy_stream(main_pickle: bytes, keys: list[str], storages: list[bytes]) -> bytes:
    out = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(obj, out, protocol=2)
    out.write(main_pickle)
    pickle.dump(keys, out, protocol=2)
    for raw in storages:
        out.write(struct.pack("<q", len(raw)))
        out.write(raw)
    return out.getvalue()


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/nst-pwned",))


def test_sha_mismatch_refused(tmp_path):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match="sha256"):
        weights.read_codebook(bad)


def test_pickle_naming_other_global_refused(tmp_path):
    import os

    marker = "/tmp/nst-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    data = _legacy_stream(pickle.dumps({"block1_conv1_W_q": _Evil()}, protocol=2), [], [])
    path = tmp_path / "evil.bin"
    path.write_bytes(data)
    # Give it its own sha so the check passes and the unpickler itself is what refuses.
    with pytest.raises(WeightsError, match="forbidden global posix.system|forbidden global os.system"):
        weights.read_codebook(path, expected_sha256=weights.sha256_of(path))
    assert not os.path.exists(marker)


def test_magic_pickles_may_name_no_global(tmp_path):
    out = io.BytesIO()
    pickle.dump(_Evil(), out, protocol=2)
    path = tmp_path / "evil0.bin"
    path.write_bytes(out.getvalue())
    with pytest.raises(WeightsError, match="forbidden global"):
        weights.read_codebook(path, expected_sha256=weights.sha256_of(path))


def test_real_codebook_reads_to_keras_layout():
    path = weights.cache_dir() / weights.CODEBOOK_NAME
    if not path.is_file():
        pytest.skip("codebook file not fetched (run `make weights`)")
    w = weights.read_codebook(path)
    assert set(w) == set(weights.CONV_LAYERS)
    k, b = w["block1_conv1"]
    assert k.shape == (3, 3, 3, 64) and b.shape == (64,)
    assert w["block5_conv4"][0].shape == (3, 3, 512, 512)
    assert all(np.isfinite(k).all() for k, _ in w.values())
    # Codebook: at most 256 distinct values per layer.
    assert len(np.unique(w["block3_conv1"][0])) <= 256


def test_npz_round_trip(tmp_path):
    w = {name: (np.zeros((3, 3, 1, 1), np.float32), np.ones(1, np.float32)) for name in weights.CONV_LAYERS}
    weights.save_npz(w, tmp_path / "w.npz")
    back = weights.read_npz(tmp_path / "w.npz")
    assert back["block2_conv1"][1][0] == 1.0


def test_missing_weights_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NST_WEIGHTS", raising=False)
    with pytest.raises(WeightsError, match="nst_core.weights fetch"):
        weights.load_weights("auto")


# --- check_source: cheap, before any work, without TensorFlow -------------------------------------

def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda d: d / "missing.npz", "no such weights file"),
    (lambda d: d, "is a directory"),
    (lambda d: _write(d / "empty.npz", b""), "empty file"),
    (lambda d: _write(d / "text.npz", b"hello"), "not a .npz archive"),
    (lambda d: _write(d / "text.h5", b"hello world"), "not an HDF5 file"),
    (lambda d: _write(d / "model.keras", b"PK\x03\x04 a zip"), "a zip archive"),
    (lambda d: _write(d / "weights.bin", b"not the codebook"), "sha256 differs"),
])
def test_check_source_refuses_a_bad_path_naming_it(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(InputError, match=needle) as e:
        weights.check_source(str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_check_source_refuses_an_npz_that_is_not_the_cache(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(InputError, match="not a converted VGG19 weights cache"):
        weights.check_source(str(path))
    w = {name: (np.zeros((3, 3, 1, 1), np.float32), np.ones(1, np.float32)) for name in weights.CONV_LAYERS}
    weights.save_npz(w, tmp_path / "ok.npz")
    weights.check_source(str(tmp_path / "ok.npz"))  # a well-formed cache passes


def test_check_source_auto(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NST_WEIGHTS", raising=False)
    with pytest.raises(WeightsError, match="nst_core.weights fetch"):
        weights.check_source("auto")
    monkeypatch.setenv("NST_WEIGHTS", str(tmp_path / "gone.h5"))
    with pytest.raises(InputError, match="NST_WEIGHTS=.*gone.h5: no such weights file"):
        weights.check_source("auto")
    weights.check_source("imagenet")  # a download can only be tried


def test_check_source_accepts_the_real_weights():
    if not (weights.cache_dir() / weights.CACHE_NAME).is_file():
        pytest.skip("weights not fetched (run `make weights`)")
    weights.check_source("auto")
    weights.check_source(str(weights.cache_dir() / weights.CACHE_NAME))
    if (weights.cache_dir() / weights.CODEBOOK_NAME).is_file():
        weights.check_source(str(weights.cache_dir() / weights.CODEBOOK_NAME))


def test_check_source_does_not_import_tensorflow(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from nst_core import weights\n"
            "try:\n    weights.check_source(sys.argv[1])\nexcept Exception as e:\n    print(e)\n"
            "sys.exit(3 if 'tensorflow' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.npz")], capture_output=True, text=True,
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and "no such weights file" in proc.stdout, proc.stderr
