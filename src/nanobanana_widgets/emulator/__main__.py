"""``python -m nanobanana_widgets.emulator``: run the emulator until SIGINT or SIGTERM.

With ``--parent-pid PID`` it also stops when that process (the one that started it) is gone,
so a demo killed without a chance to clean up leaves no emulator behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from nanobanana_widgets.emulator.server import Emulator
from nanobanana_widgets.emulator.state import Latency


def _latency(text: str) -> Latency:
    try:
        if "," in text:
            low, high = (float(part) for part in text.split(",", 1))
            return (low, high)
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"latency must be SECONDS or LOW,HIGH (e.g. 2 or 1,3), not {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, serve until interrupted, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m nanobanana_widgets.emulator",
        description="Run an offline emulator of the Nano Banana image service on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--latency", type=_latency, default=0.0,
                        help="seconds per task, or LOW,HIGH for a random range (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latency RNG")
    parser.add_argument("--rate-limit", type=float, default=None, metavar="PER_SECOND",
                        help="submits per second the account may make; more get 429 with "
                             "Retry-After (default: no limit)")
    parser.add_argument("--burst", type=float, default=None, metavar="N",
                        help="submits the account may make at once (default: one second's "
                             "worth of --rate-limit)")
    parser.add_argument("--max-concurrency", type=int, default=None, metavar="N",
                        help="tasks the account may have running at once; more get 429 "
                             "(default: no limit)")
    parser.add_argument("--token", action="append", dest="tokens", default=None,
                        help="accept only this bearer token (repeatable; default: any)")
    parser.add_argument("--parent-pid", type=int, default=None, metavar="PID",
                        help="stop when process PID, which started this one, exits "
                             "(make demo passes its own)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests' outcomes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        emu = Emulator(host=args.host, port=args.port, latency=args.latency, seed=args.seed,
                       tokens=args.tokens, rate_limit=args.rate_limit, burst=args.burst,
                       max_concurrency=args.max_concurrency).start()
    except (OSError, ValueError) as exc:
        print(f"Cannot start the emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"Nano Banana emulator listening on {emu.base_url}", flush=True)
    try:
        while not stop.wait(0.2):
            if args.parent_pid is not None and os.getppid() != args.parent_pid:
                logging.getLogger(__name__).info("parent %s is gone; stopping", args.parent_pid)
                break
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
