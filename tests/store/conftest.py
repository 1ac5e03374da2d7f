"""Helpers of the store tests: finished results, a populated history, a child Python."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result, Timings
from nanobanana_widgets.store import History
from support import png, png_data_uri

MakeResult = Callable[[ImageRequest, str, list[tuple[int, int, int]]], Result]


def _make_result(request: ImageRequest, task_id: str, colors: list[tuple[int, int, int]]
                 ) -> Result:
    images = tuple(GeneratedImage(url=png_data_uri(png(c)), prompt=request.prompt,
                                  task_id=task_id, index=i, request=request)
                   for i, c in enumerate(colors))
    return Result(task_id=task_id, trace_id=f"trace-{task_id}", request=request, images=images,
                  timings=Timings(submitted_at=100.0, finished_at=112.5, received_at=113.0))


@pytest.fixture
def make_result() -> MakeResult:
    """``make_result(request, task_id, colors)``: a finished result whose images are
    ``data:`` URLs (a URL form the service may use), one solid colour each."""
    return _make_result


@pytest.fixture
def populate() -> Callable[..., None]:
    """``populate(history, n=12)``: n records; models alternate, ratings 0..5, prompts
    with a few words in common (every third a cat, the others dogs)."""

    def fill(h: History, n: int = 12) -> None:
        for i in range(n):
            model = "nano-banana-pro" if i % 2 else "nano-banana"
            req = ImageRequest("generate", f"Prompt {i} of a {'cat' if i % 3 == 0 else 'dog'}",
                               model=model, aspect_ratio="16:9" if i % 4 == 0 else "1:1")
            rec = h.add(req, _make_result(req, f"task-{i}", [(10 * i, 0, 0)]))
            h.rate(rec, i % 6)

    return fill


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_python(code, *args, timeout=60)``: run ``code`` in a child interpreter."""

    def run(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    return run
