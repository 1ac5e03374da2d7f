"""Module-level helpers: the lazy default client, use_emulator() and connect()."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import nanobanana_widgets as nb
from nanobanana_widgets import functions, session
from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import MissingTokenError
from nanobanana_widgets.service.types import Result
from support import TEST_TOKEN


@pytest.fixture(autouse=True)
def _fresh_default() -> Iterator[None]:
    session.set_default_client(None)
    yield
    client = session._default
    session._stop_emulator()
    session.set_default_client(None)
    if client is not None:
        client.close()


def test_default_client_is_lazy_and_shared_across_threads() -> None:
    seen: list[Client] = []
    barrier = threading.Barrier(8)

    def get() -> None:
        barrier.wait()
        seen.append(session.default_client())

    threads = [threading.Thread(target=get) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert len(seen) == 8
    assert all(c is seen[0] for c in seen)
    assert session.default_client() is seen[0]


def test_default_client_needs_no_token_until_a_request(emulator: Emulator) -> None:
    client = session.default_client()  # no token in the environment: still fine
    assert "token=not set" in repr(client)
    with pytest.raises(MissingTokenError):
        nb.generate("a cat")


def test_module_functions_use_the_default_client(emulator: Emulator) -> None:
    client = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05)
    session.set_default_client(client)
    assert nb.default_client() is client
    result = nb.generate("a cat", count=2, aspect_ratio="16:9")
    assert isinstance(result, Result) and len(result) == 2
    edited = nb.edit("make it blue", result.image.url)
    assert edited.request.image_urls == (result.image.url,)
    task = nb.submit("a dog")
    assert nb.task(task.id).id == task.id
    assert [r.id for r in nb.tasks([task.id, result.task_id])] == [task.id, result.task_id]
    (waited,) = nb.wait_all([task])
    assert isinstance(waited, Result) and waited.task_id == task.id
    assert emulator.submissions == 3


def test_set_default_client_checks_its_argument() -> None:
    with pytest.raises(TypeError):
        session.set_default_client("not a client")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["generate", "edit", "submit", "task", "tasks", "wait_all"])
def test_helpers_have_the_client_signatures(name: str) -> None:
    module_sig = inspect.signature(getattr(functions, name))
    method_sig = inspect.signature(getattr(Client, name))
    method_params = list(method_sig.parameters.values())[1:]  # drop self
    assert [(p.name, p.kind, p.default) for p in module_sig.parameters.values()] == [
        (p.name, p.kind, p.default) for p in method_params
    ]


def test_use_emulator_points_the_default_client_at_it() -> None:
    emulator = nb.use_emulator(latency=0.0, tokens={session.EMULATOR_TOKEN})
    assert isinstance(emulator, Emulator)
    assert repr(emulator) == (
        f"offline emulator at {emulator.base_url} — images are placeholders"
    )
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert nb.default_client().base_url == emulator.base_url
    result = nb.generate("a cat")  # accepted only with the placeholder token
    assert len(result) == 1
    assert emulator.submissions == 1


def test_use_emulator_wins_over_a_real_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACEDATACLOUD_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", "https://api.acedata.cloud")
    emulator = nb.use_emulator(latency=0.0, tokens={session.EMULATOR_TOKEN})
    assert nb.default_client().base_url == emulator.base_url
    assert len(nb.generate("a cat")) == 1
    assert emulator.submissions == 1


def test_use_emulator_again_replaces_the_previous_one() -> None:
    first = nb.use_emulator(latency=0.0)
    first_client = nb.default_client()
    second = nb.use_emulator(latency=0.0)
    assert second is not first
    assert nb.default_client() is not first_client
    assert nb.default_client().base_url == second.base_url
    assert "stopped" in Emulator.__repr__(first)
    nb.generate("a cat")
    assert second.submissions == 1


def test_connect_without_a_token_uses_the_emulator() -> None:
    target = session.connect(latency=0.0)
    assert target.offline and isinstance(target.emulator, Emulator)
    assert nb.default_client().base_url == target.base_url == target.emulator.base_url
    assert "placeholders" in repr(target) and "nothing is billed" in target._repr_html_()
    assert len(nb.generate("a cat")) == 1
    assert target.emulator.submissions == 1


def test_connect_uses_the_demo_emulator_named_in_the_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", emulator.base_url)
    monkeypatch.setenv(session.OFFLINE_DEMO_ENV, "1")
    target = session.connect()
    assert target.offline and target.emulator is None
    assert target.base_url == emulator.base_url
    assert session._emulator is None  # no second emulator started
    target.client.poll_interval = 0.05
    assert len(nb.generate("a cat")) == 1
    assert emulator.submissions == 1


def test_default_client_requests_are_recorded_in_the_default_history() -> None:
    nb.use_emulator(latency=0.0)
    nb.default_client().poll_interval = 0.05
    r = nb.generate("a lighthouse at dusk")
    history = nb.History()
    assert [rec.task_id for rec in history] == [r.task_id]
    assert history[-1].prompt == "a lighthouse at dusk"


def test_history_recording_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(session.HISTORY_ENV, "off")
    nb.use_emulator(latency=0.0)
    nb.default_client().poll_interval = 0.05
    nb.generate("a lighthouse at dusk")
    assert len(nb.History()) == 0


def test_connect_with_a_token_uses_the_service(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACEDATACLOUD_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", emulator.base_url)  # stands in for it
    backend = session.connect()
    target = backend.client
    assert backend.kind == "service" and not backend.offline
    assert "billed" in repr(backend) and TEST_TOKEN not in repr(backend)
    assert nb.default_client() is target
    assert target.base_url == emulator.base_url
    target.poll_interval = 0.05
    assert len(nb.generate("a cat")) == 1
    assert emulator.submissions == 1
    assert session._emulator is None


def test_use_emulator_in_a_fresh_interpreter_exits_cleanly() -> None:
    code = (
        "import nanobanana_widgets as nb\n"
        "emu = nb.use_emulator(latency=0.0)\n"
        "print(repr(emu))\n"
        "print(len(nb.generate('a cat')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("offline emulator at http://127.0.0.1:")
    assert lines[0].endswith("— images are placeholders")
    assert lines[1] == "1"
    assert done.stderr == ""
