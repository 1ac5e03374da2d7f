"""Module-level functions on the session's default client: ``generate("a cat")`` works with
nothing set up.

The default client is created on first use and reads ``ACEDATACLOUD_API_TOKEN`` /
``ACEDATACLOUD_API_BASE_URL`` at its first request (see :mod:`nanobanana_widgets.session`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from nanobanana_widgets.client import Client
from nanobanana_widgets.render.results import show
from nanobanana_widgets.session import default_client

__all__ = ["edit", "generate", "show", "submit", "task", "tasks", "wait_all"]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _on_default_client(method: Callable[Concatenate[Client, _P], _R]) -> Callable[_P, _R]:
    """``method`` of :class:`Client` as a module function calling it on the default client.

    The parameters are typed once, on the client: the function has the method's signature
    (less ``self``) and documentation, for ``help()``, IDEs and mypy alike.
    """

    @functools.wraps(method)
    def on_default_client(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(default_client(), *args, **kwargs)

    signature = inspect.signature(method)
    on_default_client.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:])
    on_default_client.__doc__ = (
        f"``Client.{method.__name__}`` on the default client.\n\n{inspect.getdoc(method)}")
    on_default_client.__module__ = __name__
    del on_default_client.__wrapped__
    return on_default_client


submit = _on_default_client(Client.submit)
generate = _on_default_client(Client.generate)
edit = _on_default_client(Client.edit)
task = _on_default_client(Client.task)
tasks = _on_default_client(Client.tasks)
wait_all = _on_default_client(Client.wait_all)
