"""Project settings a team sets once: the shared metadata database, and who is running.

The metadata database URL of a command is, first found:

1. the command's ``--metadata`` option (or the ``metadata=`` argument of the API);
2. the ``HELIX_TF_METADATA`` environment variable;
3. ``metadata = "..."`` in the project's settings file, ``helix_tf.toml``, the first
   found in the config's folder or a folder above it;
4. the default: a SQLite file in the local store folder.

A team commits one ``helix_tf.toml`` at the root of its repository::

    # helix_tf.toml
    metadata = "postgresql://helix@db.internal:5432/helix"

The person running is ``HELIX_TF_USER`` when set, else the login name; runs record
it with the host name (``history`` shows them; ``history --mine`` keeps one's own).
:func:`current_user` and :func:`current_host` are :mod:`helix_tf.identity`'s,
re-exported: the store's leases name the person through the same functions.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

from helix_tf.errors import ConfigError, did_you_mean
from helix_tf.identity import USER_ENV, current_host, current_user

__all__ = [
    "SETTINGS_FILE",
    "METADATA_ENV",
    "USER_ENV",
    "Setting",
    "find_settings_file",
    "metadata_setting",
    "current_user",
    "current_host",
    "database_url",
    "is_server_url",
    "mask_password",
    "sqlite_url",
]

#: The name of the project settings file, looked for upward from the config's folder.
SETTINGS_FILE = "helix_tf.toml"
#: The environment variable holding the metadata database URL.
METADATA_ENV = "HELIX_TF_METADATA"

_KEYS = ("metadata",)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """A setting's value (None: the default applies) and where it came from."""

    value: str | None
    origin: str

    def describe(self) -> str:
        """``" (set by HELIX_TF_METADATA)"``, or ``""`` for an option or the default."""
        return f" (set by {self.origin})" if self.origin not in ("default", "--metadata") else ""


def find_settings_file(start: str | os.PathLike[str]) -> Path | None:
    """The first ``helix_tf.toml`` in ``start`` (a folder or a file's folder) or above it."""
    folder = Path(start).resolve()
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        path = candidate / SETTINGS_FILE
        if path.is_file():
            return path
    return None


def _read(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"cannot read the project settings {path}: {exc}; fix the file or remove it"
        ) from exc
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        hint = did_you_mean(unknown[0], list(_KEYS))
        raise ConfigError(
            f"{path}: unknown setting {unknown[0]!r}{hint}; known settings: {', '.join(_KEYS)}"
        )
    bad = [key for key, value in data.items() if not isinstance(value, str) or not value]
    if bad:
        raise ConfigError(
            f"{path}: setting {bad[0]!r} must be a non-empty string, but got {data[bad[0]]!r}"
        )
    return data


def metadata_setting(given: str | None, config: str | os.PathLike[str]) -> Setting:
    """The metadata database URL for ``config`` and where it came from (see the module)."""
    if given:
        return Setting(value=given, origin="--metadata")
    env = os.environ.get(METADATA_ENV)
    if env:
        return Setting(value=env, origin=METADATA_ENV)
    path = find_settings_file(config)
    if path is not None:
        value = _read(path).get("metadata")
        if value is not None:
            return Setting(value=_beside(value, path.parent), origin=str(path))
    return Setting(value=None, origin="default")


def _beside(value: str, folder: Path) -> str:
    """``value`` with a relative SQLite file (a path, or a ``sqlite:///`` URL) taken from
    ``folder``, the settings file's: the same database from any working directory.

    Before, ``metadata = "team.db"`` was the file in the folder a command ran from, so
    ``history`` from the repository's root missed what a run from a subfolder recorded.
    """
    from helix_tf.reuse.metadata._urls import sqlite_path, sqlite_url as url_of

    if "://" not in value:
        return str(folder / Path(value).expanduser())
    file = sqlite_path(value)
    if file is None or file.startswith("file:") or Path(file).expanduser().is_absolute():
        return value
    query = value.partition("?")[2]
    return url_of(folder / Path(file).expanduser()) + (f"?{query}" if query else "")


# The URL helpers live with the metadata store (the reuse layer needs nothing above
# it); imported when called, so importing this module stays cheap.


def database_url(url: str) -> str:
    """``url`` as SQLAlchemy takes it (see :func:`helix_tf.reuse.metadata._urls.database_url`)."""
    from helix_tf.reuse.metadata._urls import database_url as convert

    return convert(url)


def sqlite_url(path: Path | str) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path`` (see
    :func:`helix_tf.reuse.metadata._urls.sqlite_url`)."""
    from helix_tf.reuse.metadata._urls import sqlite_url as convert

    return convert(path)


def is_server_url(url: str | None) -> bool:
    """Whether ``url`` names a database server (not a SQLite file or memory)."""
    from helix_tf.reuse.metadata._urls import is_server_url as check

    return check(url)


def mask_password(url: str) -> str:
    """``url`` with the password of ``scheme://user:password@host`` replaced by ``***``."""
    from helix_tf.reuse.metadata._urls import mask_password as mask

    return mask(url)
