"""``%%nanobanana`` and ``%nanobanana_history`` in a real IPython shell, against the emulator.

The shell is ``IPython``'s own ``InteractiveShell`` (history in memory, a temporary
IPYTHONDIR); ``%load_ext nanobanana_widgets`` goes through IPython's extension manager.
The package's default client is the ``client`` fixture (a real socket to the emulator).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from PIL import Image
from traitlets.config import Config

import nanobanana_widgets as nb
from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.magics import MagicRequestError, MagicUsageError
from nanobanana_widgets.service.errors import ContentRefusedError
from support import png


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    """One IPython shell for the module, with the extension loaded."""
    mp = pytest.MonkeyPatch()
    mp.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=config)
    result = sh.run_cell("%load_ext nanobanana_widgets")
    result.raise_error()
    yield sh
    sh.history_manager.end_session()
    InteractiveShell.clear_instance()
    mp.undo()


@pytest.fixture
def ip(shell: InteractiveShell, client: Client) -> Iterator[InteractiveShell]:
    """The shell with an empty namespace and the emulator's client as the default."""
    saved = dict(shell.user_ns)
    nb.set_default_client(client)
    yield shell
    nb.set_default_client(None)
    shell.user_ns.clear()
    shell.user_ns.update(saved)


def cell(sh: InteractiveShell, source: str) -> ExecutionResult:
    return sh.run_cell(source, store_history=False)


def succeeded(result: ExecutionResult) -> Any:
    result.raise_error()
    return result.result


def png_file(path: Path, size: tuple[int, int] = (48, 32), colour: str = "teal") -> Path:
    path.write_bytes(png(colour, size))
    return path


def decoded_size(data_uri: str) -> tuple[int, int]:
    assert data_uri.startswith("data:image/")
    payload = base64.b64decode(data_uri.split(",", 1)[1])
    with Image.open(io.BytesIO(payload)) as img:
        return img.size


# --- loading ---------------------------------------------------------------------------


def test_load_ext_registers_both_magics(shell: InteractiveShell) -> None:
    assert shell.find_cell_magic("nanobanana") is not None
    assert shell.find_line_magic("nanobanana_history") is not None
    assert "nanobanana_widgets" in shell.extension_manager.loaded


# --- generating --------------------------------------------------------------------------


def test_cell_is_the_prompt_with_names_filled_from_the_namespace(
    ip: InteractiveShell, emulator: Emulator
) -> None:
    cell(ip, "animal = 'red fox'\nweather = {'kind': 'snow'}\nn = 3")
    result = succeeded(cell(ip, "%%nanobanana\n  {n:02d} {animal} in the {weather[kind]}, "
                                "{{watercolour}}  \n"))
    assert isinstance(result, nb.Result)
    assert result.request.prompt == "03 red fox in the snow, {watercolour}"
    assert result.image.prompt == "03 red fox in the snow, {watercolour}"  # echoed by service
    assert result.request.action == "generate"
    assert emulator.submissions == 1


def test_options_reach_the_request(ip: InteractiveShell, emulator: Emulator) -> None:
    result = succeeded(cell(ip, "%%nanobanana --model nano-banana-pro --count 2 "
                                "--aspect-ratio 16:9 --resolution 1K\na lighthouse"))
    req = result.request
    assert (req.model, req.count, req.aspect_ratio, req.resolution) == (
        "nano-banana-pro", 2, "16:9", "1K")
    assert len(result.images) == 2
    width, height = result.image.pil().size
    assert abs(width / height - 16 / 9) < 0.01


def test_short_and_equals_forms_of_the_options(ip: InteractiveShell) -> None:
    result = succeeded(cell(ip, "%%nanobanana -m nano-banana-2 -n 1 -a 3:4 "
                                "--resolution=2K\na tall tower"))
    req = result.request
    assert (req.model, req.count, req.aspect_ratio, req.resolution) == (
        "nano-banana-2", 1, "3:4", "2K")
    assert result.image.pil().size == (1536, 2048)


def test_as_stores_the_result_in_a_variable(ip: InteractiveShell) -> None:
    result = succeeded(cell(ip, "%%nanobanana --as first\na teapot"))
    assert ip.user_ns["first"] is result


def test_option_line_is_expanded_by_ipython(ip: InteractiveShell) -> None:
    cell(ip, "ratio = '2:3'")
    result = succeeded(cell(ip, "%%nanobanana --aspect-ratio {ratio}\na door"))
    assert result.request.aspect_ratio == "2:3"


# --- editing ------------------------------------------------------------------------------


def test_edit_with_a_path_and_a_variable(ip: InteractiveShell, tmp_path: Path) -> None:
    photo = png_file(tmp_path / "my photo.png", (60, 40))
    first = succeeded(cell(ip, "%%nanobanana --as base\na cat on a sofa"))
    cell(ip, f"photo = {str(photo)!r}")
    result = succeeded(cell(ip, f'%%nanobanana --edit "{photo}" base\nput the cat in the photo'))
    req = result.request
    assert req.action == "edit"
    assert len(req.image_urls) == 2
    assert decoded_size(req.image_urls[0]) == (60, 40)
    assert req.image_urls[1] == first.image.url  # a result is passed on by its URL
    via_variable = succeeded(cell(ip, "%%nanobanana -e photo\nmake it blue"))
    assert decoded_size(via_variable.request.image_urls[0]) == (60, 40)


def test_edit_with_pil_images_and_a_list_variable(ip: InteractiveShell) -> None:
    cell(ip, "from PIL import Image\n"
             "pics = [Image.new('RGB', (30, 30), 'red'), Image.new('RGB', (20, 40), 'blue')]\n"
             "what = 'both'")
    result = succeeded(cell(ip, "%%nanobanana --edit pics --as combined\ncombine {what}"))
    assert result.request.prompt == "combine both"
    assert [decoded_size(u) for u in result.request.image_urls] == [(30, 30), (20, 40)]
    assert ip.user_ns["combined"] is result


# --- what is shown and kept ------------------------------------------------------------------


def test_result_renders_inline_as_escaped_html(ip: InteractiveShell) -> None:
    cell(ip, "evil = '<script>alert(1)</script>'")
    result = succeeded(cell(ip, "%%nanobanana\na sign saying {evil}"))
    data, _meta = ip.display_formatter.format(result)
    page = data["text/html"]
    assert "<img" in page and "data:image/jpeg;base64," in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert result.task_id in page


def test_requests_are_recorded_in_the_history(ip: InteractiveShell) -> None:
    first = succeeded(cell(ip, "%%nanobanana\nan orange bicycle"))
    second = succeeded(cell(ip, "%%nanobanana -n 2\na green kite"))
    history = nb.default_history()
    assert history.flush(timeout=30)
    records = history.filter(task_id=[first.task_id, second.task_id])
    assert [r.prompt for r in records] == ["an orange bicycle", "a green kite"]
    assert all(r.status == "succeeded" for r in records)
    assert [len(r.results) for r in records] == [1, 2]
    assert all(img.local for r in records for img in r.results)


def test_history_line_magic_shows_the_latest_records(ip: InteractiveShell) -> None:
    for prompt in ("alpha comet", "beta comet", "gamma comet"):
        succeeded(cell(ip, f"%%nanobanana\n{prompt}"))
    view = succeeded(cell(ip, "%nanobanana_history 2"))
    assert [r.prompt for r in view] == ["beta comet", "gamma comet"]
    page = ip.display_formatter.format(view)[0]["text/html"]
    assert "gamma comet" in page and "alpha comet" not in page
    assert "data:image/jpeg;base64," in page  # thumbnails were there in time
    assert len(succeeded(cell(ip, "%nanobanana_history"))) == 3


# --- mistakes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("%%nanobanana --colour red\nx", "Unknown option '--colour'"),
        ("%%nanobanana stray\nx", "Unknown option 'stray'"),
        ("%%nanobanana --model\nx", "Option --model needs a value"),
        ("%%nanobanana --model --count 2\nx", "Option --model needs a value"),
        ("%%nanobanana --model nano-apple\nx", "Unknown model 'nano-apple'. Models: nano-banana"),
        ("%%nanobanana --count two\nx", "--count must be a whole number from 1 to 4, not 'two'"),
        ("%%nanobanana --count 7\nx", "--count must be a whole number from 1 to 4, not 7"),
        ("%%nanobanana -a 5:4\nx", "Unknown aspect ratio '5:4'. Choose one of: 1:1"),
        ("%%nanobanana -r 8K\nx", "Unknown resolution '8K'. Choose one of: 1K, 2K, 4K"),
        ("%%nanobanana --as 1st\nx", "--as needs a variable name, not '1st'"),
        ("%%nanobanana --as class\nx", "--as needs a variable name, not 'class'"),
        ("%%nanobanana --edit\nx", "--edit needs at least one input"),
        ("%%nanobanana --edit a.png --edit\nx", "--edit needs at least one input"),
        ("%%nanobanana --model 'unclosed\nx", "Could not read the options"),
        ("%%nanobanana\na {nowhere} cat", "no variable 'nowhere' is defined"),
        ("%%nanobanana\na {} cat", "The prompt has {}, which is not a variable name"),
        ("%%nanobanana\na {0} cat", "The prompt has {0}, which is not a variable name"),
        ("%%nanobanana\n{len(x)} cats", "The prompt has {len(x)}, which is not a variable"),
        ("%%nanobanana --edit not_defined_yet\nx",
         "--edit not_defined_yet: there is no variable 'not_defined_yet' and no file"),
    ],
)
def test_mistakes_fail_the_cell_with_one_clear_line_and_send_nothing(
    ip: InteractiveShell, emulator: Emulator, capsys: pytest.CaptureFixture[str],
    source: str, expected: str,
) -> None:
    result = cell(ip, source)
    assert isinstance(result.error_in_exec, MagicUsageError)
    assert expected in str(result.error_in_exec)
    shown = capsys.readouterr().out
    assert expected in shown
    assert "Traceback" not in shown and "magics.py" not in shown
    assert emulator.submissions == 0


def test_a_missing_input_file_names_the_path(
    ip: InteractiveShell, emulator: Emulator, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.png"
    result = cell(ip, f"%%nanobanana --edit {missing}\nx")
    error = result.error_in_exec
    assert isinstance(error, MagicRequestError)
    assert "gone.png" in str(error) and "no such file" in str(error)
    assert emulator.submissions == 0


def test_a_refused_request_fails_the_cell_and_leaves_the_variable_unset(
    ip: InteractiveShell, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.inject("task_forbidden")
    result = cell(ip, "%%nanobanana --as refused\nsomething the provider refuses")
    error = result.error_in_exec
    assert isinstance(error, MagicRequestError)
    assert isinstance(error.__cause__, ContentRefusedError)
    assert "refused" not in ip.user_ns
    shown = capsys.readouterr().out
    assert "ContentRefusedError" in shown and "nothing was billed" in shown
    assert "Traceback" not in shown
    history = nb.default_history()
    record = history.filter(task_id=error.__cause__.task_id)[0]
    assert record.status == "failed" and record.error is not None
    assert record.error.type == "ContentRefusedError"


def test_history_magic_rejects_a_bad_count(ip: InteractiveShell) -> None:
    for line in ("%nanobanana_history ten", "%nanobanana_history 0"):
        error = cell(ip, line).error_in_exec
        assert isinstance(error, MagicUsageError)
        assert "takes a number of records" in str(error)
