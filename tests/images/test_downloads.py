"""One download per result image: concurrent ``GeneratedImage.bytes()`` callers share a
fetch, and a grid recorded in a history fetches each image once (counted by the emulator).
Also: Pillow work in several threads at once, with its warnings kept in."""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image

from nanobanana_widgets import images
from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.images._shared import quiet_pillow
from nanobanana_widgets.service.errors import DownloadError, ImageInputError
from nanobanana_widgets.service.types import GeneratedImage, Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.grid import grid

from .imagefiles import png_claiming

T = TypeVar("T")
THREADS = 8


def together(fn: Callable[[], T], n: int = THREADS) -> list[T | BaseException]:
    """``fn()`` on ``n`` threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(n)
    out: list[T | BaseException | None] = [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            out[i] = fn()
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return [x for x in out if x is not None]


def fresh_result(client: Client, emulator: Emulator, prompt: str = "a lemon",
                 count: int = 1) -> Result:
    result = client.generate(prompt, count=count)
    emulator.reset_counters()
    return result


def test_concurrent_bytes_calls_share_one_download(client: Client, emulator: Emulator) -> None:
    image = fresh_result(client, emulator).image
    emulator.inject("slow_headers", endpoint="files", delay=0.5)  # every caller arrives mid-fetch
    got = together(image.bytes)
    assert emulator.downloads == 1
    assert len(got) == THREADS
    first = got[0]
    assert isinstance(first, bytes) and first.startswith(b"\x89PNG")
    assert all(g is first for g in got)  # the very same bytes object, from the cache
    assert image.bytes() is first and emulator.downloads == 1


def test_copies_made_with_replace_share_the_download(client: Client, emulator: Emulator) -> None:
    import dataclasses

    image = fresh_result(client, emulator).image
    twin = dataclasses.replace(image)
    emulator.inject("slow_headers", endpoint="files", delay=0.3)
    callers = iter([image, twin, image, twin])
    got = together(lambda: next(callers).bytes(), 4)
    assert emulator.downloads == 1 and len({id(g) for g in got}) == 1


def test_concurrent_callers_share_a_failed_download_then_may_retry(emulator: Emulator) -> None:
    image = GeneratedImage(url=emulator.base_url + "/files/no-such-task-0.png", prompt="x")
    emulator.inject("slow_headers", endpoint="files", delay=0.5)
    got = together(image.bytes)
    assert emulator.downloads == 1  # a 404 is not retried, and the waiting callers share it
    assert all(isinstance(g, DownloadError) and g.status_code == 404 for g in got)
    with pytest.raises(DownloadError):  # a later call tries again: errors are not kept
        image.bytes()
    assert emulator.downloads == 2
    assert "data" not in image._cache


def test_images_stay_picklable(client: Client, emulator: Emulator) -> None:
    import pickle

    result = fresh_result(client, emulator)
    data = result.image.bytes()
    again = pickle.loads(pickle.dumps(result))
    assert again == result and again.image.bytes() == data
    assert emulator.downloads == 1  # the byte cache travels with the image


def test_grid_and_history_fetch_each_image_once(client: Client, emulator: Emulator,
                                               tmp_path: Path) -> None:
    prompts = ["a lemon on a table", "a pear on a table", "a fig on a table"]
    with History(tmp_path / "hist") as hist:
        # Every first GET stalls, so the grid's thumbnails and the history's copies are
        # both asking while a download is under way.
        emulator.inject("slow_headers", endpoint="files", delay=0.3, times=len(prompts) * 2)
        view = grid(prompts=prompts, count=2, client=client, history=hist)
        outcomes = view.wait(timeout=60)
        assert hist.flush(timeout=60)
        results = [r for r in outcomes.values() if isinstance(r, Result)]
        assert len(results) == len(prompts) and all(len(r) == 2 for r in results)
        assert emulator.downloads == len(prompts) * 2
        stored = [r for rec in hist for r in rec.results]
        assert len(stored) == len(prompts) * 2 and all(r.local for r in stored)
        for rec in hist:  # the history kept the very bytes the grid showed (plus metadata)
            for r in rec.results:
                assert r.path is not None
                with Image.open(r.path) as img:
                    assert img.size == (1024, 1024)


def test_pillow_work_runs_in_several_threads_at_once() -> None:
    """The warnings guard around Pillow work is not a lock: a second thread gets in while
    the first is still inside (with a lock, the first would wait here forever)."""
    first_inside = threading.Event()
    second_inside = threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with quiet_pillow():
            first_inside.set()
            seen.append(second_inside.wait(5))

    def second() -> None:
        first_inside.wait(5)
        with quiet_pillow():
            second_inside.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [True]


def test_concurrent_pillow_work_keeps_warnings_in_and_leaves_filters_alone() -> None:
    before = list(warnings.filters)
    bomb = png_claiming(12000, 10000)  # 120 MP: Pillow warns, we refuse
    small = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(small, "PNG")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def work() -> bool:
            with pytest.raises(ImageInputError, match="megapixels"):
                images.to_image_url(bomb)
            return len(images.thumbnail(small.getvalue(), max_side=64)) > 0

        assert together(work) == [True] * THREADS
        assert caught == []  # no DecompressionBombWarning escaped any thread
        # Outside our calls, the user's own Pillow use still warns as usual.
        Image.open(io.BytesIO(png_claiming(10000, 9500)))
        assert [c.category for c in caught] == [Image.DecompressionBombWarning]
    assert list(warnings.filters) == before
