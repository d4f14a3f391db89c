"""Manifest parsing: every row becomes exactly one Pair or RowError with a clear reason; whole-file problems raise."""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nst_core import StyleOptions
from pipeline.manifest import ManifestError, Pair, RowError, build_pair, check_head, check_id, cross, parse

BASE = StyleOptions(size=48, steps=3, coarse_steps=2, min_size=24)


def rows(text: str | bytes, name: str = "/data/m.csv") -> list[Pair | RowError]:
    data = text.encode() if isinstance(text, str) else text
    return list(parse(data, name, BASE))


def test_csv_rows_resolve_relative_paths_and_apply_overrides():
    items = rows("id,content,style,size,steps,seed\n"
                 "a,c/x.jpg,s/y.jpg,64,5,7\n"
                 "b,/abs/x.jpg,gs://bucket/y.jpg,,,\n")
    a, b = items
    assert isinstance(a, Pair) and isinstance(b, Pair)
    assert (a.id, a.line, a.content, a.styles) == ("a", 2, "/data/c/x.jpg", ("/data/s/y.jpg",))
    assert (a.options.size, a.options.steps, a.options.seed) == (64, 5, 7)
    assert (b.content, b.styles, b.options) == ("/abs/x.jpg", ("gs://bucket/y.jpg",), BASE)  # empty cell: default


def test_gs_manifest_resolves_relative_paths_in_its_bucket_folder():
    (pair,) = rows("content,style\nimg/../c.jpg,s.jpg\n", name="gs://bkt/runs/m.csv")
    assert pair.content == "gs://bkt/runs/c.jpg" and pair.styles == ("gs://bkt/runs/s.jpg",)


def test_row_init_image_resolves_like_content_and_style():
    a, b = rows("id,content,style,init\na,c.jpg,s.jpg,starts/x.png\nb,c.jpg,s.jpg,noise\n", name="gs://bkt/r/m.csv")
    assert a.options.init == "gs://bkt/r/starts/x.png" and b.options.init == "noise"


def test_id_defaults_to_readable_stems_with_a_hash_only_where_rows_collide():
    one = rows("content,style\nshots/cat.jpg,art/starry night.jpg\n")[0]
    assert one.id == "cat_starry-night" and one.derived_id
    assert rows("content,style\nshots/cat.jpg,art/starry night.jpg\n")[0].id == one.id  # stable
    a, b, c, d = rows("id,content,style,steps\n,a/cat.jpg,s.jpg,\n,b/cat.jpg,s.jpg,\n,a/cat.jpg,s.jpg,4\n"
                      ",dog.png,s.jpg,\n")
    assert {a.id, b.id, c.id} == {f"cat_s-{p.fingerprint[:8]}" for p in (a, b, c)} and len({a.id, b.id, c.id}) == 3
    assert d.id == "dog_s"
    given, derived = rows("id,content,style\ncat_s,x.jpg,y.jpg\n,cat.jpg,s.jpg\n")
    assert given.id == "cat_s" and derived.id == f"cat_s-{derived.fingerprint[:8]}"
    blend = rows(json.dumps({"content": "c.jpg", "style": ["s1.jpg", "s2.jpg"]}) + "\n", "/d/m.jsonl")[0]
    assert blend.id == "c_s1+s2"
    odd = rows("content,style\n\u202e<b>..x.jpg,.hidden\n")[0]
    assert check_id(odd.id) == odd.id == "b-.x_hidden"


def test_repeated_rows_and_ids_say_which_line_came_first():
    _, rep, _, dup = rows("id,content,style\n,c.jpg,s.jpg\n,c.jpg,s.jpg\nk,x.jpg,s.jpg\nk,y.jpg,s.jpg\n")
    assert isinstance(rep, RowError) and rep.reason == "duplicate row: the same content, style and options as line 2"
    assert isinstance(dup, RowError) and dup.reason == "duplicate id 'k': line 4 has it already"


def test_unparseable_rows_keep_their_raw_text():
    bad_json = rows('{"content": "c.jpg", "style": \n', "/d/m.jsonl")[0]
    assert isinstance(bad_json, RowError) and bad_json.row == '{"content": "c.jpg", "style":'
    short = rows("id,content,style\nk,c.jpg\n")[0]
    assert isinstance(short, RowError) and short.row == "k,c.jpg"


@pytest.mark.parametrize("header, reason", [
    ("content,style,stpes", "unknown column(s) 'stpes'"),
    ("content,style,precision", "column(s) precision are set for the whole run"),
])
def test_header_with_a_column_no_row_can_set_fails_the_manifest(tmp_path, header, reason):
    text = f"{header}\nc.jpg,s.jpg,\n"
    with pytest.raises(ManifestError, match=re.escape(reason)):
        rows(text)
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ManifestError, match=re.escape(reason)):
        check_head(str(tmp_path / "m.csv"))


def test_jsonl_rows_with_style_blend_list():
    text = (json.dumps({"id": "j1", "content": "c.jpg", "style": ["s1.jpg", "s2.jpg"], "style_blend": [1, 3]})
            + "\n\n" + json.dumps({"content": "c.jpg", "style": "s.jpg", "content_weight": 2}) + "\n")
    a, b = rows(text, "/d/m.jsonl")
    assert a.styles == ("/d/s1.jpg", "/d/s2.jpg") and a.options.style_blend == (1.0, 3.0)
    assert b.line == 3 and b.options.content_weight == 2.0


@pytest.mark.parametrize("line, reason", [
    ("ok,c.jpg", "field(s)"),                          # missing column
    ("ok,c.jpg,s.jpg,5,extra", "field(s)"),           # extra column
    ("ok,,s.jpg,5", "content: missing or empty"),
    ("ok,c.jpg,  ,5", "style: missing or empty"),
    ("ok,c.jpg,s.jpg,0", "size"),                     # below the minimum
    ("ok,c.jpg,s.jpg,nan", "size"),
    ("ok,c.jpg,s.jpg,big", "size"),
    ("a/b,c.jpg,s.jpg,", "path separators"),
    ("a\\b,c.jpg,s.jpg,", "path separators"),
    ("..,c.jpg,s.jpg,", "'..'"),
    ("x..y,c.jpg,s.jpg,", "'..'"),
])
def test_bad_csv_rows_fail_alone_with_a_reason(line, reason):
    good, bad = rows(f"id,content,style,size\ngood,c.jpg,s.jpg,\n{line}\n")
    assert isinstance(good, Pair)
    assert isinstance(bad, RowError) and bad.line == 3 and reason in bad.reason, bad.reason


@pytest.mark.parametrize("column, value, reason", [
    ("style_weight", "-1", "style_weight"),
    ("content_weight", "nan", "content_weight"),
    ("tv_weight", "inf", "tv_weight"),
    ("stpes", "4", "unknown column"),
    ("precision", "float32", "whole run"),
    ("optimizer", "sgd", "optimizer"),
])
def test_bad_override_values(column, value, reason):
    (bad,) = rows(json.dumps({"content": "c.jpg", "style": "s.jpg", column: value}) + "\n", "/d/m.jsonl")
    assert isinstance(bad, RowError) and reason in bad.reason, bad.reason


def test_non_utf8_bytes_fail_only_their_row():
    data = b"id,content,style\nok,c.jpg,s.jpg\nbad,c\xff\xfe.jpg,s.jpg\nok2,c.jpg,s2.jpg\n"
    ok, bad, ok2 = rows(data)
    assert isinstance(ok, Pair) and isinstance(ok2, Pair)
    assert isinstance(bad, RowError) and "UTF-8" in bad.reason and "\\xff" in json.dumps(bad.row)
    jsonl = b'{"content": "c.jpg", "style": "s.jpg"}\n{"content": "c\xff.jpg", "style": "s.jpg"}\n'
    good, bad = rows(jsonl, "/d/m.jsonl")
    assert isinstance(good, Pair) and isinstance(bad, RowError) and "UTF-8" in bad.reason


def test_jsonl_bad_lines():
    text = '{"content": "c.jpg", "style": "s.jpg", "size": NaN}\n[1, 2]\n{broken\n{"content": 3, "style": "s"}\n'
    items = rows(text, "/d/m.jsonl")
    assert all(isinstance(i, RowError) for i in items)
    assert ["size" in items[0].reason, "JSON object" in items[1].reason, "not valid JSON" in items[2].reason,
            "content" in items[3].reason] == [True] * 4


def test_duplicate_ids_and_rows_keep_the_first():
    items = rows("id,content,style\nx,c.jpg,s.jpg\nx,d.jpg,s.jpg\n,c.jpg,s.jpg\n,c.jpg,s.jpg\n")
    assert [type(i).__name__ for i in items] == ["Pair", "RowError", "Pair", "RowError"]
    assert "duplicate id 'x': line 2 has it already" in items[1].reason
    assert "duplicate row" in items[3].reason and "line 4" in items[3].reason


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("\n\n", "empty"),
    ("content,style\n", "no rows"),
    ("content,style\n\n# only a comment\n", "no rows"),
    ("image,painting\na,b\n", "header must name"),
    ("content,style,style\na,b,c\n", "appear twice"),
])
def test_whole_manifest_problems_raise(text, message):
    with pytest.raises(ManifestError, match=message):
        rows(text)


def test_check_head_names_the_manifest(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ManifestError, match=f"{missing}: not found"):
        check_head(str(missing))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManifestError, match="empty.csv: empty"):
        check_head(str(empty))
    header_only = tmp_path / "h.csv"
    header_only.write_text("id,content,style\n")
    with pytest.raises(ManifestError, match="h.csv: no rows"):
        check_head(str(header_only))
    good = tmp_path / "g.csv"
    good.write_text("content,style\na,b\n")
    check_head(str(good))


def test_check_id():
    assert check_id("sku-123_v2.final") == "sku-123_v2.final"
    for bad in ("", "a/b", ".hidden", "a..b", " pad", "x" * 200, "tab\there", "c:d"):
        with pytest.raises(ValueError):
            check_id(bad)


def test_cross_mode_pairs_every_combination():
    items = list(cross(["/c/1.jpg", "/c/2.jpg"], ["/s/a.jpg", "/s/b.jpg", "/s/c.jpg"], BASE))
    assert [i.line for i in items] == list(range(1, 7))
    assert len({i.id for i in items}) == 6
    assert {(i.content, i.styles[0]) for i in items} == {(c, s) for c in ("/c/1.jpg", "/c/2.jpg")
                                                          for s in ("/s/a.jpg", "/s/b.jpg", "/s/c.jpg")}


cell = st.one_of(st.text(max_size=12), st.sampled_from(["0", "-1", "nan", "1e9", "64", "..", "a/b", "", " "]))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "content", "style", "size", "steps", "seed", "style_weight",
                                        "bogus", "weights"]), cell, max_size=7))
def test_any_row_becomes_exactly_one_pair_or_error(row):
    item = build_pair(row, 2, "/base", BASE)
    assert isinstance(item, (Pair, RowError))
    if isinstance(item, Pair):
        assert "/" not in item.id and ".." not in item.id and item.id
        assert os.path.isabs(item.content)
    else:
        assert item.reason and item.line == 2
        json.dumps(item.row)  # errors.jsonl can always hold the row


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parser(data):
    body = b"id,content,style\nfirst,c.jpg,s.jpg\n" + data
    try:
        items = list(parse(body, "/d/m.csv", BASE))
    except ManifestError:
        return
    assert isinstance(items[0], Pair) or items[0].line == 2
    assert all(isinstance(i, (Pair, RowError)) for i in items)
    assert len({i.line for i in items}) == len(items)
