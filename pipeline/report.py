"""The QA report: ``report.html`` (an index of bounded size) and ``sheets/NNNN.html`` (contact sheets).

The index holds the run summary, histograms, errors grouped by reason, groups by style and the pairs
most worth a second look; the sheets show every row, a page of manifest lines each.  Pictures are
small WebP files under OUT (``thumbs/<id>.webp``, ``sources/<hash>.webp``) linked relatively, so the
pages open from disk and from a downloaded copy of OUT; nothing needs a server or a script.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

SHEETS = "sheets"
THUMBS = "thumbs"
SOURCES = "sources"
_NAV = re.compile(r"<nav>.*?</nav>", re.S)  # row text is escaped, so only our own navs match

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
img{max-width:var(--t);max-height:var(--t);display:block;
background:repeating-conic-gradient(#ccc 0 25%,#fff 0 50%) 0 0/12px 12px}
.err{color:#a00}.muted{color:#777;font-size:.85em}.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.pics{display:flex;gap:4px}.grid{display:flex;flex-wrap:wrap;gap:10px}.card{width:calc(var(--t) + 20px)}
nav a{margin-right:.6em}svg{display:block}.bar{fill:#4a78b5}.line{fill:none;stroke:#b5524a;stroke-width:1.5}
"""


def thumbnail(source: bytes | np.ndarray, size: int) -> bytes | None:
    """WebP bytes of ``source`` (encoded image bytes, or an RGB/RGBA array) at most ``size`` px a side,
    alpha kept; None if unreadable."""
    try:
        if isinstance(source, np.ndarray):
            arr = source.astype(np.uint8)
            img = Image.fromarray(arr, "RGBA" if arr.ndim == 3 and arr.shape[2] == 4 else "RGB")
        else:
            img = Image.open(io.BytesIO(source))
            img.draft("RGB", (size, size))
            img = img.convert("RGBA" if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info else "RGB")
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="WEBP", quality=75, method=4)
    except Exception:  # noqa: BLE001 - a report must not fail because one picture is unreadable
        return None
    return buf.getvalue()


def thumb_rel(pair_id: str) -> str:
    return f"{THUMBS}/{pair_id}.webp"


def source_rel(path: str) -> str:
    """Where the thumbnail of a content, style or mask file lives under OUT (named by its path's hash)."""
    return f"{SOURCES}/{hashlib.sha256(path.encode()).hexdigest()[:24]}.webp"


def sheet_rel(page: int) -> str:
    return f"{SHEETS}/{page + 1:04d}.html"


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _num(v: Any) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "-"
    return f"{v:.4g}"


def _img(rel: str | None, alt: str, up: str, href: str | None = None) -> str:
    if not rel:
        return f'<span class="muted">{_e(alt)}<br>(no preview)</span>'
    tag = f'<img src="{_e(up + rel)}" alt="{_e(alt)}" title="{_e(alt)}" loading="lazy">'
    return f'<a href="{_e(up + href)}">{tag}</a>' if href else tag


def sparkline(trace: Sequence[float] | None, width: int = 120, height: int = 32) -> str:
    """The loss trace as a small inline SVG polyline (log scale when it spans a decade or more)."""
    values = [v for v in (trace or []) if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(values) < 2:
        return '<span class="muted">no trace</span>'
    if min(values) > 0 and max(values) / min(values) >= 10:
        values = [math.log10(v) for v in values]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    pts = " ".join(f"{i * (width - 2) / (len(values) - 1) + 1:.1f},{height - 1 - (v - lo) / span * (height - 2):.1f}"
                   for i, v in enumerate(values))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="loss trace">'
            f'<polyline class="line" points="{pts}"/></svg>')


def histogram(bins: dict[int, int], per_decade: int, label: str, width: int = 360, height: int = 90) -> str:
    """An SVG bar chart of log-spaced bin counts (bin k holds values in [10^(k/d), 10^((k+1)/d)))."""
    if not bins:
        return f"<p class='muted'>{_e(label)}: no values</p>"
    lo, hi = min(bins), max(bins)
    keys = list(range(lo, hi + 1))
    top = max(bins.values())
    w = (width - 10) / len(keys)
    bars = []
    for i, k in enumerate(keys):
        n = bins.get(k, 0)
        h = 0 if not n else max(1.0, n / top * (height - 20))
        span = f"{10 ** (k / per_decade):.3g} to {10 ** ((k + 1) / per_decade):.3g}"
        bars.append(f'<rect class="bar" x="{5 + i * w:.1f}" y="{height - 15 - h:.1f}" width="{max(1.0, w - 1):.1f}" '
                    f'height="{h:.1f}"><title>{_e(span)}: {n}</title></rect>')
    axis = (f'<text x="5" y="{height - 2}" font-size="10">{10 ** (lo / per_decade):.3g}</text>'
            f'<text x="{width - 5}" y="{height - 2}" font-size="10" text-anchor="end">'
            f'{10 ** ((hi + 1) / per_decade):.3g}</text>')
    return (f"<figure><figcaption>{_e(label)} (log scale, {sum(bins.values())} pairs)</figcaption>"
            f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(label)}">{"".join(bars)}{axis}</svg>'
            "</figure>")


def _head(title: str, thumb_size: int) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>:root{{--t:{thumb_size}px}}{_CSS}</style></head><body>")


def _pictures(rec: dict[str, Any], up: str) -> tuple[str, str, str]:
    """(content [+ mask], style(s), result) cells of one record."""
    content = rec.get("content") or ""
    cells = [_img(source_rel(content) if content else None, content, up)]
    if rec.get("mask"):
        cells.append(_img(source_rel(rec["mask"]), f"mask {rec['mask']}", up))
    styles = "".join(_img(source_rel(s), s, up) for s in rec.get("styles") or [])
    result = _img(rec.get("thumb"), rec.get("id", ""), up, rec.get("image"))
    return f"<div class='pics'>{''.join(cells)}</div>", f"<div class='pics'>{styles}</div>", result


def _losses(rec: dict[str, Any]) -> str:
    losses = rec.get("losses") or {}
    return "<br>".join(f"{k} {_num(losses.get(k))}" for k in ("total", "content", "style", "tv"))


def render_sheet(records: Sequence[dict[str, Any]], page: int, pages: Sequence[int], summary_line: str,
                 thumb_size: int, lines: tuple[int, int]) -> str:
    """One contact sheet: every row of manifest lines ``lines`` (done pairs and errors), in line order."""
    up = "../"
    title = f"lines {lines[0]}-{lines[1]}"
    nav = sheet_nav(page, pages)
    out = [_head(f"nst-pipeline sheet: {title}", thumb_size), nav,
           f"<h1>{_e(title)}</h1><p class='muted'>{_e(summary_line)}</p>",
           "<table><tr><th>line</th><th>id</th><th>content</th><th>style</th><th>result</th><th>losses</th>"
           "<th>loss trace</th></tr>"]
    for rec in records:
        rid = str(rec.get("id") or "")
        anchor = f" id='{_e(rid)}'" if rid else f" id='line-{_e(rec.get('line', ''))}'"
        if rec.get("status") == "error":
            out.append(f"<tr{anchor}><td class='num'>{_e(rec.get('line', ''))}</td><td>{_e(rid)}<br>"
                       f"<span class='muted'>error &middot; {_e(rec.get('stage', ''))}</span></td>"
                       f"<td colspan='5' class='err'>{_e(rec.get('reason', ''))}<br>"
                       f"<span class='muted'>{_e(rec.get('row', ''))}</span></td></tr>")
            continue
        content, styles, result = _pictures(rec, up)
        retried = f" &middot; retried: {_e(rec['retried'])}" if rec.get("retried") else ""
        out.append(f"<tr{anchor}><td class='num'>{_e(rec.get('line', ''))}</td><td>{_e(rid)}<br>"
                   f"<span class='muted'>{_e(rec.get('status', ''))} &middot; {_e(rec.get('mode') or 'optimize')}"
                   f"{retried}</span></td><td>{content}</td><td>{styles}</td><td>{result}</td>"
                   f"<td class='num'>{_losses(rec)}<br><span class='muted'>{_e(rec.get('steps', '-'))} steps, "
                   f"{_num(rec.get('seconds'))} s &middot; <a href='{_e(up + rec.get('metrics', ''))}'>metrics</a>"
                   f"</span></td><td>{sparkline(rec.get('trace'))}</td></tr>")
    out.append("</table>")
    out.append(f"{nav}</body></html>\n")
    return "\n".join(out)


def sheet_nav(page: int, pages: Sequence[int]) -> str:
    """A sheet's links to the index and its neighbours among ``pages`` (every sheet of the run)."""
    up = "../"
    at = pages.index(page) if page in pages else -1
    nav = [f"<a href='{up}report.html'>index</a>"]
    if at > 0:
        nav.append(f"<a href='{up}{sheet_rel(pages[at - 1])}'>&larr; previous</a>")
    if 0 <= at < len(pages) - 1:
        nav.append(f"<a href='{up}{sheet_rel(pages[at + 1])}'>next &rarr;</a>")
    nav.append(f"<span class='muted'>sheet {at + 1} of {len(pages)}</span>")
    return f"<nav>{''.join(nav)}</nav>"


def renav_sheet(html: str, page: int, pages: Sequence[int]) -> str:
    """A sheet written by a sub-run (which knew only its own sheets) with the links of the whole run."""
    return _NAV.sub(lambda _: sheet_nav(page, pages), html)


def _card(rec: dict[str, Any], why: str) -> str:
    content, styles, result = _pictures(rec, "")
    href = sheet_rel(rec["page"]) + "#" + str(rec.get("id") or "")
    return (f"<div class='card'>{result}<a href='{_e(href)}'>{_e(rec.get('id', ''))}</a>"
            f"<div class='muted'>{_e(why)}</div>{sparkline(rec.get('trace'), 100, 24)}</div>")


WORST = (("content", "Highest content loss", lambda r: f"content {_num((r.get('losses') or {}).get('content'))}"),
         ("style", "Highest style loss", lambda r: f"style {_num((r.get('losses') or {}).get('style'))}"),
         ("slowest", "Slowest", lambda r: f"{_num(r.get('seconds'))} s"),
         ("retried", "Retried", lambda r: str(r.get("retried") or "")))


def render_index(summary: dict[str, Any], stats: dict[str, Any], pages: Sequence[tuple[int, int, int, int]],
                 thumb_size: int, title: str = "nst-pipeline report") -> str:
    """The index: ``stats`` from the run's combiner; ``pages`` (page, first line, last line, rows) per sheet."""
    counts = " &middot; ".join(f"{k} <b>{summary.get(k, 0)}</b>" for k in ("rows", "stylized", "skipped", "errors"))
    mark = "<b>balanced</b>" if summary.get("balanced") else "<b class='err'>NOT balanced</b>"
    out = [_head(title, thumb_size), f"<h1>{_e(title)}</h1><p>{counts} &middot; accounting {mark}</p>",
           f"<p class='muted'>source: {_e(summary.get('source', ''))} &middot; output: {_e(summary.get('output', ''))}"
           f" &middot; finished {_e(summary.get('finished', ''))} &middot; images {_e(summary.get('image_format', ''))}"
           f" &middot; orphans {_e(summary.get('orphans', 0))}</p>",
           "<p><a href='metrics.jsonl'>metrics.jsonl</a> &middot; <a href='errors.jsonl'>errors.jsonl</a> &middot; "
           "<a href='summary.json'>summary.json</a></p>", "<h2>Distributions</h2><div class='grid'>"]
    hist = stats.get("hist", {})
    d = stats.get("per_decade", 4)
    out += [histogram(hist.get("content", {}), d, "content loss"), histogram(hist.get("style", {}), d, "style loss"),
            histogram(hist.get("seconds", {}), d, "seconds per pair"), "</div>"]
    out += _worst(stats.get("worst", {}))
    out += _reasons(stats.get("reasons", {}), stats.get("reasons_other", 0))
    out += _styles(stats.get("styles", {}), stats.get("styles_other", 0))
    out += _networks(stats.get("networks", {}))
    out.append(f"<h2>Contact sheets ({len(pages)})</h2><p class='muted'>every row, in manifest order</p><nav>")
    out += [f"<a href='{sheet_rel(p)}' title='{n} rows'>{first}-{last}</a>" for p, first, last, n in pages]
    out.append("</nav></body></html>\n")
    return "\n".join(out)


def _worst(worst: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = []
    for key, heading, why in WORST:
        recs = worst.get(key) or []
        if recs:
            out.append(f"<h2>{_e(heading)} ({len(recs)})</h2><div class='grid'>")
            out += [_card(r, why(r)) for r in recs]
            out.append("</div>")
    return out


def _reasons(reasons: dict[str, dict[str, Any]], other: int) -> list[str]:
    if not reasons:
        return ["<h2>Errors</h2><p>none</p>"]
    total = sum(g["count"] for g in reasons.values()) + other
    out = [f"<h2 class='err'>Errors by reason ({total} rows, {len(reasons)} reasons)</h2>"
           "<table><tr><th>rows</th><th>reason</th><th>examples</th></tr>"]
    for reason, g in sorted(reasons.items(), key=lambda kv: (-kv[1]["count"], kv[0])):
        examples = ", ".join(f"<a href='{_e(sheet_rel(page))}#{_e(rid or f'line-{line}')}'>"
                             f"{_e(rid or f'line {line}')}</a>" for line, rid, page in g["examples"])
        out.append(f"<tr><td class='num'>{g['count']}</td><td class='err'>{_e(reason)}</td><td>{examples}</td></tr>")
    if other:
        out.append(f"<tr><td class='num'>{other}</td><td class='muted'>(further reasons, not listed)</td>"
                   "<td></td></tr>")
    out.append("</table>")
    return out


def _styles(styles: dict[str, dict[str, Any]], other: int) -> list[str]:
    if not styles:
        return []
    out = [f"<h2>By style ({len(styles)}{' listed' if other else ''})</h2><table><tr><th>style</th><th>rows</th>"
           "<th>stylized</th><th>skipped</th><th>errors</th><th>mean content loss</th><th>mean style loss</th>"
           "<th>mean s</th></tr>"]
    for name, g in sorted(styles.items(), key=lambda kv: (-kv[1]["rows"], kv[0])):
        n = g["measured"] or 0

        def mean(k: str, g: dict[str, Any] = g, n: int = n) -> str:
            return _num(g[k] / n) if n else "-"

        # a style no pair was made with may be unreadable: it has no thumbnail
        pics = "".join(_img(source_rel(s), s, "") for s in name.split("\n") if s) if g["rows"] > g["error"] else ""
        out.append(f"<tr><td><div class='pics'>{pics}</div>{_e(name.replace(chr(10), ' + '))}</td>"
                   f"<td class='num'>{g['rows']}</td><td class='num'>{g['stylized']}</td><td class='num'>{g['skipped']}"
                   f"</td><td class='num'>{g['error']}</td><td class='num'>{mean('content')}</td>"
                   f"<td class='num'>{mean('style')}</td><td class='num'>{mean('seconds')}</td></tr>")
    if other:
        out.append(f"<tr><td class='muted'>({other} rows of further styles, not listed)</td></tr>")
    out.append("</table>")
    return out


def _networks(used: dict[str, dict[str, Any]]) -> list[str]:
    """Fast mode: one row per style network used, with its training figures and how many pairs it made."""
    if not used:
        return []
    out = [f"<h2>Style networks ({len(used)})</h2><table><tr><th>network</th><th>pairs</th><th>training</th></tr>"]
    for path, entry in sorted(used.items()):
        t, n = entry.get("training") or {}, entry.get("pairs", 0)
        final = t.get("final_losses") or {}
        out.append(f"<tr><td>{_e(path)}</td><td class='num'>{n}</td><td class='num'>{_e(t.get('steps', '-'))} "
                   f"steps x {_e(t.get('batch_size', '-'))} crops of {_e(t.get('crop', '-'))} px, "
                   f"{_num(t.get('seconds'))} s, {_e(t.get('precision', ''))}; final loss {_num(final.get('total'))}"
                   "</td></tr>")
    out.append("</table>")
    return out
