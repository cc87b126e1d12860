"""The distributions installed in a folder of the import path (:func:`distributions`):
what both the warm server's code stamp and the fingerprints' library identities follow.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping

__all__ = ["distributions", "import_providers", "path_state"]

#: folder -> (its modification time, what :func:`distributions` read there then).
_READ: dict[str, tuple[int, str]] = {}


def distributions(folder: str) -> str:
    """The distributions installed in ``folder``: each ``*.dist-info``/``*.egg-info``
    entry's name and modification time, as one text (``""`` for none).

    An install, upgrade or reinstall replaces such an entry, and so does a build writing
    metadata beside a source tree (``setup.py sdist`` writes ``NAME.egg-info``). The
    folder's own modification time follows every file a project writes there (a store,
    results), so it only tells when to read the folder again, never by itself that
    something was installed. ``""`` for a folder that cannot be listed.
    """
    try:
        mtime = os.stat(folder or ".").st_mtime_ns
    except OSError:
        return ""
    known = _READ.get(folder)
    if known is not None and known[0] == mtime:
        return known[1]
    try:
        with os.scandir(folder or ".") as entries:
            found = sorted(
                f"{e.name}\0{e.stat(follow_symlinks=False).st_mtime_ns}"
                for e in entries
                if e.name.endswith((".dist-info", ".egg-info"))
            )
    except OSError:
        return ""
    text = "|".join(found)
    _READ[folder] = (mtime, text)
    return text


def path_state() -> tuple[tuple[str, str], ...]:
    """``sys.path`` with the distributions each folder holds (:func:`distributions`): what
    the distributions' metadata is looked up in. Installing, upgrading or reinstalling a
    package, or a build writing metadata beside a source tree, changes it; other files
    written in those folders (a store in the project folder) leave it as it was. What is
    read from the metadata is cached under it, so a long-lived process (the warm server,
    the agent, a test session) reads again what a fresh process would read.

    A folder that holds no distribution is left out: no metadata is found there, so
    where it lies on the path changes no lookup. A config's folder, which loading it
    puts on the path, thus leaves the state as the warm server read it (before, each
    served run read the library versions of its fingerprints again, ~5–15 ms). A path
    entry that is not a folder (a zip archive, an egg) stays, as it may hold metadata.
    """
    return tuple(
        (entry, held)
        for entry in sys.path
        if (held := distributions(entry)) or not os.path.isdir(entry or ".")
    )


@functools.lru_cache(maxsize=4)
def import_providers(state: tuple[tuple[str, str], ...]) -> Mapping[str, list[str]]:
    """Import packages to the distributions that install them, for path ``state``
    (:func:`path_state`; listing every distribution takes ~0.3 s). ``importlib.metadata``
    is imported here, not with this module: the ``helix-tf`` client that hands a run to
    the warm server reads :func:`distributions` only (its import took ~20 ms per run)."""
    import importlib.metadata

    return importlib.metadata.packages_distributions()
