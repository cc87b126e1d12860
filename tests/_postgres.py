"""A real PostgreSQL server for the tests, started from the server binaries on PATH.

The server refuses to run as root, so as root it runs as an unprivileged system user
(``postgres`` when it exists, else ``helixpg``, created with ``useradd``) through
``runuser``; its data folder is a fresh temporary folder that user owns, it listens on
a free TCP port of 127.0.0.1 only, trusts local connections, and is stopped (and its
folder removed) at the end of the session. :func:`find_binaries` is None when the
binaries are absent: the tests that need the server then skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_USERS = ("postgres", "helixpg")
_counter = itertools.count()


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``; None when absent."""
    found = shutil.which("initdb")
    folders = [Path(found).parent] if found else []
    folders += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in folders:
        if all((folder / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """The user the server runs as when we are root (created if need be); None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in _USERS:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", _USERS[1]],
        capture_output=True,
        text=True,
    )
    try:  # another test session on this machine may have created it just now
        pwd.getpwnam(_USERS[1])
    except KeyError:
        raise RuntimeError(f"could not create the user {_USERS[1]}: {made.stderr}") from None
    return _USERS[1]


@dataclass(frozen=True)
class PostgresServer:
    """A running server: ``url(database)`` is a SQLAlchemy URL of one of its databases."""

    port: int
    folder: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        import sqlalchemy as sa

        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        engine = sa.create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return self.url(name)


@contextlib.contextmanager
def running_server(binaries: Path) -> Iterator[PostgresServer]:
    """Start a throwaway server (see the module's docstring); stop it afterwards."""
    user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="helix-pg-"))
    if user is not None:
        shutil.chown(folder, user)
    as_user = ["runuser", "-u", user, "--"] if user is not None else []
    data = folder / "data"
    initdb = [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(
        [*as_user, *initdb, "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    pg_ctl = [*as_user, str(binaries / "pg_ctl"), "-D", str(data)]
    log = folder / "server.log"
    # The free port is free when chosen, not necessarily when the server binds it (another
    # process on the machine may take it in between): then start again on another.
    for attempt in itertools.count(1):
        port = _free_port()
        options = f"-p {port} -h 127.0.0.1 -k {folder} -c fsync=off -c max_connections=200"
        started = subprocess.run(
            [*pg_ctl, "-o", options, "-l", str(log), "-w", "-t", "300", "start"],
            capture_output=True,
            text=True,
        )
        if started.returncode == 0:
            break
        text = log.read_text(errors="replace") if log.exists() else ""
        if attempt >= 5 or "could not bind" not in text:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{text[-3000:]}")
    try:
        yield PostgresServer(port=port, folder=folder)
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
