"""The one place server JSON is parsed: bounded depth and size, every string cleaned, the
task id found wherever the vendor puts it (issue 11, classes 1, 6 and 7)."""

from __future__ import annotations

import json

import pytest

from nanobanana_widgets.service.answers import (
    UnreadableAnswer,
    parse_json,
    records_in,
    task_id_in,
    task_id_in_text,
)
from nanobanana_widgets.service.protocol import MAX_JSON_DEPTH
from nanobanana_widgets.service.secrets import register_secret


@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
])
def test_deep_nesting_is_unreadable_not_a_recursion_error(raw: bytes) -> None:
    with pytest.raises(UnreadableAnswer, match="nested deeper"):
        parse_json(raw)


def test_nesting_up_to_the_limit_is_fine() -> None:
    raw = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(raw) is not None


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"\xff\xfe\x00", b"1" * 5000, b"nope"])
def test_what_is_not_json_is_unreadable(raw: bytes) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_json(raw)


def test_size_is_bounded() -> None:
    with pytest.raises(UnreadableAnswer, match="larger than"):
        parse_json(b'"' + b"a" * 100 + b'"', limit=50)


def test_strings_and_keys_are_cleaned() -> None:
    raw = json.dumps({"pro\ud800mpt": "a\udfffb\x00c\x1b[31m\u202e", "n": [float("nan")]})
    value = parse_json(raw.encode())  # NaN is not JSON, though Python writes it: null
    assert value == {"pro\ufffdmpt": "a\ufffdb\ufffdc\ufffd[31m\ufffd", "n": [None]}
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # encodable everywhere


def test_registered_secrets_are_scrubbed_case_insensitively() -> None:
    register_secret("answers-secret-1234")
    value = parse_json(b'{"m": "x ANSWERS-SECRET-1234 y", "answers-secret-1234": 1}')
    assert value == {"m": "x *** y", "***": 1}


def test_invalid_utf8_is_read_with_replacements() -> None:
    assert parse_json(b'{"a": "\xff"}') == {"a": "\ufffd"}


def test_task_id_where_the_vendor_puts_it() -> None:
    assert task_id_in({"task_id": "a"}) == "a"
    assert task_id_in({"data": {"task_id": "b"}}) == "b"
    assert task_id_in({"id": "c"}) == "c"
    assert task_id_in({"task_id": "  "}) is None
    assert task_id_in(["x"]) is None
    assert task_id_in_text(b'garbage {"task_id": "t-9", [[[') == "t-9"
    assert task_id_in_text(b"nothing") is None


def test_lookup_shapes() -> None:
    record = {"id": "t-1", "response": {}}
    assert records_in({"items": [record, 3]}) == [record]
    assert records_in({"data": [record]}) == [record]
    assert records_in({"data": record}) == [record]
    assert records_in(record) == [record]
    assert records_in({"count": 0}) is None
    assert records_in([record]) is None
