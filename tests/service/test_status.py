"""Status, progress and failure reasons inferred as the vendor's SDK does (API.md, issue 11
"Fidelity"), and results that keep at most the images asked for."""

from __future__ import annotations

from typing import Any

import pytest

from nanobanana_widgets.service.errors import ContentRefusedError, TaskFailedError
from nanobanana_widgets.service.status import failure_reason, infer_status, progress_of
from nanobanana_widgets.service.types import ImageRequest, TaskRecord

IMAGE = {"data": [{"image_url": "https://cdn.example/x.png", "prompt": "p"}]}


@pytest.mark.parametrize(("record", "status"), [
    # status words outrank the success flag, at any depth (the request echo aside)
    ({"status": "failed", "response": {"success": True, **IMAGE}, "finished_at": 1}, "failed"),
    ({"response": {"state": "REJECTED", "success": True}}, "failed"),
    ({"response": {"success": False, "status": "processing"}}, "pending"),
    ({"state": "queued", "finished_at": 1, "response": {**IMAGE}}, "pending"),
    ({"status": "completed", "response": {**IMAGE}}, "succeeded"),
    ({"status": "succeed", "response": {"success": False, **IMAGE}}, "succeeded"),
    ({"meta": {"job": {"status": "canceled"}}, "response": {**IMAGE}}, "failed"),
    # a done word with no image is a failure
    ({"status": "finished", "response": {"data": []}}, "failed"),
    ({"status": "success"}, "failed"),
    # the request echo is what the user sent, not a status
    ({"request": {"status": "failed"}, "response": {}}, "pending"),
    # no word: a structured error code fails; success: false alone is a hiccup until finished
    ({"response": {"success": False, "error": {"code": "forbidden"}}}, "failed"),
    ({"response": {"success": False}}, "pending"),
    ({"response": {"success": False, "error": {"message": "busy"}}}, "pending"),
    ({"response": {"success": False}, "finished_at": 5.0}, "failed"),
    ({"response": {"error": "boom"}, "finished_at": 5.0}, "failed"),
    ({"response": {**IMAGE}, "finished_at": 5.0}, "succeeded"),
    ({"response": {**IMAGE}}, "pending"),
    ({"response": {"data": []}, "finished_at": 5.0}, "failed"),
    ({}, "pending"),
    ({"status": 200, "response": {}}, "pending"),  # only words count
])
def test_the_vendor_rules(record: dict[str, Any], status: str) -> None:
    assert infer_status(record) == status


@pytest.mark.parametrize(("value", "fraction"), [
    (0.5, 0.5), (1, 1.0), (42, 0.42), ("42%", 0.42), ("0.25", 0.25), (" 7 % ", 0.07),
    (150, 1.0), (-3, 0.0), ("soon", None), (True, None), (float("nan"), None), (10**400, None),
])
def test_progress_figures(value: Any, fraction: float | None) -> None:
    found = progress_of({"response": {"progress": value}})
    if fraction is None:
        assert found is None
    else:
        assert found == pytest.approx(fraction)


def test_progress_keys_and_depth() -> None:
    assert progress_of({"percent": 30}) == pytest.approx(0.3)
    assert progress_of({"response": {"meta": {"percentage": "80%"}}}) == pytest.approx(0.8)
    assert progress_of({"request": {"progress": 50}}) is None
    assert progress_of({}) is None


def test_a_record_carries_its_progress() -> None:
    assert TaskRecord.from_json({"id": "t", "progress": "40%"}).progress == pytest.approx(0.4)
    done = TaskRecord.from_json({"id": "t", "finished_at": 1, "response": IMAGE})
    assert done.progress == 1.0


@pytest.mark.parametrize(("record", "reason"), [
    ({"response": {"error": {"message": "m1", "detail": "d"}}}, "m1"),
    ({"response": {"error": {"detail": "d2"}}}, "d2"),
    ({"response": {"error": "e3"}}, "e3"),
    ({"response": {"message": "m4"}}, "m4"),
    ({"response": {}, "failure_reason": "f5"}, "f5"),
    ({"fail_reason": "f6"}, "f6"),
    ({"response": {}}, None),
])
def test_failure_reasons(record: dict[str, Any], reason: str | None) -> None:
    assert failure_reason(record) == reason


def test_a_failed_record_explains_itself() -> None:
    record = TaskRecord.from_json({"id": "t", "status": "failed", "fail_reason": "GPU on fire"})
    error = record.error()
    assert isinstance(error, TaskFailedError)
    assert "GPU on fire" in str(error)
    refused = TaskRecord.from_json({"id": "t", "response": {
        "success": False, "error": {"code": "forbidden", "detail": "unsafe prompt"}}})
    assert isinstance(refused.error(), ContentRefusedError)
    assert "unsafe prompt" in str(refused.error())


def test_a_result_keeps_at_most_the_requested_count() -> None:
    many = {"data": [{"image_url": f"https://cdn.example/{i}.png"} for i in range(10)]}
    record = TaskRecord.from_json({"id": "t", "finished_at": 1, "response": many})
    asked = ImageRequest(action="generate", prompt="p", count=2)
    result = record.to_result(asked)
    assert len(result.images) == 2 and result.surplus_images == 8
    echoed = record.to_result()  # the request is the record's own: at most 4 (MAX_COUNT)
    assert len(echoed.images) == 4 and echoed.surplus_images == 6


def test_odd_numbers_never_break_a_record() -> None:
    record = TaskRecord.from_json({"id": 7, "created_at": 10**400, "elapsed": float("inf"),
                                   "trace_id": ["x"]})
    assert record.id == "7" and record.created_at is None and record.elapsed is None
    assert record.trace_id is None
