"""What of a served run's process state the server's trainer takes on for its requests.

The trainer is another process: whatever the run's process set for itself, it does not
see. A request (a training, a kept model's scoring or save) carries
:func:`of_this_process` and the trainer answers it under :func:`taken_on`, so it does
what the run would have done itself (QA 24): the files it writes (a model's
``.keras``) take the run's umask, not the server's (under ``umask 077`` a served run's
model file was readable by everyone), and a warning is what the run's filters make of
it (a config's ``warnings.simplefilter("error")`` failed a local training on a library's
warning while the trainer went on; now the trainer fails too, and the run then does the
work itself, failing as a local run does).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from helix_tf._files import process_umask

__all__ = ["of_this_process", "taken_on"]


def of_this_process() -> dict[str, Any]:
    """The state a request carries: the umask and the warning filters."""
    return {"umask": process_umask(), "warnings": list(warnings.filters)}


@contextlib.contextmanager
def taken_on(state: Mapping[str, Any]) -> Iterator[None]:
    """The body runs under ``state`` (:func:`of_this_process` of the run); after it, this
    process' own umask and filters. A missing part (an older client's request): ours."""
    with warnings.catch_warnings():
        if state.get("warnings") is not None:
            warnings.filters[:] = list(state["warnings"])
        before = os.umask(int(state["umask"])) if state.get("umask") is not None else None
        try:
            yield
        finally:
            if before is not None:
                os.umask(before)
