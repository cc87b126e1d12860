"""Database URLs as given by a person, as SQLAlchemy takes them, and as messages show them.

Here, in the metadata package, so that the reuse layer needs nothing above it;
:mod:`helix_tf.settings` re-exports them for the rest of helix_tf.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["database_url", "is_server_url", "mask_password"]


def database_url(url: str) -> str:
    """``url`` as SQLAlchemy takes it: a path is a SQLite file; ``postgres://`` and a
    ``postgresql://`` without a driver use psycopg (version 3) unless psycopg2 is installed.
    """
    import importlib.util

    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().absolute()}"
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql") and importlib.util.find_spec("psycopg2") is None:
        return f"postgresql+psycopg://{rest}"
    if scheme == "postgres":
        return f"postgresql://{rest}"
    return url


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
