"""Keep TensorFlow's native start-up and graph-rewrite chatter off the user's terminal.

TensorFlow, XLA and CUDA log from C++ straight to file descriptor 2 ("oneDNN
custom operations are on", "failed call to cuInit", "NodeDef mentions attribute
...", absl's "All log messages before absl::InitializeLog() ..."), twice per run
(once per import of its two halves), bypassing Python's logging. At default
verbosity the CLI points descriptor 2 at a temporary file for the whole command,
while Python's ``sys.stderr`` (progress, tables, errors, warnings) keeps writing
to the terminal through a duplicate of the original descriptor. What the
native side wrote is dropped when the command succeeds; when it fails, the lines
that are not known chatter are shown (a native crash's own message is not lost).
With ``-v`` nothing is redirected.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["CHATTER", "is_chatter", "quiet_native_stderr", "verbosity"]

#: Lines native libraries log on their own: absl (``I0000 00:00:1796227573.569412  11148
#: port.cc:153] ...``), TensorFlow's older format (``2024-01-02 03:04:05.678901: W
#: tensorflow/...``), absl's pre-initialisation notice, and the continuation line of
#: TensorFlow's CPU-feature notice.
CHATTER = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s\]]+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow)"
)


def is_chatter(line: str) -> bool:
    """Whether ``line`` is a native library's own log line (not a program's message).

    >>> is_chatter("I0000 00:00:1796227573.569412   11148 port.cc:153] oneDNN custom ops")
    True
    >>> is_chatter("E0000 00:00:1.5  7 cuda_executor.cc:1228] failed call to cuInit: UNKNOWN")
    True
    >>> is_chatter("Segmentation fault")
    False
    """
    return bool(CHATTER.match(line))


def verbosity(argv: list[str]) -> int:
    """The ``-v`` count of a ``helix-tf`` command line (options end at ``--``)."""
    count = 0
    for arg in argv:
        if arg == "--":
            break
        if arg == "--verbose":
            count += 1
        elif re.fullmatch(r"-v+", arg):
            count += len(arg) - 1
    return count


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[list[int]]:
    """Redirect descriptor 2 to a temporary file while Python's ``sys.stderr`` stays put.

    Yields a one-element list the caller sets to the command's exit code: on a
    non-zero code the captured lines that are not :func:`is_chatter` are replayed
    to the real standard error.
    """
    code = [0]
    if not enabled:
        yield code
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable standard error: nothing to do
        yield code
        return
    previous = sys.stderr
    encoding = getattr(previous, "encoding", None) or "utf-8"
    errors = getattr(previous, "errors", None) or "backslashreplace"
    stderr = open(  # noqa: SIM115  (closed below)
        terminal, "w", encoding=encoding, errors=errors, buffering=1, closefd=False
    )
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        sys.stderr = stderr
        fault = faulthandler.is_enabled()
        faulthandler.enable(file=stderr)  # a native crash's traceback still reaches the user
        try:
            yield code
        finally:
            with contextlib.suppress(Exception):
                stderr.flush()
            os.dup2(terminal, 2)
            sys.stderr = previous
            if fault:
                faulthandler.enable(file=previous)
            else:
                faulthandler.disable()
            stderr.close()
            os.close(terminal)
            if code[0]:
                capture.seek(0)
                # Closed here (it closes the file too): one left to the collector was a
                # ResourceWarning on the user's terminal under `-W error` (QA 24).
                with io.TextIOWrapper(capture, encoding="utf-8", errors="replace") as captured:
                    text = captured.read()
                kept = [line for line in text.splitlines() if line and not is_chatter(line)]
                if kept:
                    previous.write("\n".join(kept) + "\n")
                    previous.flush()
