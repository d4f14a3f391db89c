"""LoadOnce: the LRU behind the Gram cache and the worker's caches, bounded in bytes."""

from __future__ import annotations

from nst_core.cache import LoadOnce


def test_bound_in_bytes_drops_the_least_recently_used_first():
    cache: LoadOnce[bytes] = LoadOnce(max_bytes=100, size=len)
    for key in "abc":
        cache.get(key, lambda k=key: k.encode() * 30)  # 90 bytes
    cache.get("a", lambda: b"never loaded")  # a hit: "a" becomes the most recently used
    cache.get("d", lambda: b"d" * 30)  # 120 bytes: "b", the least recently used, goes
    assert cache.keys() == ["c", "a", "d"] and cache.nbytes == 90
    cache.get("e", lambda: b"e" * 70)  # 160: "c" and "a" go, "d" and "e" fit
    assert cache.keys() == ["d", "e"] and cache.nbytes == 100
    assert (cache.loads, cache.hits) == (5, 1)


def test_a_value_larger_than_the_bound_is_returned_but_not_kept():
    cache: LoadOnce[bytes] = LoadOnce(max_bytes=10, size=len)
    cache.get("small", lambda: b"s" * 5)
    assert cache.get("big", lambda: b"b" * 11) == b"b" * 11
    assert cache.keys() == ["small"] and cache.nbytes == 5  # the big one did not evict the small one


def test_bound_in_entries():
    cache: LoadOnce[int] = LoadOnce(max_entries=2)
    for i in range(4):
        cache.get(i, lambda i=i: i)
    assert cache.keys() == [2, 3]
