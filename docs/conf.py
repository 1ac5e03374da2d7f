"""Sphinx configuration of the documentation site (``make docs``).

Sphinx + myst-nb + the PyData theme, the stack of ipywidgets' and JupyterLab's own sites:
the API reference comes from the docstrings (autodoc), the tutorials are the notebooks of
``notebooks/``, executed at build time against the offline emulator (nothing billed, no
token), their outputs shown through the views' static renditions. Warnings are errors
(``-W`` in the Makefile), so a broken cross-reference or a failing notebook fails the build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import nanobanana_widgets

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = Path(__file__).resolve().parent / "tutorials"

# Nothing is ever billed while building: the notebooks run against the emulator.
for name in ("ACEDATACLOUD_API_TOKEN", "ACEDATACLOUD_API_BASE_URL", "NANOBANANA_OFFLINE_DEMO"):
    os.environ.pop(name, None)

project = "nanobanana-widgets"
author = "nanobanana-widgets developers"
copyright = "2026, nanobanana-widgets developers"
release = nanobanana_widgets.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "myst_nb",
    "sphinx_design",
]

exclude_patterns = ["_build", "images/*.md", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["site.css"]

# --- the API reference ------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
python_use_unqualified_type_names = True
nitpicky = True
# Names from other projects (no intersphinx: the build runs offline) and typing helpers.
nitpick_ignore_regex = [
    (r"py:.*", r"(PIL|ipywidgets|traitlets|anywidget|IPython|pandas|requests|urllib3|numpy)"
               r"(\..*)?"),
    (r"py:.*", r"(os|pathlib|collections|collections\.abc|typing|concurrent\.futures|threading"
               r"|datetime|sqlite3|io|types|enum|asyncio|re)\..*"),
    (r"py:class", r"(Path|PathLike|Image|HTML|DataFrame|Widget|Callable|Iterable|Iterator"
                  r"|Sequence|Mapping|Hashable|Generator|Any|Literal|Self|TypeVar|ParamSpec"
                  r"|_P|_R|_E|P|R|T|Future|Event|Lock|RLock|Condition|Thread|Session|Response"
                  r"|HasTraits|CallbackDispatcher|DOMWidget|VBox|HBox|Box|Button|HTML|InteractiveShell|Magics"
                  r"|DataFrame-like|ellipsis|NoneType|module|builtins\..*)"),
    (r"py:.*", r"_.*"),  # private helpers named in signatures
    (r"py:class", r"t\..*"),  # traitlets' own annotations (``t.Any``)
    (r"py:class", r"PILImage\..*"),
    # Internal types that appear in signatures but are not part of the public API.
    (r"py:class",
     r"(.*\.)?(HistoryStore|Selection|ControlState|Slot|RecordTarget|Painter|RowModels)"),
]

# --- the tutorials ----------------------------------------------------------------------
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 180
# The kernels run in docs/tutorials/ (wiped of everything a previous build left there, see
# _prepare_tutorials), so the full-size copies the views link to (nanobanana-files/, beside
# the notebook) can be published beside the pages (_publish_linked_files).
nb_execution_in_temp = False
nb_merge_streams = True
# Our views carry a static rendition (text/html) beside the live widget view: the site shows
# the static one, which needs no kernel.
nb_mime_priority_overrides = [
    ("html", "text/html", 0),
    ("html", "application/vnd.jupyter.widget-view+json", 30),
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

BINDER = ("https://mybinder.org/v2/gh/nanobanana-widgets/nanobanana-widgets/HEAD"
          "?urlpath=lab/tree/notebooks/")

# --- the theme --------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "nanobanana-widgets"
html_theme_options: dict[str, Any] = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "article_header_end": ["binder-link"],
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_context = {"binder_url": BINDER, "default_mode": "auto"}
# The tutorials get the whole width (their grids and comparisons are wide).
html_sidebars = {"tutorials/*": []}
html_show_sourcelink = True


# What docs/tutorials/ keeps between builds; everything else there was written by a run.
_KEPT = {"index.md", ".gitignore"}
# The folder of full-size copies the static renditions link to (widgets/_static.py).
LINKED_FILES = "nanobanana-files"


def _prepare_tutorials(_app: Any) -> None:
    """The tutorials are ``notebooks/*.ipynb`` (committed without outputs): copy them in,
    after removing what earlier runs wrote (histories, saved images, full-size copies), so
    every build starts as a reader's first run (a tutorial's history starts empty)."""
    TUTORIALS.mkdir(exist_ok=True)
    sources = {p.name: p for p in (ROOT / "notebooks").glob("*.ipynb")}
    for entry in TUTORIALS.iterdir():
        if entry.name in _KEPT or entry.name in sources:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for source in sorted(sources.values()):
        target = TUTORIALS / source.name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)


def _publish_linked_files(app: Any, exception: Exception | None) -> None:
    """Copy the full-size images the tutorials' outputs link to next to their pages: a
    link in a static rendition is relative to the notebook (``nanobanana-files/…``)."""
    made = TUTORIALS / LINKED_FILES
    if exception is not None or app.builder.format != "html" or not made.is_dir():
        return
    target = Path(app.outdir) / "tutorials" / LINKED_FILES
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(made, target)


def _resolve_short_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a Python reference that names a documented object by a shorter or another
    path (``WaitTimeoutError``, ``nanobanana_widgets.store.History``) when exactly one
    documented object ends with that name: docstrings name things the way users import them.
    """
    if node.get("refdomain") != "py":
        return None
    target = str(node.get("reftarget", "")).lstrip("~.")
    last = target.rpartition(".")[2]
    objects = env.get_domain("py").objects
    found = sorted({name for name, entry in objects.items()
                    if name.rpartition(".")[2] == last and not entry.aliased})
    if len(found) != 1:
        found = sorted({n for n in found if n.endswith("." + target) or n == target})
    if len(found) != 1:
        return None
    from sphinx.util.nodes import make_refnode

    entry = objects[found[0]]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode,
                        found[0])


def _init_signature(app: Any, what: str, name: str, obj: Any, options: Any,
                    signature: str | None, return_annotation: str | None) -> Any:
    """Widgets take their parameters in ``__init__``, but traitlets' pass-through
    ``__new__(*args, **kwargs)`` is what autodoc finds first: show ``__init__``'s."""
    if what != "class" or not signature or "*args" not in signature:
        return None
    init = obj.__dict__.get("__init__") or next(
        (c.__dict__["__init__"] for c in obj.__mro__ if "__init__" in c.__dict__), None)
    if init is None:
        return None
    import inspect

    from sphinx.util.inspect import stringify_signature

    sig = inspect.signature(init)
    sig = sig.replace(parameters=list(sig.parameters.values())[1:],
                      return_annotation=inspect.Signature.empty)
    return stringify_signature(sig, unqualified_typehints=True), return_annotation


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", _init_signature)
    app.connect("builder-inited", _prepare_tutorials)
    app.connect("build-finished", _publish_linked_files)
    app.connect("missing-reference", _resolve_short_names)
