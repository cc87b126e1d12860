"""Imports of optional dependencies: a missing one names the extra that installs it.

Every import of a package that is not in ``install_requires`` goes through
:func:`optional_import` (``tests/test_optional.py`` checks that no module imports one
directly), so ``helix-tf report`` without matplotlib says ``pip install
'helix-tf[report]'`` instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
import types

from helix_tf.errors import HelixError

__all__ = ["OPTIONAL", "MissingDependencyError", "agg_figure", "optional_import"]

#: Top-level module -> (the extra that installs it, the pip requirement).
OPTIONAL: dict[str, tuple[str, str]] = {
    "matplotlib": ("report", "matplotlib>=3.8"),
    "psycopg": ("team", "psycopg[binary]>=3.1"),
}


class MissingDependencyError(HelixError, ImportError):
    """An optional dependency a command needs is not installed."""


def optional_import(name: str, *, purpose: str) -> types.ModuleType:
    """Import module ``name`` (e.g. ``"matplotlib.figure"``) of an optional package.

    ``purpose`` says what needs it ("helix-tf report draws its charts"); the error
    names the package, the purpose and the install command.
    """
    top = name.split(".")[0]
    extra, requirement = OPTIONAL[top]
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} with {top}, which is not installed ({exc}); install it with "
            f"pip install 'helix-tf[{extra}]' (or pip install '{requirement}')"
        ) from exc


def agg_figure(width: float, height: float, *, purpose: str) -> object:
    """A matplotlib ``Figure`` on an Agg canvas (works without a display), laid out
    ``constrained``; raises :class:`MissingDependencyError` without matplotlib."""
    canvas = optional_import("matplotlib.backends.backend_agg", purpose=purpose).FigureCanvasAgg
    figure = optional_import("matplotlib.figure", purpose=purpose).Figure
    fig = figure(figsize=(width, height), dpi=100, layout="constrained")
    canvas(fig)
    return fig
