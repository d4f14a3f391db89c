"""The one-line progress display of nst-stylize and nst-train-style (no dependency: tqdm is not installed)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

BAR_WIDTH = 24


class ProgressBar:
    """``[####....] step/total TEXT 12.3s (eta 4s)`` on stderr.

    On a terminal the line is redrawn in place; in a log (not a tty) one line is written every
    ``1/lines`` of the run, on the first and last step, and whenever ``update(..., mark=True)``.
    """

    def __init__(self, total: int, *, quiet: bool = False, lines: int = 10, eta: bool = True,
                 stream: TextIO | None = None):
        self.total, self.quiet, self.eta = max(1, total), quiet, eta
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = max(1, self.total // max(1, lines))
        self.t0 = time.perf_counter()
        self.drawn = False

    def update(self, step: int, text: str, *, mark: bool = False) -> None:
        if self.quiet:
            return
        if not self.tty and not (mark or step % self.every == 0 or step in (1, self.total)):
            return
        done = min(BAR_WIDTH, int(BAR_WIDTH * step / self.total))
        elapsed = time.perf_counter() - self.t0
        tail = f"{elapsed:.1f}s"
        if self.eta and 0 < step < self.total:
            tail += f" (eta {elapsed / step * (self.total - step):.0f}s)"
        line = f"[{'#' * done}{'.' * (BAR_WIDTH - done)}] {step}/{self.total} {text} {tail}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)  # \x1b[K: clear what a longer previous line left
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """End the redrawn line (call before printing anything else)."""
        if self.tty and self.drawn and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False


def losses_text(entry: dict[str, Any], total: bool = False) -> str:
    """``content 0.512 style 0.0312 tv 0.0040`` (with ``loss`` first when ``total``)."""
    text = f"content {entry['content']:.3f} style {entry['style']:.4f} tv {entry['tv']:.4f}"
    return f"loss {entry['total']:.4f} {text}" if total else text


def tiles_text(tiles: Any) -> str:
    """A trace entry's ``tiles`` as shown: ``tiles 4``, ``tiles 2x3`` for (rows, cols), else as given."""
    if isinstance(tiles, (list, tuple)) and len(tiles) == 2 and all(isinstance(t, int) for t in tiles):
        return f"tiles {tiles[0]}x{tiles[1]}"
    return f"tiles {tiles}"


def scale_text(entry: dict[str, Any], num_scales: int) -> str:
    """``scale 2/3 256x171`` (width x height), ``refine`` on a shallow final scale, tiles when tiled."""
    text = f"scale {int(entry.get('scale', 0)) + 1}/{num_scales} {entry['width']}x{entry['height']}"
    if entry.get("stage") == "refine":
        text += " refine"
    if entry.get("tiles") not in (None, 0, 1, [1, 1], (1, 1)):
        text += " " + tiles_text(entry["tiles"])
    return text
