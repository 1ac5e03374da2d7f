"""The panel's parameters: traitlets checked as the service checks them, and the controls
that show them.

:class:`ControlState` holds ``prompt``, ``action``, ``model``, ``count``, ``aspect_ratio``
and ``resolution`` as traitlets, so ``observe`` and ``traitlets.link`` work on the panel
(which is one); a value the service would refuse raises
:class:`~nanobanana_widgets.service.errors.InvalidParameterError` and changes nothing.
:class:`Controls` builds the widgets a person uses (the prompt box, the generate/edit
toggle, the model and count, aspect ratio and resolution controls) and keeps them in step
with a state both ways. Its one model-aware rule: only the resolutions the chosen model
supports are offered, and a model that cannot make the current one resets it to 1K with a
note.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as w
import traitlets

from nanobanana_widgets.service.errors import InvalidParameterError, NanoBananaError, describe_error
from nanobanana_widgets.service.models import (
    ACTIONS,
    ASPECT_RATIOS,
    DEFAULT_MODEL,
    DEFAULT_RESOLUTION,
    MAX_COUNT,
    MIN_COUNT,
    MODELS,
)
from nanobanana_widgets.widgets.panel.runs import Level

__all__ = ["CONTROL_NAMES", "MODE_WORDS", "ControlState", "Controls"]

MODE_WORDS = {"generate": "Text to image", "edit": "Edit images"}
"""The mode toggle's words (the action button says "Generate" or "Apply edit")."""

CONTROL_NAMES = ("action", "model", "resolution", "count", "aspect_ratio", "prompt")
"""The parameters, in an order where setting each one is valid (model before resolution)."""


def _identity(value: Any) -> Any:
    return value


class ControlState(traitlets.HasTraits):
    """A panel's parameters as traitlets, each checked when set."""

    prompt = traitlets.Any("", help="The text in the prompt box (a string).")
    action = traitlets.Any("generate", help='"generate" or "edit".')
    model = traitlets.Any(DEFAULT_MODEL, help="The model name (any of models.MODELS, "
                                              ":official variants included).")
    count = traitlets.Any(1, help=f"How many images per run ({MIN_COUNT}–{MAX_COUNT}).")
    aspect_ratio = traitlets.Any(None, allow_none=True,
                                 help='The aspect ratio, or None for the service\'s default '
                                      '(set "auto" or None).')
    resolution = traitlets.Any(DEFAULT_RESOLUTION,
                               help="The resolution; only what the chosen model supports.")

    @traitlets.validate("prompt")
    def _check_prompt(self, proposal: Any) -> str:
        value = proposal["value"]
        if not isinstance(value, str):
            raise InvalidParameterError("prompt", value, None, hint="a string")
        return value

    @traitlets.validate("action")
    def _check_action(self, proposal: Any) -> str:
        value = proposal["value"]
        if value not in ACTIONS:
            raise InvalidParameterError("action", value, ACTIONS)
        return str(value)

    @traitlets.validate("model")
    def _check_model(self, proposal: Any) -> str:
        value = proposal["value"]
        if value not in MODELS:
            raise InvalidParameterError("model", value, tuple(MODELS))
        return str(value)

    @traitlets.validate("count")
    def _check_count(self, proposal: Any) -> int:
        value = proposal["value"]
        if isinstance(value, bool) or not isinstance(value, int) or not (
            MIN_COUNT <= value <= MAX_COUNT
        ):
            raise InvalidParameterError("count", value, tuple(range(MIN_COUNT, MAX_COUNT + 1)))
        return value

    @traitlets.validate("aspect_ratio")
    def _check_aspect_ratio(self, proposal: Any) -> str | None:
        value = proposal["value"]
        if value is None or value == "auto":
            return None
        if value not in ASPECT_RATIOS:
            raise InvalidParameterError("aspect_ratio", value, ("auto", *ASPECT_RATIOS))
        return str(value)

    @traitlets.validate("resolution")
    def _check_resolution(self, proposal: Any) -> str:
        value = proposal["value"]
        allowed = MODELS[self.model]
        if value not in allowed:
            raise InvalidParameterError(
                "resolution", value, allowed,
                hint=f"a resolution that {self.model} supports; nano-banana-2, "
                "nano-banana-2.1 and nano-banana-pro go up to 4K",
            )
        return str(value)


class Controls:
    """The parameter widgets of a panel, kept in step with its :class:`ControlState`.

    A change in a widget (a person) sets the state; a change of the state (Python) sets
    the widget. ``notify(text, level)`` receives the model rule's note.
    """

    def __init__(self, state: ControlState, *,
                 notify: Callable[[str, Level], object]) -> None:
        initial = {"description_width": "initial"}
        self._state = state
        self._notify = notify
        self._quiet = False
        self._loading = False
        self.prompt_box = w.Textarea(
            value=state.prompt,
            placeholder="Describe the image, or the change to make in edit mode…  "
                        "(Ctrl/Cmd+Enter to run)",
            rows=3, layout=w.Layout(width="100%"),
        )
        self.prompt_box.add_class("nbw-prompt")
        self.action_toggle = w.ToggleButtons(
            options=[(MODE_WORDS["generate"], "generate"), (MODE_WORDS["edit"], "edit")],
            value=state.action, style={"button_width": "auto"},
            tooltips=["Mode: make new images from the prompt",
                      "Mode: change the input images following the prompt"],
            layout=w.Layout(width="auto"),
        )
        self.action_toggle.add_class("nbw-mode")
        self.model_dropdown = w.Dropdown(
            options=list(MODELS), value=state.model, description="Model",
            style=initial, layout=w.Layout(width="auto", min_width="230px"),
        )
        self.count_slider = w.IntSlider(
            value=state.count, min=MIN_COUNT, max=MAX_COUNT, description="Count",
            style=initial, layout=w.Layout(width="190px"),
        )
        self.aspect_dropdown = w.Dropdown(
            options=["auto", *ASPECT_RATIOS], value="auto",
            description="Aspect", style=initial, layout=w.Layout(width="150px"),
            tooltip="auto: 1:1 when generating, the first input's shape when editing",
        )
        self.resolution_dropdown = w.Dropdown(
            options=list(MODELS[state.model]), value=state.resolution,
            description="Resolution", style=initial, layout=w.Layout(width="160px"),
        )
        self.box = w.Box(
            [self.action_toggle, self.model_dropdown, self.count_slider, self.aspect_dropdown,
             self.resolution_dropdown],
            layout=w.Layout(display="flex", flex_flow="row wrap", align_items="center",
                            width="100%"),
        )
        self.box.add_class("nbw-gap-l")
        self._mirror("prompt", self.prompt_box)
        self._mirror("action", self.action_toggle)
        self._mirror("model", self.model_dropdown)
        self._mirror("count", self.count_slider)
        self._mirror("aspect_ratio", self.aspect_dropdown,
                     to_widget=lambda v: "auto" if v is None else v)
        self._mirror("resolution", self.resolution_dropdown)
        state.observe(self._on_model_change, names="model")

    @contextlib.contextmanager
    def loading(self) -> Iterator[None]:
        """Set several parameters from a record: the model rule names no problem (the
        caller names what it could not set)."""
        self._loading = True
        try:
            yield
        finally:
            self._loading = False

    def _mirror(self, name: str, widget: w.ValueWidget,
                to_widget: Callable[[Any], Any] = _identity) -> None:
        state = self._state

        def from_widget(change: dict[str, Any]) -> None:
            if self._quiet:
                return
            try:
                setattr(state, name, change["new"])
            except NanoBananaError as exc:  # put back what the state holds, and say why
                widget.value = to_widget(getattr(state, name))
                self._notify(describe_error(exc), "error")

        def from_state(change: dict[str, Any]) -> None:
            widget.value = to_widget(change["new"])

        widget.observe(from_widget, names="value")
        state.observe(from_state, names=name)

    def _on_model_change(self, change: dict[str, Any]) -> None:
        model = change["new"]
        allowed = list(MODELS[model])
        current = self._state.resolution
        kept = current in allowed
        self._quiet = True  # the options change moves the dropdown's value on its way
        try:
            self.resolution_dropdown.options = allowed
            self.resolution_dropdown.value = current if kept else DEFAULT_RESOLUTION
        finally:
            self._quiet = False
        if kept:
            return
        self._state.resolution = DEFAULT_RESOLUTION
        if self._loading:
            return  # load_record sets the resolution next and names any problem itself
        self._notify(
            f"{model} supports only {', '.join(allowed)}: resolution changed from {current} to "
            f"{DEFAULT_RESOLUTION}.", "warning",
        )
