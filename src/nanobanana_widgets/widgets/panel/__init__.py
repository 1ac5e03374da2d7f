"""The prompt panel: controls, inputs, runs, result cards and the history strip."""

from nanobanana_widgets.widgets.panel.panel import PromptPanel

__all__ = ["PromptPanel"]
