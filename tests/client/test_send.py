"""``Client.send``: a prepared request, and a 429 handed to a caller that paces itself."""

from __future__ import annotations

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import InvalidParameterError, RateLimitError
from nanobanana_widgets.service.types import ImageRequest


def test_send_submits_a_prepared_request(client: Client, emulator: Emulator) -> None:
    task = client.send(ImageRequest(action="generate", prompt="a kite", aspect_ratio="16:9"))
    result = task.wait(10)
    assert result.images and result.request.aspect_ratio == "16:9"
    assert emulator.accepted == 1


def test_send_validates_before_sending(client: Client, emulator: Emulator) -> None:
    with pytest.raises(InvalidParameterError, match="model"):
        client.send(ImageRequest(action="generate", prompt="a kite", model="nope"))
    assert emulator.submissions == 0


def test_a_429_is_raised_at_once_when_asked(client: Client, emulator: Emulator) -> None:
    emulator.inject("rate_limit", times=1, retry_after=7.0)
    with pytest.raises(RateLimitError) as caught:
        client.send(ImageRequest(action="generate", prompt="a kite"), retry_rate_limit=False)
    assert caught.value.retry_after == 7.0
    assert emulator.submissions == 1 and emulator.accepted == 0  # not retried, not billed


def test_a_429_is_retried_by_default(client: Client, emulator: Emulator) -> None:
    client.backoff_base = 0.01
    emulator.inject("rate_limit", times=1, retry_after=0.01)
    task = client.send(ImageRequest(action="generate", prompt="a kite"))
    assert task.id
    assert emulator.submissions == 2 and emulator.accepted == 1
