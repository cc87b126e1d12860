"""Database URLs as given by a person, as SQLAlchemy takes them, and as messages show them.

Here, in the metadata package, so that the reuse layer needs nothing above it;
:mod:`helix_tf.settings` re-exports them for the rest of helix_tf.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

__all__ = ["database_url", "is_server_url", "mask_password", "sqlite_path", "sqlite_url"]

#: What a path may keep as written in a SQLite URL: SQLAlchemy reads a ``?`` as the start
#: of the URL's query and decodes every ``%XX``, so those (and ``#``, and non-ASCII
#: letters) are percent-encoded. A folder named ``runs?v2`` or ``a%41b`` is then the
#: folder its database goes to (it went to ``runs`` and ``aAb``).
_PATH_SAFE = "/\\: "


def database_url(url: str) -> str:
    """``url`` as SQLAlchemy takes it: a path is a SQLite file; ``postgres://`` and a
    ``postgresql://`` without a driver use psycopg (version 3) unless psycopg2 is installed.
    """
    import importlib.util

    if "://" not in url:
        return sqlite_url(Path(url).expanduser().absolute())
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql") and importlib.util.find_spec("psycopg2") is None:
        return f"postgresql+psycopg://{rest}"
    if scheme == "postgres":
        return f"postgresql://{rest}"
    return url


def sqlite_url(path: Path | str, *, read_only: bool = False) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path``, whatever characters it holds.

    ``read_only``: opened read-only and immutable (no journal or lock files beside it: it
    opens in a folder that cannot be written), through SQLite's own ``file:`` URI, whose
    path is percent-encoded once more (SQLite decodes it after SQLAlchemy did).

    >>> sqlite_url("/data/runs?v2/metadata.db")
    'sqlite:////data/runs%3Fv2/metadata.db'
    >>> sqlite_path(sqlite_url("/data/a%41b/m.db", read_only=True))
    '/data/a%41b/m.db'
    """
    if read_only:
        uri = "file:" + quote(str(path), safe=_PATH_SAFE)
        return f"sqlite:///{quote(uri, safe=_PATH_SAFE)}?mode=ro&immutable=1&uri=true"
    return f"sqlite:///{quote(str(path), safe=_PATH_SAFE)}"


def sqlite_path(url: str) -> str | None:
    """The file path of the SQLite ``url`` (either form of :func:`sqlite_url`, or a URL a
    person wrote); None for another database, or SQLite in memory."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix:
        return None
    database = unquote(url[len(prefix) :].split("?", 1)[0])
    if database.startswith("file:"):  # SQLite's URI form: its own query and encoding
        database = unquote(database[len("file:") :].split("?", 1)[0].split("#", 1)[0])
    return database if database not in ("", ":memory:") else None


def is_server_url(url: str | None) -> bool:
    """Whether ``url`` names a database server (not a SQLite file or memory)."""
    return bool(url) and "://" in str(url) and not str(url).startswith("sqlite")


def mask_password(url: str) -> str:
    """``url`` with the password of ``scheme://user:password@host`` replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not (sep and at and ":" in credentials):
        return url
    return f"{scheme}://{credentials.partition(':')[0]}:***@{host}"
