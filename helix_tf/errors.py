"""The exception hierarchy: one root, one class per stage that can fail.

Every message names what is wrong, the value received, what was expected and how
to fix it, with a file/line or row number where there is one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "did_you_mean",
    "missing_name",
    "HelixError",
    "ConfigError",
    "CompileError",
    "PlanError",
    "ExecutionError",
    "DataError",
    "SampledDataError",
    "StoreError",
    "interrupted",
]


class HelixError(Exception):
    """Root of every error helix_tf raises on purpose."""


class ConfigError(HelixError):
    """A config module cannot be loaded or declares something invalid.

    ``problems`` holds every problem found, so one run reports them all.
    """

    def __init__(self, problems: str | Sequence[str], *, path: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.path = path
        super().__init__(_join(self.problems, path))


class CompileError(ConfigError):
    """The workflow's DAG is invalid (types, names, cycles, unknown columns)."""


class PlanError(HelixError):
    """No valid reuse plan exists (e.g. an output can be neither computed nor loaded)."""


class ExecutionError(HelixError):
    """An operator failed while running; ``node`` names it."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        self.node = node
        super().__init__(f"operator {node!r} failed: {message}" if node else message)


class DataError(ExecutionError):
    """Input data is malformed: the message names the file, the line and the fix."""


class SampledDataError(DataError):
    """A check (or an operator, a user's ``fit``) failed in an approximate run whose
    sources read a sample of the training rows: what the sample taught (a label's values,
    the rows it kept) may not be what the whole training split teaches, so the exact run
    may pass it. A run retries such a
    failure with the sample drawn at training, from examples of every row
    (:func:`helix_tf._running.run_once`). ``found``: what failed, without the node and
    the sample's ``note`` that follow it in the message."""

    def __init__(self, found: str, *, note: str, node: str | None = None) -> None:
        self.found, self.note = found, note
        super().__init__(f"{found}. Note: {note}", node=node)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled to a served run's client, say
        return (_sampled_data_error, (self.found, self.note, self.node))


def _sampled_data_error(found: str, note: str, node: str | None) -> SampledDataError:
    """A pickled :class:`SampledDataError` again (its arguments are keywords)."""
    return SampledDataError(found, note=note, node=node)


class StoreError(HelixError):
    """The artifact store or metadata database cannot be used."""


def interrupted(exc: BaseException) -> bool:
    """Whether a Ctrl-C is behind ``exc``: in its chain of causes and contexts.

    A ``KeyboardInterrupt`` that lands inside a library (Beam's runner, Keras' loop)
    often surfaces as another error raised while it unwound ("release unlocked
    lock"); such an error is the user's Ctrl-C, never a failure to report.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, KeyboardInterrupt):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _join(problems: Sequence[str], path: str | None) -> str:
    where = f" in {path}" if path else ""
    if len(problems) == 1:
        # A problem that already names its place ("configs/x.py:29: ...") says it once.
        if not path or problems[0].startswith(f"{path}:"):
            return problems[0]
        return f"{path}: {problems[0]}"
    lines = [f"{len(problems)} errors{where}:"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidates, or ``""``.

    A candidate is close when it differs in case only, when difflib finds it
    similar, or when it is one or two edits away (``l9`` -> ``l1`` or ``l2``);
    ties are all named, at most three.

    Examples
    --------
    >>> did_you_mean("l9", ["l1", "l2", "epochs"])
    " (did you mean 'l1' or 'l2'?)"
    >>> did_you_mean("zzz", ["l1"])
    ''
    """
    pool = sorted({str(c) for c in candidates})
    if not pool or not isinstance(name, str):
        return ""
    same_case = [c for c in pool if c.lower() == name.lower()]
    import difflib  # here: the served run's client imports this module, not difflib

    close = same_case or difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        limit = 1 if len(name) <= 4 else 2
        distances = {c: _edits(name.lower(), c.lower()) for c in pool}
        best = min(distances.values())
        if best <= limit and best < max(len(name), 1):
            close = [c for c in pool if distances[c] == best][:3]
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)"


def missing_name(module: str, name: str, public: Iterable[str]) -> AttributeError:
    """The error for ``module.name`` where a public namespace has no ``name``: the closest
    public names and all of them (a misspelled ``metrics.AUCC`` in a config).

    >>> str(missing_name("helix_tf.components.metrics", "AUCC", ["AUC", "LogLoss"]))
    "helix_tf.metrics has no 'AUCC' (did you mean 'AUC'?); its names are: AUC, LogLoss"
    """
    shown = module.replace("helix_tf.components.", "helix_tf.")
    if name.startswith("__") and name.endswith("__"):  # Python's own probes stay plain
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    names = sorted(n for n in public if not n.startswith("_"))
    return AttributeError(
        f"{shown} has no {name!r}{did_you_mean(name, names)}; its names are: {', '.join(names)}"
    )


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]
