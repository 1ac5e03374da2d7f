"""Errors raised by the helpers and magics show as one readable block in a notebook.

A real IPython shell runs the cells; what it prints is what a notebook shows. The package's
errors give IPython their own ``_render_traceback_``: the class and message, the user's line,
and how to get the full traceback (``%tb verbose``), which then works.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import nanobanana_widgets as nb
from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.service.models import validate_request


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    mp = pytest.MonkeyPatch()
    mp.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=config)
    yield sh
    sh.history_manager.end_session()
    InteractiveShell.clear_instance()
    mp.undo()


@pytest.fixture
def ip(shell: InteractiveShell, client: Client) -> Iterator[InteractiveShell]:
    nb.set_default_client(client)
    shell.run_cell("import nanobanana_widgets as nb", store_history=True)
    yield shell
    nb.set_default_client(None)


def test_an_empty_prompt_shows_one_block_without_library_frames(
    ip: InteractiveShell, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    result = ip.run_cell('x = 1\nnb.generate("")', store_history=True)
    assert isinstance(result.error_in_exec, InvalidParameterError)
    shown = capsys.readouterr().out
    assert "InvalidParameterError" in shown and "Invalid prompt: ''" in shown
    # No library frame: neither the client's nor the validation's files are named.
    for name in ("functions.py", "client.py", "models.py", "Traceback"):
        assert name not in shown, shown
    # The user's own line is named, and the way to everything else.
    assert 'line 2: nb.generate("")' in shown
    assert "%tb verbose" in shown
    assert len(shown.strip().splitlines()) <= 4
    assert emulator.submissions == 0


def test_tb_verbose_then_shows_the_full_traceback(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell('nb.generate("")', store_history=True)
    capsys.readouterr()
    ip.run_cell("%tb verbose", store_history=False)
    full = capsys.readouterr().out
    assert "models.py" in full and "validate_request" in full  # the library frames
    assert "InvalidParameterError" in full
    # ... and the mode is back: the next error is short again.
    ip.run_cell('nb.generate("")', store_history=True)
    assert "models.py" not in capsys.readouterr().out


def test_edit_without_images_names_the_parameter_the_user_typed() -> None:
    with pytest.raises(InvalidParameterError) as info:
        validate_request(action="edit", prompt="make it night")
    message = str(info.value)
    assert message.startswith("Invalid images: [].")
    assert "image_urls" not in message
    assert "Expected edit needs" not in message
    assert "Expected at least one input image" in message


def test_a_resolution_the_model_lacks_reads_as_a_sentence() -> None:
    with pytest.raises(InvalidParameterError) as info:
        validate_request(action="generate", prompt="x", resolution="4K")
    message = str(info.value)
    assert "Expected a resolution that model 'nano-banana' supports (1K)" in message
    assert "Expected model" not in message


def test_the_emulator_still_names_the_wire_field(client: Client, emulator: Emulator) -> None:
    import requests

    response = requests.post(
        f"{emulator.base_url}/nano-banana/images",
        json={"action": "edit", "prompt": "x"},
        headers={"Authorization": "Bearer t"}, timeout=10)
    assert response.status_code == 400
    assert "image_urls" in response.json()["error"]["message"]
