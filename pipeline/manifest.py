"""Manifest rows -> Pair | RowError: every row becomes exactly one of the two, never an exception.

A bad row (missing or empty field, unknown or engine-only column, out-of-range or non-finite
value, bad or duplicate id, bytes that are not UTF-8) is reported with its line number and
reason, and the other rows carry on.  Only problems with the manifest as a whole (missing,
empty, no ``content``/``style`` header) raise :class:`ManifestError` and fail the run.
An empty override cell means "use the run's value" (sparse CSV columns); an empty id means
"derive it": ``<content stem>_<style stem>``, plus ``-<8 hex of the fingerprint>`` where another row of
the manifest would get the same name (same stems in other folders, or other options).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nst_core import InputError, StyleOptions
from nst_core.options import FIELD_SCOPES, PAIR_FIELDS
from pipeline import storage

ID_MAX_LEN = 120
RESERVED = ("id", "content", "style", "mask")
MASK_FIELDS = ("{stem}", "{name}")  # what --masks may name of each content file
_BAD_ID_CHARS = re.compile(r'[/\\<>:"|?*\x00-\x1f\x7f]')
_SURROGATE = re.compile(r"[\udc80-\udcff]")
# Slashes that are not '/' or '\\' but read as one (NFKC folds the full-width ones; these it does not).
_SLASH_LOOKALIKES = "\u2044\u2215\u2216\u29f5\u29f8\u29f9\ufe68"
_INVISIBLE = ("Cc", "Cf", "Co", "Cs", "Zl", "Zp")  # control, format (bidi, zero-width), private, separators
HEAD_BYTES = 65536
RAW_ROW_CHARS = 500  # of an unparseable row's text kept in its error
STEM_CHARS = 40  # of each file stem in a derived id
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_NO_OPTIONS = StyleOptions()


class ManifestError(ValueError):
    """The manifest as a whole is unusable; the run fails with this message."""


@dataclass(frozen=True)
class Pair:
    """One unit of work: content x style(s) with its resolved options and output id."""

    id: str
    line: int
    content: str
    styles: tuple[str, ...]
    options: StyleOptions
    fingerprint: str  # what decides the output; a stored metrics file with another one is stale
    row: dict[str, Any] = field(default_factory=dict, compare=False)
    derived_id: bool = False  # the id was made from the file names, not given by the row
    mask: str | None = None  # greyscale image of where to stylize (white) and keep the content (black)


@dataclass(frozen=True)
class RowError:
    """A row that cannot be stylized, and why."""

    line: int
    reason: str
    row: dict[str, Any] | str = ""
    id: str = ""
    stage: str = "parse"


def fingerprint(content: str, styles: Iterable[str], options: StyleOptions, mask: str | None = None) -> str:
    fields: dict[str, Any] = {"content": content, "styles": list(styles), "options": options.stable_hash()}
    if mask:  # only when set: the fingerprints of pairs without a mask stay as they were
        fields["mask"] = mask
    if options.image_format != "png":  # png outputs keep the fingerprints they had before formats existed
        fields["encoding"] = f"{options.image_format}:{options.image_quality}"
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def check_id(value: str) -> str:
    """A user-given id, safe as a file name on every filesystem and in gs://; InputError otherwise."""
    if not value:
        raise InputError("id: empty")
    # Judge the NFKC form too: a full-width '／' or '．．' becomes '/' or '..' for any tool that normalizes.
    folded = unicodedata.normalize("NFKC", value)
    if _BAD_ID_CHARS.search(folded) or any(c in _SLASH_LOOKALIKES for c in folded):
        raise InputError(f"id {value!r}: path separators, control characters and <>:\"|?* are not allowed")
    if any(unicodedata.category(c) in _INVISIBLE for c in value):
        raise InputError(f"id {value!r}: invisible, bidi-control or line-separator characters are not allowed")
    if ".." in folded or folded.startswith(".") or value != value.strip() or folded != folded.strip():
        raise InputError(f"id {value!r}: must not contain '..', start with '.' or have surrounding spaces")
    if len(value) > ID_MAX_LEN:
        raise InputError(f"id {value[:20]!r}...: longer than {ID_MAX_LEN} characters")
    return value


def _printable(row: dict[str, Any]) -> dict[str, Any]:
    """The row as JSON can carry it: undecodable bytes shown as \\xNN escapes."""
    def fix(v: Any) -> Any:
        if isinstance(v, str) and _SURROGATE.search(v):
            return v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return v
    return {fix(k): fix(v) for k, v in row.items()}


def _nonempty(v: Any) -> bool:
    return v is not None and not (isinstance(v, str) and not v.strip())


def build_pair(row: dict[str, Any], line: int, base_dir: str, base: StyleOptions) -> Pair | RowError:
    """One manifest row (column -> value) to a Pair, or a RowError saying what is wrong with it."""
    shown = {k: storage.redact(v) if isinstance(v, str) else v for k, v in _printable(row).items()}
    try:
        for k, v in row.items():
            if any(isinstance(x, str) and _SURROGATE.search(x) for x in (k, v)):
                name, value = _printable({k: v}).popitem()
                raise InputError(f"column {name!r}: {value!r} holds bytes that are not valid UTF-8")
        content = row.get("content")
        if not _nonempty(content):
            raise InputError("content: missing or empty")
        if not isinstance(content, str):
            raise InputError(f"content: expected a path, got {type(content).__name__}")
        style = row.get("style")
        styles = style if isinstance(style, list) else [style]
        if not styles or not all(_nonempty(s) for s in styles):
            raise InputError("style: missing or empty")
        if not all(isinstance(s, str) for s in styles):
            raise InputError("style: expected a path or a list of paths")
        overrides = {k: v for k, v in row.items() if k not in RESERVED and _nonempty(v)}
        unknown = sorted(k for k in overrides if k not in FIELD_SCOPES)
        if unknown:
            raise InputError(f"unknown column(s) {', '.join(map(repr, unknown))}; a row may set id, content, "
                             f"style, mask and {', '.join(PAIR_FIELDS)}")
        engine_only = sorted(k for k in overrides if k in FIELD_SCOPES and FIELD_SCOPES[k] != "pair")
        if engine_only:
            raise InputError(f"{', '.join(engine_only)}: set for the whole run (--{engine_only[0]}), not per row")
        options = StyleOptions.from_dict(overrides, base=base)
        if "init" in overrides and options.init_path:  # a row's start image: resolved like content and style
            options = options.replace(init=storage.resolve(base_dir, options.init_path))
        mask = row.get("mask")
        if _nonempty(mask) and not isinstance(mask, str):
            raise InputError(f"mask: expected a path, got {type(mask).__name__}")
        mask = storage.resolve(base_dir, mask) if _nonempty(mask) else None
        content = storage.resolve(base_dir, content)
        styles = tuple(storage.resolve(base_dir, s) for s in styles)
        named = zip(("content", *["style"] * len(styles), "mask"), (content, *styles, mask))
        for name, path in named:
            if path is not None and not storage.supported(path):
                raise InputError(f"{name} {storage.redact(path)}: no filesystem for this kind of location "
                                 "(use a local path or gs://)")
        fp = fingerprint(content, styles, options, mask)
        raw_id = row.get("id")
        if _nonempty(raw_id):
            if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
                raise InputError(f"id: expected text, got {type(raw_id).__name__}")
            pair_id = check_id(str(raw_id))
        else:
            pair_id = readable_id(content, styles)
    except InputError as e:
        rid = row.get("id") if isinstance(row.get("id"), str) else ""
        return RowError(line=line, reason=storage.redact(str(e)), row=shown, id=_printable({"i": rid or ""})["i"])
    return Pair(id=pair_id, line=line, content=content, styles=styles, options=options, fingerprint=fp, row=shown,
                derived_id=not _nonempty(raw_id), mask=mask)


def _stem(path: str) -> str:
    name = storage.basename(path)
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    slug = re.sub(r"\.{2,}", ".", _NOT_ID_CHARS.sub("-", unicodedata.normalize("NFKC", stem))).strip(".-_")
    return slug[:STEM_CHARS].rstrip(".-_") or "image"


def readable_id(content: str, styles: Iterable[str]) -> str:
    """``<content stem>_<style stem>[+<style stem>...]`` in safe characters (what nst-stylize names files)."""
    return f"{_stem(content)}_{'+'.join(_stem(s) for s in styles)}"


def unique_ids(items: list[Pair | RowError]) -> list[Pair | RowError]:
    """Derived ids made unique: where two rows would get the same readable id (or a row's is another row's
    own id), each derived one of them gets ``-`` and 8 hex of its fingerprint."""
    names = Counter(i.id for i in items if isinstance(i, Pair))
    out: list[Pair | RowError] = []
    for item in items:
        if isinstance(item, Pair) and item.derived_id and names[item.id] > 1:
            item = dataclasses.replace(item, id=f"{item.id}-{item.fingerprint[:8]}")
        out.append(item)
    return out


def check_header(header: list[str], name: str) -> None:
    """A CSV header names content and style once each, and no column a row cannot set (ManifestError)."""
    missing = [c for c in ("content", "style") if c not in header]
    if missing:
        raise ManifestError(f"manifest {name}: the header must name the columns content and style "
                            f"(found: {', '.join(header)})")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise ManifestError(f"manifest {name}: column(s) {', '.join(dupes)} appear twice in the header")
    unknown = [c for c in header if c not in RESERVED and c not in FIELD_SCOPES]
    if unknown:
        raise ManifestError(f"manifest {name}: unknown column(s) {', '.join(map(repr, unknown))}; a row may set "
                            f"id, content, style, mask and {', '.join(PAIR_FIELDS)}")
    engine_only = [c for c in header if c in FIELD_SCOPES and FIELD_SCOPES[c] != "pair"]
    if engine_only:
        raise ManifestError(f"manifest {name}: column(s) {', '.join(engine_only)} are set for the whole run "
                            f"(--{engine_only[0]}), not per row")


def _header(cells: list[str]) -> list[str]:
    return [c.strip().lower().replace("-", "_") for c in cells]


def _raw(text: str) -> str:
    return text if len(text) <= RAW_ROW_CHARS else text[:RAW_ROW_CHARS] + "..."


def _csv_rows(text: str, name: str) -> Iterator[tuple[int, dict[str, Any] | tuple[str, str]]]:
    """(line, column->value) per data row; (reason, raw text) instead of the dict is that row's error."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, (f"unreadable CSV row ({e})", "")
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = _header(cells)
            check_header(header, name)
            continue
        if len(cells) != len(header):
            yield line, (f"has {len(cells)} field(s) but the header has {len(header)} "
                         f"({', '.join(header)}): missing or extra columns", _raw(",".join(cells)))
            continue
        yield line, dict(zip(header, cells))
    if header is None:
        raise ManifestError(f"manifest {name}: empty (no header row)")


def _jsonl_rows(data: bytes) -> Iterator[tuple[int, dict[str, Any] | tuple[str, str]]]:
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip() or raw.lstrip().startswith(b"#"):
            continue
        text = _raw(raw.decode("utf-8", "backslashreplace").strip())
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield number, (f"bytes that are not valid UTF-8 ({e.reason} at byte {e.start})", text)
            continue
        except json.JSONDecodeError as e:
            yield number, (f"not valid JSON ({e.msg} at column {e.colno})", text)
            continue
        if not isinstance(obj, dict):
            yield number, (f"expected a JSON object, got {type(obj).__name__}", text)
            continue
        yield number, {str(k).strip().lower().replace("-", "_"): v for k, v in obj.items()}


def is_jsonl(name: str, data: bytes) -> bool:
    if name.lower().endswith((".jsonl", ".ndjson", ".json")):
        return True
    if name.lower().endswith((".csv", ".tsv", ".txt")):
        return False
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def parse(data: bytes, name: str, base: StyleOptions, base_dir: str | None = None) -> Iterator[Pair | RowError]:
    """Every data row of a manifest file as a Pair or RowError, duplicates of an earlier id as errors."""
    yield from _checked_rows(data, name, base, base_dir)


def parse_lines(data: bytes, name: str, base: StyleOptions, lines: tuple[int, int]) -> tuple[list[Pair | RowError],
                                                                                             int]:
    """(the rows on manifest lines first..last, as :func:`parse` gives them, checked against every row of the
    file; the number of rows in the whole file)."""
    rows = _checked_rows(data, name, base, None, lines)
    return [r for r in rows if lines[0] <= r.line <= lines[1]], len(rows)


def _checked_rows(data: bytes, name: str, base: StyleOptions, base_dir: str | None = None,
                  lines: tuple[int, int] | None = None) -> list[Pair | RowError]:
    if not data.strip():
        raise ManifestError(f"manifest {name}: empty file")
    base_dir = base_dir if base_dir is not None else storage.dirname(name)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if is_jsonl(name, data):
        rows = _jsonl_rows(data)
    else:
        rows = _csv_rows(data.decode("utf-8", "surrogateescape"), name)
    items: list[Pair | RowError] = []
    for line, row in rows:
        if isinstance(row, tuple):
            reason, raw = row
            items.append(RowError(line=line, reason=reason, row=raw))
        else:
            pair = build_pair(row, line, base_dir, base)
            if lines and not lines[0] <= line <= lines[1] and isinstance(pair, Pair):
                pair = _seen(pair)
            items.append(pair)
    if not items:
        raise ManifestError(f"manifest {name}: no rows (only a header, blank lines or comments)")
    return list(_refuse_duplicates(unique_ids(_refuse_repeated_rows(items))))


def _seen(pair: Pair) -> Pair:
    """A row outside the lines asked for, as little as the duplicate checks need of it (a sub-run's reader
    holds one per row of the whole manifest)."""
    return Pair(id=pair.id, line=pair.line, content="", styles=(), options=_NO_OPTIONS,
                fingerprint=pair.fingerprint, derived_id=pair.derived_id)


def _refuse_repeated_rows(items: list[Pair | RowError]) -> list[Pair | RowError]:
    """A row with no id of its own that repeats an earlier one (same content, style and options) is an error."""
    first: dict[str, int] = {}
    out: list[Pair | RowError] = []
    for item in items:
        if isinstance(item, Pair) and item.derived_id:
            line = first.setdefault(item.fingerprint, item.line)
            if line != item.line:
                item = RowError(line=item.line, reason=f"duplicate row: the same content, style and options as "
                                f"line {line}", row=item.row, id=item.id)
        out.append(item)
    return out


def _refuse_duplicates(items: list[Pair | RowError]) -> Iterator[Pair | RowError]:
    """A row whose id an earlier row already has is an error (a derived id never collides: see unique_ids)."""
    first: dict[str, int] = {}
    for item in items:
        if isinstance(item, Pair):
            line = first.setdefault(item.id, item.line)
            if line != item.line:
                item = RowError(line=item.line, reason=f"duplicate id {item.id!r}: line {line} has it already",
                                row=item.row, id=item.id)
        yield item


def mask_path(pattern: str, content: str) -> str:
    """The mask of ``content`` that ``--masks`` names: ``{stem}`` is the content's file name without its
    extension, ``{name}`` with it (``masks/{stem}.png``); a pattern naming neither is every content's mask."""
    name = storage.basename(content)
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return pattern.replace("{stem}", stem).replace("{name}", name)


def cross(contents: list[str], styles: list[str], base: StyleOptions,
          unusable: dict[str, str] | None = None, masks: str | None = None) -> Iterator[Pair | RowError]:
    """Every content x style combination (cross mode), numbered like manifest lines from 1; a file in
    ``unusable`` (path -> reason) makes no combinations but one row error of its own, numbered after them.
    ``masks``: the pattern of each content's mask (:func:`mask_path`)."""
    unusable = unusable or {}
    good_c = [c for c in contents if c not in unusable]
    good_s = [s for s in styles if s not in unusable]
    pairs: list[Pair | RowError] = []
    for c in good_c:
        mask = mask_path(masks, c) if masks else None
        for s in good_s:
            fp = fingerprint(c, (s,), base, mask)
            row = {"content": c, "style": s, **({"mask": mask} if mask else {})}
            pairs.append(Pair(id=readable_id(c, (s,)), line=len(pairs) + 1, content=c, styles=(s,), options=base,
                              fingerprint=fp, row=row, derived_id=True, mask=mask))
    yield from unique_ids(pairs)
    line = len(pairs)
    for role, files, others in (("content", contents, len(good_s)), ("style", styles, len(good_c))):
        for path in files:
            if path in unusable:
                line += 1
                yield RowError(line=line, reason=f"{role} {storage.redact(path)}: {unusable[path]} ({others} "
                               f"combination(s) not made)", row={role: storage.redact(path)}, id="")


def check_head(path: str) -> None:
    """Fail fast, before any worker starts, if the manifest is missing, empty or has no usable header."""
    try:
        if not storage.exists(path):
            raise ManifestError(f"manifest {path}: not found")
        head = storage.read_head(path, HEAD_BYTES)
    except ManifestError:
        raise
    except (OSError, ValueError) as e:
        raise ManifestError(f"manifest {path}: cannot read it ({e})") from None
    if not head.strip():
        raise ManifestError(f"manifest {path}: empty file")
    if not is_jsonl(path, head):
        text = head.decode("utf-8", "surrogateescape").lstrip("\ufeff")
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if len(text) < HEAD_BYTES and len(lines) < 2:
            raise ManifestError(f"manifest {path}: no rows (only a header, blank lines or comments)")
        check_header(_header(next(csv.reader([lines[0]]))), path)
