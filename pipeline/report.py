"""report.html: a self-contained contact sheet (thumbnails as data: URIs) that opens from disk or gs://.

Thumbnails are embedded rather than linked so the page still works when downloaded alone from a
bucket; links to the full-size images and metrics are relative, for when the folder is local.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
img{max-width:var(--t);max-height:var(--t);display:block}.err{color:#a00}.muted{color:#777;font-size:.85em}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}
"""


def thumbnail(source: bytes | np.ndarray, size: int) -> str | None:
    """A JPEG data: URI of ``source`` (encoded image bytes, an RGB or RGBA array), or None if unreadable;
    transparency is shown on a grey checkerboard."""
    try:
        if isinstance(source, np.ndarray):
            img = Image.fromarray(source.astype(np.uint8), "RGBA" if source.shape[-1] == 4 else "RGB")
        else:
            img = Image.open(io.BytesIO(source))
            img.draft("RGB", (size, size))
        img.thumbnail((size, size))
        img = _on_checkerboard(img) if img.mode in ("RGBA", "LA", "PA", "P") else img.convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
    except Exception:  # a report must not fail because one picture is unreadable
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _on_checkerboard(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    w, h = rgba.size
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // 8 + xx // 8) % 2 == 0)[..., None], 204, 255).astype(np.uint8).repeat(3, axis=2)
    return Image.alpha_composite(Image.fromarray(board).convert("RGBA"), rgba).convert("RGB")


def _img(uri: str | None, alt: str, href: str | None = None) -> str:
    if not uri:
        return f'<span class="muted">{html.escape(alt)}<br>(no preview)</span>'
    tag = f'<img src="{uri}" alt="{html.escape(alt)}" title="{html.escape(alt)}" loading="lazy">'
    return f'<a href="{html.escape(href)}">{tag}</a>' if href else tag


def _num(v: Any) -> str:
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    return f"{v:.4g}"


def render(done: Sequence[dict[str, Any]], errors: Sequence[dict[str, Any]], summary: dict[str, Any],
           sources: dict[str, str | None], thumb_size: int, title: str = "nst-pipeline report") -> str:
    """The page: run summary, one row per finished pair (content, style(s), result, losses), then errors."""
    counts = " &middot; ".join(f"{k} <b>{summary.get(k, 0)}</b>" for k in ("rows", "stylized", "skipped", "errors"))
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           f"<style>:root{{--t:{thumb_size}px}}{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1><p>{counts}</p>",
           f"<p class='muted'>source: {html.escape(str(summary.get('source', '')))} &middot; "
           f"finished {html.escape(str(summary.get('finished', '')))}</p>",
           f"<h2>Pairs ({len(done)})</h2><table><tr><th>#</th><th>id</th><th>content</th><th>style</th>"
           "<th>result</th><th>losses</th></tr>"]
    for rec in done:
        losses = rec.get("losses") or {}
        loss_rows = "<br>".join(f"{k} {_num(losses.get(k))}" for k in ("total", "content", "style", "tv"))
        styles = "".join(_img(sources.get(s), s) for s in rec.get("styles", []))
        out.append(
            f"<tr id='{html.escape(rec['id'])}'><td class='num'>{rec.get('line', '')}</td>"
            f"<td>{html.escape(rec['id'])}<br><span class='muted'>{html.escape(rec.get('status', ''))} &middot; "
            f"{html.escape(rec.get('mode') or 'optimize')}</span></td>"
            f"<td>{_img(sources.get(rec.get('content', '')), rec.get('content', ''))}{_mask(rec, sources)}</td>"
            f"<td>{styles}</td>"
            f"<td>{_img(rec.get('thumb'), rec['id'], rec.get('image'))}</td>"
            f"<td class='num'>{loss_rows}<br><span class='muted'>{rec.get('steps', '-')} steps, "
            f"{_num(rec.get('seconds'))} s &middot; <a href='{html.escape(rec.get('metrics', ''))}'>metrics</a>"
            "</span></td></tr>")
    out.append("</table>")
    out += _networks(done)
    if errors:
        out.append(f"<h2 class='err'>Errors ({len(errors)})</h2><table><tr><th>line</th><th>id</th><th>reason</th>"
                   "<th>row</th></tr>")
        for rec in errors:
            out.append(f"<tr><td class='num'>{rec.get('line', '')}</td><td>{html.escape(str(rec.get('id', '')))}</td>"
                       f"<td class='err'>{html.escape(str(rec.get('reason', '')))}</td>"
                       f"<td class='muted'>{html.escape(str(rec.get('row', '')))}</td></tr>")
        out.append("</table>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _mask(rec: dict[str, Any], sources: dict[str, str | None]) -> str:
    """The pair's mask under its content (a content's own alpha shows as the checkerboard in its thumbnail)."""
    mask = rec.get("mask")
    if not mask:
        return ""
    return (f"<div class='muted'>mask</div><div style='display:inline-block;border:1px solid #bbb'>"
            f"{_img(sources.get(mask), mask)}</div>")


def _networks(done: Sequence[dict[str, Any]]) -> list[str]:
    """Fast mode: one row per style network used, with its training figures and how many pairs it made."""
    used: dict[str, list[Any]] = {}
    for rec in done:
        net = rec.get("network")
        if net:
            used.setdefault(str(net.get("path")), [net.get("training") or {}, 0])[1] += 1
    if not used:
        return []
    out = [f"<h2>Style networks ({len(used)})</h2><table><tr><th>network</th><th>pairs</th><th>training</th></tr>"]
    for path, (t, n) in sorted(used.items()):
        final = t.get("final_losses") or {}
        out.append(f"<tr><td>{html.escape(path)}</td><td class='num'>{n}</td><td class='num'>{t.get('steps', '-')} "
                   f"steps x {t.get('batch_size', '-')} crops of {t.get('crop', '-')} px, {_num(t.get('seconds'))} s, "
                   f"{html.escape(str(t.get('precision', '')))}; final loss {_num(final.get('total'))}</td></tr>")
    out.append("</table>")
    return out
