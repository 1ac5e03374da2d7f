"""The panel's controls in pure Python: its parameters (traitlets in step with the widgets),
the model rule, the Ctrl/Cmd+Enter helper and the stylesheet it ships."""

from __future__ import annotations

import re
from collections.abc import Callable

import ipywidgets as w
import pytest
import traitlets

from nanobanana_widgets.client import Client
from nanobanana_widgets.service.errors import (
    InvalidParameterError,
)
from nanobanana_widgets.service.models import MODELS
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.panel import PromptPanel

from .helpers import (
    all_html,
    click_and_wait,
    status_text,
)


def test_panel_is_a_vbox_with_every_control(panel: PromptPanel) -> None:
    assert isinstance(panel, w.VBox)
    assert isinstance(panel.prompt_box, w.Textarea)
    assert isinstance(panel.action_toggle, w.ToggleButtons)
    assert panel.upload.accept == "image/*" and panel.upload.multiple is True
    assert list(panel.model_dropdown.options) == list(MODELS)
    assert "nano-banana-pro:official" in panel.model_dropdown.options
    assert (panel.count_slider.min, panel.count_slider.max) == (1, 4)
    assert panel.aspect_dropdown.options == ("auto", "1:1", "3:2", "2:3", "16:9", "9:16", "4:3",
                                             "3:4")
    assert panel.resolution_dropdown.options == ("1K",)  # nano-banana can only do 1K
    assert panel.generate_button.description == "Generate"
    assert isinstance(panel.history_box, w.VBox)
    assert panel.history_box.children == (panel.history_strip,)  # the default history's strip
    assert panel.layout.width == "100%"
    html_out = all_html(panel)
    assert "Ctrl/Cmd+Enter" in html_out


def test_defaults_and_properties_mirror_the_controls(client: Client,
                                                     make_panel: Callable[..., PromptPanel]
                                                     ) -> None:
    history = History("kept-here")
    panel = make_panel(client, history=history, prompt="a kite", model="nano-banana-pro",
                       resolution="4K", count=3, aspect_ratio="16:9", action="edit")
    assert panel.history is history
    assert (panel.prompt, panel.model, panel.resolution, panel.count, panel.aspect_ratio,
            panel.action) == ("a kite", "nano-banana-pro", "4K", 3, "16:9", "edit")
    assert panel.prompt_box.value == "a kite"
    assert panel.resolution_dropdown.value == "4K"
    assert panel.count_slider.value == 3
    assert panel.generate_button.description == "Apply edit"
    panel.aspect_ratio = "auto"
    assert panel.aspect_ratio is None
    with pytest.raises(InvalidParameterError, match="model"):
        panel.model = "dall-e"
    with pytest.raises(InvalidParameterError, match="count"):
        panel.count = 5
    with pytest.raises(InvalidParameterError, match="resolution"):
        make_panel(client, model="nano-banana", resolution="4K")
    with pytest.raises(TypeError, match="colour"):
        make_panel(client, colour="red")
    with pytest.raises(TypeError, match=r"History, None .* or False"):
        make_panel(client, history=object())


def test_choosing_a_model_that_cannot_do_the_resolution_resets_it_with_a_note(
        panel: PromptPanel) -> None:
    panel.model = "nano-banana-2"
    assert panel.resolution_dropdown.options == ("1K", "2K", "4K")
    panel.resolution = "4K"
    panel.model = "nano-banana-pro:official"  # also does 4K: kept, no note
    assert panel.resolution == "4K"
    assert "resolution changed" not in status_text(panel)
    panel.model_dropdown.value = "nano-banana-2-lite"  # as a person would, in the dropdown
    assert panel.resolution == "1K"
    assert panel.resolution_dropdown.value == "1K"
    assert panel.resolution_dropdown.options == ("1K",)
    assert "nano-banana-2-lite supports only 1K: resolution changed from 4K to 1K." in (
        status_text(panel))


def test_shortcut_message_generates_like_a_click(panel: PromptPanel) -> None:
    keys = panel.shortcut
    assert keys.panel_class == panel.css_class
    assert panel.css_class in panel._dom_classes
    assert "nbw-prompt" in panel.prompt_box._dom_classes
    assert "closest" in keys._esm and "model.send" in keys._esm
    keys._handle_custom_msg({"event": "something else"}, [])
    assert panel.runs == []
    keys._handle_custom_msg({"event": "submit", "value": "typed, then Ctrl+Enter"}, [])
    (run,) = panel.runs
    run.wait(10)
    assert run.status == "done"
    assert panel.prompt == "typed, then Ctrl+Enter"
    assert panel.results[0].prompt == "typed, then Ctrl+Enter"


def test_front_end_sends_the_prompt_before_a_generate_click(panel: PromptPanel) -> None:
    # ipywidgets may hold back the textarea's last update while an earlier one is
    # unanswered; the front-end helper sends the box's text just ahead of the click.
    assert "nbw-generate" in panel.generate_button._dom_classes
    assert ".nbw-generate" in panel.shortcut._esm
    panel.prompt = "stale words"
    panel.shortcut._handle_custom_msg({"event": "prompt", "value": "the words on screen"}, [])
    assert panel.prompt_box.value == "the words on screen"
    run = click_and_wait(panel)
    assert run.result is not None and run.result.prompt == "the words on screen"


def test_wrapped_text_gets_an_ordinary_line_height(panel: PromptPanel) -> None:
    css = re.sub(r"\s+", " ", panel.shortcut._css)
    assert ".nbw-panel .widget-html-content { line-height: 1.4; }" in css


def test_parameters_are_traitlets_in_step_with_the_controls(panel: PromptPanel) -> None:
    seen: list[tuple[str, object]] = []
    panel.observe(lambda ch: seen.append((ch["name"], ch["new"])),
                  names=["model", "resolution", "count", "prompt", "aspect_ratio"])
    panel.model_dropdown.value = "nano-banana-2"  # a person picks a model
    panel.resolution = "4K"  # Python sets a resolution
    assert panel.resolution_dropdown.value == "4K"
    panel.prompt_box.value = "typed in the box"
    panel.aspect_dropdown.value = "16:9"
    panel.aspect_ratio = "auto"
    assert panel.aspect_dropdown.value == "auto" and panel.aspect_ratio is None
    panel.model = "nano-banana-pro"  # does 4K too: the resolution stays, no change reported
    assert seen == [("model", "nano-banana-2"), ("resolution", "4K"),
                    ("prompt", "typed in the box"), ("aspect_ratio", "16:9"),
                    ("aspect_ratio", None), ("model", "nano-banana-pro")]
    seen.clear()
    panel.model = "nano-banana"  # 1K only: the resolution follows once, with a note
    assert sorted(seen) == [("model", "nano-banana"), ("resolution", "1K")]
    assert "resolution changed from 4K to 1K" in status_text(panel)
    assert panel.resolution_dropdown.value == "1K"

    slider = w.IntSlider(value=1, min=1, max=4)
    link = traitlets.link((slider, "value"), (panel, "count"))
    slider.value = 3
    assert panel.count == 3 and panel.count_slider.value == 3
    panel.count_slider.value = 2  # the panel's own control moves the linked one too
    assert slider.value == 2 and panel.count == 2
    link.unlink()
    with pytest.raises(InvalidParameterError, match="count"):
        panel.count = 9
    with pytest.raises(InvalidParameterError, match="prompt"):
        panel.prompt = 42
    assert (panel.count, panel.count_slider.value, panel.prompt) == (2, 2, "typed in the box")
    assert seen[-1] == ("count", 2)
    assert {"prompt", "action", "model", "count", "aspect_ratio", "resolution"} <= set(
        panel.trait_names())
