"""The VGG19 weights reader: sha256 first, then an allow-list unpickler; nothing else runs."""

import io
import pickle
import struct

import numpy as np
import pytest

from nst_core import weights
from nst_core.errors import WeightsError


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
