"""The client side: hand a ``helix-tf run``/``plan`` to the warm server, starting one if needed.

Used by the ``helix-tf`` entry point before anything heavy is imported. When no
server answers (or it is still importing, or refuses the request as stale) the
caller runs the command itself, so the server only ever makes runs start sooner.
In an interactive session the first run also starts the server in the background
(:func:`autostart_refusal` says when not), and a server left stale by a code or
package change is replaced by a fresh one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any, NoReturn, TextIO

from helix_tf._files import process_umask
from helix_tf.native_output import verbosity
from helix_tf.server._protocol import (
    STAMP_MEANING,
    receive,
    send,
    socket_path,
    stale_reasons,
    stamp_of,
    stamp_parts,
)
from helix_tf.server._starting import (
    expected_import_seconds,
    holder,
    holder_since,
    start_by_fork,
    start_in_background,
    stop_and_wait,
)

__all__ = [
    "SERVED",
    "autostart_refusal",
    "leave_served",
    "request",
    "run_in_server",
    "served",
    "server_mode",
]

#: Values of ``HELIX_TF_SERVER``: ``off`` never uses a server; ``on`` starts one even
#: without a terminal (benchmarks, scripts that want it); unset or ``auto`` starts one
#: only in an interactive session.
_OFF = ("off", "0", "no", "false")
_ON = ("on", "1", "yes", "true", "always")


def server_mode(environ: Mapping[str, str] | None = None) -> str:
    """``off``, ``on`` or ``auto``, from ``HELIX_TF_SERVER``."""
    value = (os.environ if environ is None else environ).get("HELIX_TF_SERVER", "").lower()
    return "off" if value in _OFF else "on" if value in _ON else "auto"


def autostart_refusal(
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> str | None:
    """Why this process must not start a server (``None``: it may).

    A server is started only for a person at a terminal: not when ``CI`` is set,
    not when standard input or output is not a terminal (pipes, scripts, test
    runners), not with ``HELIX_TF_SERVER=off``. ``HELIX_TF_SERVER=on`` starts one
    regardless.
    """
    environ = os.environ if environ is None else environ
    mode = server_mode(environ)
    if mode == "off":
        return "HELIX_TF_SERVER=off"
    if mode == "on":
        return None
    if environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        return "CI is set"
    for name, stream in (("input", stdin or sys.stdin), ("output", stdout or sys.stdout)):
        try:
            tty = stream is not None and stream.isatty()
        except (ValueError, OSError):  # a closed stream
            tty = False
        if not tty:
            return f"standard {name} is not a terminal"
    return None


def _connect() -> socket.socket | None:
    path = socket_path()
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def request(op: str) -> dict[str, Any] | None:
    """Ask the server for ``status`` or to ``stop``; ``None`` when none is running."""
    sock = _connect()
    if sock is None:
        return None
    with sock:
        sock.settimeout(10.0)
        send(sock, {"op": op})
        reply, _ = receive(sock)
        return reply


#: A run waits for a server that is importing only when it expects the imports to end
#: within this many seconds (by how long the last server's imports took here): less
#: than the run would spend importing the same libraries itself. Otherwise, and for a
#: ``plan`` (which imports neither TensorFlow nor Beam), it runs here at once.
WAIT_AT_MOST_S = 2.0


def _when_imported(argv: list[str]) -> socket.socket | None:
    """A connection to the server once it has finished importing; ``None`` to run here.

    A run that finds the server nearly done importing waits for it rather than import
    the same libraries beside it, competing for the same CPUs. A server far from done,
    still waiting for the run that started it, or none at all: ``None`` at once.
    """
    if argv[:1] != ["run"]:
        return None
    try:
        found = holder_since()
    except OSError:  # a server folder we may not use: no server of ours can be there
        return None
    if found is None or found[1] not in ("importing", "training"):
        return None
    remaining = expected_import_seconds() - (time.time() - found[2])
    if remaining > WAIT_AT_MOST_S:
        return None
    sys.stderr.write("helix-tf: waiting for the warm server to finish starting …\n")
    deadline = time.monotonic() + max(remaining, 0.0) + WAIT_AT_MOST_S
    while time.monotonic() < deadline:
        sock = _connect()
        if sock is not None:
            return sock
        if holder() is None:  # it exited while starting: run here
            return None
        time.sleep(0.05)
    return None


def _computes_from_scratch(argv: list[str]) -> bool:
    """Whether ``argv`` is a ``run`` into a local store with nothing stored yet.

    Such a run computes every node, so it imports TensorFlow, Keras and Arrow itself:
    importing them for the server first costs it next to nothing. A run into a store
    that holds results may load them and import none of those (an evaluation-only
    run: 6.7 s alone, 18 s paying the imports first, here at load 5), so it starts
    the server in the background instead. Read with the ``run`` command's own parser
    (this process imports the command line next anyway, to run the command here).
    """
    from helix_tf.server._daemon import run_store

    found = run_store(argv, os.getcwd())
    if found is None or found[1]:
        return False
    try:
        # The store's entry folder (reuse.store._fs._ARTIFACTS), named here because the
        # server may not import reuse (import contract): the client stays light.
        return not any((found[0] / "artifacts").iterdir())
    except OSError:  # no store folder yet (or none readable): nothing stored
        return True


def _start(argv: list[str], *, why: str = "") -> bool:
    """Start a server and say so; whether this call started one.

    A ``run`` into an empty store (:func:`_computes_from_scratch`) forks it from
    this process before either imports anything heavy
    (:func:`~helix_tf.server._starting.start_by_fork`); the server imports TensorFlow
    beside this run's own imports and work, which hands its trainings to the server's
    trainer once that is forked (:func:`_train_in_starting_server`). Any other command starts it in the
    background, importing once this process has ended (this run may import no
    TensorFlow at all: an evaluation-only run). A server that cannot be started
    (e.g. its folder is not private) never fails the run: it is said in one line and
    the run goes on here.
    """
    from_scratch = _computes_from_scratch(argv)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        if from_scratch:
            pid = start_by_fork(quiet=verbosity(argv) == 0)
        else:
            pid = start_in_background(after_pid=os.getpid())
    except KeyboardInterrupt:  # Ctrl-C while importing: as the command's own Ctrl-C
        sys.stderr.write("Aborted!\n")
        raise SystemExit(130) from None
    except OSError as exc:
        sys.stderr.write(f"note: could not start a helix-tf server ({exc}); running here\n")
        return False
    if from_scratch:
        # How much slower than its CPU time this process' imports went (other processes
        # on the machine): the server's imports beside it go as much slower.
        contention = (time.perf_counter() - wall) / max(time.process_time() - cpu, 1e-3)
        _train_in_starting_server(contention, forked=pid)
    if pid is None:
        return False
    sys.stderr.write(
        f"helix-tf: started a warm server{why} (pid {pid}) so that later runs start sooner; "
        "it exits after 3 idle hours. Stop it: helix-tf server stop; "
        "never start one: HELIX_TF_SERVER=off\n"
    )
    return True


def _train_in_starting_server(contention: float = 1.0, *, forked: int | None = None) -> None:
    """This run's trainings go to the trainer of the server starting now (ours, or one a
    run started at the same moment) once it is ready (:mod:`helix_tf.server._pending`).

    It waits for it at most as long as the server's imports take here
    (:func:`~helix_tf.server._starting.expected_import_seconds`, times ``contention``,
    at least 1): about what importing TensorFlow itself would cost this run. ``forked``:
    the server this run forked, which takes them also once ready: under load its imports
    can end before this run's (before, such a run trained by itself, and the trainer kept
    nothing of it).
    """
    found = holder()
    starting = ("starting", "importing", "training")
    if found is None or not (found[1] in starting or (found[0] == forked and found[1] == "ready")):
        return
    from helix_tf.components.trainers import use_remote
    from helix_tf.server._pending import StartingTrainer

    wait_s = expected_import_seconds() * min(max(contention, 1.0), 4.0)
    use_remote(StartingTrainer(found[0], socket_path(), wait_s=wait_s))


#: Commands handed to the warm server (and that start one at a terminal).
SERVED = ("run", "plan")


def served(argv: list[str]) -> int | None:
    """The exit code of ``helix-tf ARGV`` run by the warm server; ``None`` to run it here.

    Only a ``run`` or ``plan`` without ``--no-server`` goes to the server
    (:func:`run_in_server`).
    """
    if not (argv[:1] and argv[0] in SERVED and "--no-server" not in argv):
        return None
    return run_in_server(argv)


def leave_served(code: int) -> NoReturn:
    """End a client whose command the server ran: flush its streams, exit at once.

    The client holds nothing to finalise (no files, threads or results of its own:
    the served process wrote and recorded everything), and the interpreter's own
    teardown took ~25 ms of every served command at load 8 here.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to say
            stream.flush()
    os._exit(code)


def run_in_server(argv: list[str]) -> int | None:
    """Run ``helix-tf ARGV`` in the warm server; its exit code, or ``None`` to run here.

    No server running: start one in the background when :func:`autostart_refusal`
    allows (this run goes on here meanwhile). A server running older helix_tf code
    or packages: stop it and start a fresh one (same condition).
    """
    if server_mode() == "off":
        return None
    refusal = autostart_refusal()
    sock = _connect() or _when_imported(argv)
    if sock is None:
        if refusal is None:
            _start(argv)
        return None
    parts = stamp_parts()  # one walk of helix_tf's files for both
    message = {
        "op": "run",
        "argv": argv,
        "cwd": os.getcwd(),
        "umask": process_umask(),
        "env": dict(os.environ),
        "path": list(sys.path),
        "encoding": getattr(sys.stdout, "encoding", None),
        "stamp": stamp_of(parts),
        "parts": parts,
    }
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        send(sock, message, fds=[0, 1, 2])
        reply, _ = receive(sock)
    except (OSError, ValueError) as exc:  # e.g. a closed standard stream
        reply = {"error": f"could not hand the run over: {exc}"}
    if reply is None or "stale" in reply or "error" in reply:
        sock.close()
        _not_served(argv, reply, refusal)
        return None
    return _follow(sock, int(reply["pid"]), as_json="--json" in argv)


def _not_served(argv: list[str], reply: dict[str, Any] | None, refusal: str | None) -> None:
    """Say why a run is not served here; replace a stale server when allowed."""
    reasons = stale_reasons((reply or {}).get("parts") or {}, stamp_parts()) if reply else []
    if reply and "stale" in reply and set(reasons) - {"environment"}:
        why = ", ".join(STAMP_MEANING[r] for r in reasons)
        if (
            refusal is None
            and stop_and_wait()
            and _start(argv, why=f" in place of a stale one ({why})")
        ):
            return
        sys.stderr.write(
            f"note: not using the helix-tf server ({why}); running here. "
            "Restart it with: helix-tf server restart\n"
        )
        return
    if reply and "stale" in reply:
        why = ", ".join(STAMP_MEANING[r] for r in reasons) or reply["stale"]
        sys.stderr.write(
            f"note: not using the helix-tf server ({why} from its own); running here\n"
        )
        return
    why = (reply or {}).get("error") or "no answer"
    sys.stderr.write(
        f"note: not using the helix-tf server ({why}); running here. "
        "Restart it with: helix-tf server restart\n"
    )


def _follow(sock: socket.socket, child: int, *, as_json: bool = False) -> int:
    """Wait for the served run's exit status, forwarding Ctrl-C and SIGTERM to it.

    A run process that ends without one (killed) is an error here; with ``as_json``
    also as the ``--json`` error object on standard output (as every command's error).
    """

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with sock:
            while True:
                reply, _ = receive(sock)
                if reply is None:
                    message = (
                        "the helix-tf server's run process ended without an exit status; "
                        "the server log says why (helix-tf server status)"
                    )
                    sys.stderr.write(f"error: {message}\n")
                    if as_json:
                        from helix_tf.json_output import json_text

                        error = {"type": "ServerError", "message": message, "exit_code": 1}
                        sys.stdout.write(json_text({"error": error}) + "\n")
                        sys.stdout.flush()
                    return 1
                if "exit" in reply:
                    return int(reply["exit"])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
