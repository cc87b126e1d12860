"""The warm server: TensorFlow, Keras and Beam imported once, one fresh fork per run.

A ``helix-tf run`` pays ~3-4 s before any work starts (importing TensorFlow,
Keras and Beam). The server pays it once, then forks a child per request: the
child starts from the state right after those imports — no user module, no
model, no Keras policy or graph from an earlier run — exactly as a fresh
process would, only without the imports. It runs the CLI with the client's
arguments, working directory, environment, import path and standard streams,
and reports the exit code.

Correctness first: a request whose code stamp (helix_tf's files, the import
path, the environment variables TensorFlow reads at import) differs from the
server's is refused as stale and the client runs it itself.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from helix_tf.server._protocol import code_stamp, receive, send

__all__ = ["serve", "PRELOAD"]

log = logging.getLogger(__name__)

#: Imported before the first fork: what every training run needs and pays seconds for.
#: Only imports: nothing here may start a thread or open a connection (a fork keeps
#: neither working).
PRELOAD = (
    "tensorflow",
    "keras",
    "apache_beam",
    "apache_beam.runners.portability.fn_api_runner",
    "pyarrow.parquet",
    "pandas",
    "helix_tf.cli",
    "helix_tf.api",
    "helix_tf.engine.execute",
    "helix_tf.engine.beam_pipeline",
    "helix_tf.engine._learning",
    "helix_tf.components.keras_models",
    # What a run imports lazily after those (measured: ~0.15 s per run otherwise).
    "sqlite3",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "pyarrow.csv",
    "pyarrow.dataset",
    "fsspec.implementations.chained",
    "rich.logging",
    "rich.json",
    "tensorflow.python.data.ops.concatenate_op",
    "tensorflow.python.data.ops.flat_map_op",
    "tensorflow.python.data.ops.from_tensors_op",
    "tensorflow.python.data.ops.range_op",
    "tensorflow.python.data.ops.zip_op",
    "helix_tf.reuse.metadata",
    "helix_tf.reuse.materialize",
    "helix_tf.reuse.store",
    "helix_tf.engine.runners",
    "helix_tf.sample_data",
)


class _State:
    def __init__(self, stamp: str, preload_seconds: float) -> None:
        self.stamp = stamp
        self.preload_seconds = preload_seconds
        self.started = time.time()
        self.runs = 0
        self.children: dict[int, tuple[list[str], float]] = {}
        self.stop = False


def _check_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(
            f"{folder} must belong to you and not be writable by others (it holds the server "
            "socket); remove it or set HELIX_TF_SERVER_DIR to a private folder"
        )


def _claim(path: Path) -> None:
    """Remove a socket left by a server that died; refuse if one is answering."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise RuntimeError(f"a helix-tf server is already running on {path}")


def serve(path: Path, *, idle_timeout: float = 3 * 3600, on_ready: Any = None) -> None:
    """Preload, listen on ``path`` and serve until stopped or idle for ``idle_timeout`` s."""
    _check_folder(path.parent)
    _claim(path)
    t0 = time.perf_counter()
    for name in PRELOAD:
        importlib.import_module(name)
    state = _State(code_stamp(), time.perf_counter() - t0)
    log.info("preloaded %d modules in %.2fs", len(PRELOAD), state.preload_seconds)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)

    def request_stop(signum: int, frame: Any) -> None:
        state.stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if on_ready is not None:
        on_ready(state)
    last_active = time.monotonic()
    try:
        while not state.stop:
            _reap(state)
            if state.children:
                last_active = time.monotonic()
            ready, _, _ = select.select([listener], [], [], 0.5)
            if not ready:
                if time.monotonic() - last_active > idle_timeout:
                    log.info("idle for %.0fs: stopping", idle_timeout)
                    break
                continue
            conn, _ = listener.accept()
            last_active = time.monotonic()
            try:
                _accept(conn, listener, state)
            except Exception:
                log.exception("request failed")
            finally:
                conn.close()
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        for pid in list(state.children):
            _wait(state, pid, 0)
        log.info("stopped after %d run(s)", state.runs)


def _reap(state: _State) -> None:
    for pid in list(state.children):
        _wait(state, pid, os.WNOHANG)


def _wait(state: _State, pid: int, flags: int) -> None:
    try:
        done, status = os.waitpid(pid, flags)
    except ChildProcessError:
        state.children.pop(pid, None)
        return
    if done:
        argv, t0 = state.children.pop(pid)
        log.info(
            "run %d (%s) ended with status %d after %.2fs",
            pid,
            " ".join(argv),
            os.waitstatus_to_exitcode(status),
            time.monotonic() - t0,
        )


def _accept(conn: socket.socket, listener: socket.socket, state: _State) -> None:
    conn.settimeout(10.0)
    request, fds = receive(conn, max_fds=3)
    try:
        if request is None:
            return
        op = request.get("op")
        if op == "status":
            send(
                conn,
                {
                    "pid": os.getpid(),
                    "started": state.started,
                    "preload_seconds": round(state.preload_seconds, 3),
                    "runs": state.runs,
                    "active": len(state.children),
                    "stamp": state.stamp,
                },
            )
        elif op == "stop":
            state.stop = True
            send(conn, {"stopping": True})
        elif op == "run":
            if request.get("stamp") != state.stamp:
                send(conn, {"stale": "helix_tf, the installed packages or the environment changed"})
                return
            if len(fds) != 3:
                send(conn, {"error": "a run request carries stdin, stdout and stderr"})
                return
            pid = os.fork()
            if pid == 0:
                listener.close()
                os._exit(_child(conn, request, fds))
            state.runs += 1
            state.children[pid] = (list(request["argv"]), time.monotonic())
        else:
            send(conn, {"error": f"unknown request {op!r}"})
    finally:
        for fd in fds:
            os.close(fd)


def _child(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> int:
    """In the forked child: become the client's process, run the CLI, report the code."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        conn.settimeout(None)
        send(conn, {"pid": os.getpid()})
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = list(request["path"])
        sys.argv = ["helix-tf", *request["argv"]]
        encoding = request.get("encoding") or "utf-8"
        sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding=encoding, closefd=False, buffering=1)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding=encoding, closefd=False, buffering=1)  # noqa: SIM115
        from helix_tf.cli import run_cli

        code = run_cli(list(request["argv"]))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"error: the helix-tf server's run failed: {exc!r}\n")
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # The client may have gone away; the run's results are recorded anyway.
        with contextlib.suppress(OSError):
            send(conn, {"exit": code})
    return code
