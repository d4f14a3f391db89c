"""Freed memory is reused once TensorFlow is imported through nst_core, not faulted in again every step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# A fresh process imports TensorFlow the engine's way, then allocates, touches and frees a 96 MB block
# (like a large activation) in the main thread and in another, and counts the page faults of doing it again.
# malloc and memset directly: numpy asks for huge pages on large arrays, which would hide the 4 KB faults
# that TensorFlow's tensors take.
PROBE = """
import ctypes, json, resource, threading
from nst_core.tfimport import import_tensorflow
from nst_core.allocator import keep_freed_memory
import_tensorflow()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = %d
def block():
    p = libc.malloc(SIZE)
    ctypes.memset(p, 1, SIZE)  # every page touched
    libc.free(p)
def faults(thread):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    if thread:  # as TensorFlow's threads allocate: above 64 MB, glibc maps a thread's block outside its arena
        t = threading.Thread(target=block)
        t.start()
        t.join()
    else:
        block()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
result = {"kept": keep_freed_memory()}
for thread in (False, True):
    faults(thread)
    result["thread" if thread else "main"] = faults(thread)
print(json.dumps(result))
"""
SIZE = 96 * 2**20  # above glibc's largest mmap threshold (32 MB) and a thread arena's heap (64 MB)
PAGES = SIZE // 4096


def probe(**env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE % SIZE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_freed_large_block_is_reused_without_faulting_its_pages_again():
    kept = probe(NST_SYSTEM_MALLOC="0")
    assert kept["kept"] is True
    # a block served again from the heap: no page zeroed anew, from the main thread or another
    assert kept["main"] < PAGES // 10
    assert kept["thread"] < PAGES // 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_nst_system_malloc_leaves_malloc_as_it_is():
    system = probe(NST_SYSTEM_MALLOC="1")
    assert system["kept"] is False
    # glibc maps such a block anew each time: every page faults again
    assert system["main"] >= PAGES // 2
    assert system["thread"] >= PAGES // 2
