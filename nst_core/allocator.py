"""Freed memory kept for reuse: glibc's malloc told not to hand large blocks back to the kernel.

glibc serves every block above its mmap threshold (at most 32 MB), and a thread's every block above
64 MB, with a fresh ``mmap`` and unmaps it on ``free``, and trims the heap's free top back to the
kernel.  A step of the engine allocates and frees the same activation-sized tensors every time (a
512x341 px block1 activation is 45 MB), so each step paid for its tensors again in page faults: the
kernel zeroes every page on first touch (benchmarks/RESULTS.md, Quality per second: the allocator).
:func:`keep_freed_memory` sets glibc's documented ``mallopt`` parameters so that such blocks come
from one heap (one arena, no mmap) and stay there once freed (no trimming), to be reused by the next
step.  The price is that a process keeps its peak heap: the engine's memory planner budgets for the
peak anyway.

Set ``NST_SYSTEM_MALLOC=1`` to leave malloc as it is.  Elsewhere than glibc (musl, macOS) it does
nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os

# mallopt(3) parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (an int): never trim the heap's free top


@functools.cache  # once per process (a second call would only set the same values again)
def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse; True if it is in effect."""
    if os.environ.get("NST_SYSTEM_MALLOC", "").strip() not in ("", "0"):
        return False
    try:
        # the symbols the process has loaded, libc's among them (find_library would run ldconfig)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: no mallopt to call
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # One arena: a thread's own arena holds at most 64 MB, and glibc maps a larger block (a 512x512 px
    # activation) outside it whatever M_MMAP_MAX says; small blocks still come from per-thread caches.
    # mallopt returns 1 on success: kept only if every setting took.
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all([bool(mallopt(param, value)) for param, value in settings])
