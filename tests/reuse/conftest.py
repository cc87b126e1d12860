"""Fixtures for the reuse tests: a GCS emulator for gs:// artifact stores."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

GCS_BUCKET = "helix-test"

_EMULATOR_ENV = {
    # Must be set before gcsfs is imported, or every write stalls for ~90 s.
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    "NO_GCE_CHECK": "true",
}


def _emulator_executable() -> str | None:
    found = shutil.which("gcp-storage-emulator")
    if found:
        return found
    beside = Path(sys.executable).with_name("gcp-storage-emulator")
    return str(beside) if beside.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run ``gcp-storage-emulator`` on a free local port for the session.

    Sets ``STORAGE_EMULATOR_HOST`` (and the settings gcsfs needs before import) for the
    test process and its children, creates the bucket :data:`GCS_BUCKET` and yields the
    emulator's URL. Skips when the executable is not installed.
    """
    exe = _emulator_executable()
    if exe is None:
        pytest.skip(
            "gcp-storage-emulator is not installed (pip install gcp-storage-emulator); "
            "gs:// artifact-store tests skipped"
        )
    port = _free_port()
    log_path = tmp_path_factory.mktemp("gcs-emulator") / "emulator.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [exe, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # A busy machine may take more than 30 s to import and start the emulator.
        if not _wait_for_port(port, proc, timeout=120.0):
            pytest.fail(f"GCS emulator did not start; its log:\n{log_path.read_text()}")
        host = f"http://127.0.0.1:{port}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", host)
            for key, value in _EMULATOR_ENV.items():
                mp.setenv(key, value)
            from gcsfs.core import GCSFileSystem  # after the environment is set

            fs = GCSFileSystem(token="anon", skip_instance_cache=True)
            fs.mkdir(GCS_BUCKET)
            yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def emulator_env(gcs_emulator: str) -> dict[str, str]:
    """Environment for subprocesses that talk to the emulator."""
    return {**os.environ, "STORAGE_EMULATOR_HOST": gcs_emulator, **_EMULATOR_ENV}
