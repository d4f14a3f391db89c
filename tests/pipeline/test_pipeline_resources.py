"""WorkerResources: one object per process through one Shared handle, loads counted, bounded caches, no lock
held while something loads, and a worker that only skips pairs loads nothing."""

from __future__ import annotations

import threading
import time

import pytest
from apache_beam.utils.shared import Shared
from pipeline_helpers import FAST, copy_images, write_csv

from nst_core import StyleOptions
from pipeline import resources, storage
from pipeline.resources import Limits, LoadOnce, WorkerResources, acquire
from pipeline.run import counters, run


def test_load_once_loads_each_key_once_across_threads_and_bounds_bytes():
    calls: list[str] = []
    gate = threading.Event()

    def slow(key: str) -> bytes:
        calls.append(key)
        gate.wait(5)
        return key.encode() * 10

    cache: LoadOnce[bytes] = LoadOnce(max_bytes=25, size=len)
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("a", lambda: slow("a")))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    assert cache.get("b", lambda: b"b" * 10) == b"b" * 10  # not blocked by "a" loading
    assert time.perf_counter() - t0 < 1.0
    gate.set()
    for t in threads:
        t.join(5)
    assert results == [b"a" * 10] * 4 and calls == ["a"]
    cache.get("c", lambda: b"c" * 10)  # 30 bytes > 25: the least recently used goes
    assert cache.nbytes <= 25 and len(cache) == 2 and cache.loads == 3


def test_a_failed_load_is_not_kept():
    cache: LoadOnce[int] = LoadOnce()
    with pytest.raises(ValueError):
        cache.get("k", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert cache.get("k", lambda: 7) == 7


def test_style_bytes_follow_the_file_and_stay_within_the_limit(tmp_path):
    res = WorkerResources(StyleOptions(), Limits(style_bytes=1000))
    path = tmp_path / "s.png"
    path.write_bytes(b"x" * 600)
    assert res.style_bytes(str(path)) == b"x" * 600
    path.write_bytes(b"y" * 700)  # replaced at the same path: a new stamp, read again
    assert res.style_bytes(str(path)) == b"y" * 700
    assert res._style_bytes.nbytes <= 1000


def test_one_object_per_process_through_one_shared_handle():
    shared = Shared()
    opts = StyleOptions()
    got: list[WorkerResources] = []
    threads = [threading.Thread(target=lambda: got.append(acquire(shared, opts))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(got) == 2 and got[0] is got[1]
    assert acquire(shared, opts.replace(precision="float32")) is not got[0]  # other engine options: another


def test_two_harness_threads_share_one_stylizer_loaded_once():
    shared, opts = Shared(), StyleOptions(precision="float32")
    loaded: list[int] = []
    got: list[resources.Served] = []
    start = threading.Barrier(2)

    def work() -> None:
        start.wait()
        got.append(acquire(shared, opts).stylizer(on_load=lambda: loaded.append(1)))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 2 and got[0] is got[1] and loaded == [1]
    assert got[0].model.style_cache.max_bytes == 128 * 1024 * 1024  # the Gram bound suits a GPU under MPS
    small = WorkerResources(opts, Limits(grams=4 * 1024 * 1024)).stylizer().model
    assert small.style_cache.max_bytes == 4 * 1024 * 1024


@pytest.mark.slow
def test_a_worker_that_only_skips_loads_nothing(tmp_path, image_dir, monkeypatch):
    root = copy_images(image_dir, tmp_path / "cat")
    write_csv(root / "m.csv", ["id,content,style", "a,content/c1.jpg,style/s1.png", "b,content/c2.png,style/s1.png"])
    argv = ["--manifest", str(root / "m.csv"), "--output", str(tmp_path / "out"), *FAST]
    c = counters(run(argv))
    assert (c["model_loads"], c["pairs_stylized"]) == (1, 2)
    built: list[str] = []
    monkeypatch.setattr(resources.Served, "__init__", lambda self, model: built.append("model"))
    c = counters(run(argv))
    assert (c["model_loads"], c["pairs_skipped"]) == (0, 2) and built == []
    assert storage.exists(str(tmp_path / "out" / "images" / "a.png"))
