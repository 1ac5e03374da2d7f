"""The watchdog under every HTTP exchange: a watch shuts its sockets at its deadline, and
never once it is finished (its connection may then serve another exchange)."""

from __future__ import annotations

import socket
import threading
import time

from nanobanana_widgets.images.deadlines import Watch, watching


def test_a_watch_unblocks_a_read_at_its_deadline() -> None:
    a, b = socket.socketpair()
    got: list[bytes] = []
    with a, b:
        with watching(time.monotonic() + 0.3) as watch:
            watch.add_socket(a)
            t0 = time.monotonic()
            reader = threading.Thread(target=lambda: got.append(a.recv(10)))
            reader.start()
            reader.join(10)
            took = time.monotonic() - t0
        assert not reader.is_alive()
        assert watch.fired and got == [b""]
        assert took < 5  # the peer never sent anything: only the watchdog ended the read


def test_a_finished_watch_never_fires() -> None:
    a, b = socket.socketpair()
    with a, b:
        with watching(time.monotonic() + 0.2) as watch:
            watch.add_socket(a)
        time.sleep(0.5)
        assert not watch.fired
        b.sendall(b"x")
        assert a.recv(1) == b"x"  # still usable


def test_a_socket_added_after_the_deadline_is_shut_at_once() -> None:
    a, b = socket.socketpair()
    with a, b:
        watch = Watch(time.monotonic() - 1)
        watch.fire()
        watch.add_socket(a)
        assert a.recv(1) == b""


def test_many_watches_fire_in_deadline_order() -> None:
    pairs = [socket.socketpair() for _ in range(5)]
    try:
        watches = []
        contexts = []
        for i, (a, _b) in enumerate(reversed(pairs)):
            ctx = watching(time.monotonic() + 0.1 * (i + 1))
            watch = ctx.__enter__()
            watch.add_socket(a)
            watches.append(watch)
            contexts.append(ctx)
        deadline = time.monotonic() + 10
        while not all(w.fired for w in watches) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(w.fired for w in watches)
        for ctx in reversed(contexts):
            ctx.__exit__(None, None, None)
    finally:
        for a, b in pairs:
            a.close()
            b.close()
