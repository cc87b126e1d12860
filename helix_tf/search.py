"""Search spaces for the think-time agent: what it may change in a config, and how far.

A config may declare next to ``PARAMS``::

    from helix_tf import search

    PARAMS = {"model": "linear", "use_gain": True}
    SEARCH = {
        "learner.l2": search.Float(1e-6, 1e-2, log=True),      # an operator parameter
        "learner.learning_rate": search.Float(1e-3, 0.1, log=True),
        "model": search.Choice("linear", "dnn"),              # an operator swap (a PARAMS key)
        "use_gain": search.Choice(True, False),               # an optional feature
    }

Every key is something ``-p`` accepts (``node.param``, a declared PARAMS key, or a
structural edit of :mod:`helix_tf.edits` such as ``model:learner``), so every
proposal is a reproducible ``-p`` change. Without ``SEARCH`` the agent derives a
space from the workflow and its source's schema (:func:`search_space`): learner
hyper-parameters around their current values (regularisation, learning rate,
epochs, batch size), vocabulary minimum counts (current, ×5, ×25), and the
structural edits: the model type (``model:``), each unused source column as a
feature (``add:``, never the label), each numeric feature bucketized at the
training split's deciles (``bucketize:``), and hashed crosses of pairs of
vocabulary features (``cross:``, the first :data:`MAX_CROSSES` pairs).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from helix_tf.errors import ConfigError
from helix_tf.roles import Role

__all__ = [
    "Float",
    "Int",
    "Choice",
    "SearchSpace",
    "search_space",
    "declared_space",
    "SEARCH_NAME",
    "MAX_CROSSES",
    "CROSS_BUCKETS",
]

#: The module-level name a config declares its space under.
SEARCH_NAME = "SEARCH"
#: A derived space crosses at most this many pairs of vocabulary features.
MAX_CROSSES = 6
#: Hash buckets of a derived cross.
CROSS_BUCKETS = 1000


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclasses.dataclass(frozen=True, slots=True)
class Float:
    """A real number in ``[low, high]``, searched on a log scale with ``log=True``.

    >>> Float(1e-4, 1e-1, log=True).describe()
    'float in [0.0001, 0.1], log scale'
    """

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_range(self, "Float")

    def describe(self) -> str:
        return f"float in [{self.low:g}, {self.high:g}]" + (", log scale" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}

    def example(self) -> Any:
        return float(self.low)

    def extremes(self) -> tuple[Any, ...]:
        """The values a trial may take that a config could refuse: both bounds."""
        return float(self.low), float(self.high)


@dataclasses.dataclass(frozen=True, slots=True)
class Int:
    """An integer in ``[low, high]``, searched on a log scale with ``log=True``."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int)):
            raise ConfigError(
                f"search.Int needs integer bounds, but got low={self.low!r}, high={self.high!r}"
            )
        _check_range(self, "Int")

    def describe(self) -> str:
        return f"int in [{self.low}, {self.high}]" + (", log scale" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log}

    def example(self) -> Any:
        return int(self.low)

    def extremes(self) -> tuple[Any, ...]:
        """The values a trial may take that a config could refuse: both bounds."""
        return int(self.low), int(self.high)


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Choice:
    """One of a few values (numbers, strings, booleans, None): ``Choice("linear", "dnn")``."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        if len(values) == 1 and isinstance(values[0], list | tuple):
            values = tuple(values[0])
        if len(values) < 2:
            raise ConfigError(f"search.Choice needs at least two values, but got {values!r}")
        bad = [v for v in values if not (v is None or isinstance(v, bool | int | float | str))]
        if bad:
            raise ConfigError(
                f"search.Choice values must be numbers, strings, booleans or None (what -p "
                f"accepts), but got {bad!r}; name the alternatives in PARAMS and choose by name"
            )
        object.__setattr__(self, "values", tuple(values))

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}

    def example(self) -> Any:
        """A value to check the key with: the first that is not None (None: no edit)."""
        return next((v for v in self.values if v is not None), self.values[0])

    def extremes(self) -> tuple[Any, ...]:
        """Every value a trial may take (None, where it is one, leaves the key as written
        for an edit and is the example's alternative otherwise: checked last)."""
        values = tuple(v for v in self.values if v is not None)
        return values or self.values


Dimension = Float | Int | Choice


def _check_range(dim: Float | Int, kind: str) -> None:
    if not (_number(dim.low) and _number(dim.high)):
        raise ConfigError(
            f"search.{kind} needs finite numeric bounds, but got low={dim.low!r}, high={dim.high!r}"
        )
    if not dim.low < dim.high:
        raise ConfigError(
            f"search.{kind}: low < high must hold, but got low={dim.low!r}, high={dim.high!r}"
        )
    if dim.log and dim.low <= 0:
        raise ConfigError(f"search.{kind}(log=True): low > 0 must hold, but got low={dim.low!r}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SearchSpace:
    """The dimensions the agent searches, keyed by ``-p`` key, and their current values."""

    dimensions: dict[str, Dimension]
    current: dict[str, Any]
    declared: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "declared": self.declared,
            "dimensions": {
                k: {**d.to_dict(), "current": self.current.get(k)}
                for k, d in self.dimensions.items()
            },
        }

    def lines(self) -> list[str]:
        """One line per dimension, for the CLI."""
        return [
            f"{k}: {d.describe()} (now {self.current.get(k)!r})" for k, d in self.dimensions.items()
        ]


def _log_around(value: float, factor: float, floor: float) -> Float:
    if value > 0:
        return Float(value / factor, value * factor, log=True)
    return Float(floor, floor * factor * factor, log=True)


def _derived(workflow: Any) -> tuple[dict[str, Dimension], dict[str, Any]]:
    """A space from the workflow: learner hyper-parameters, vocabulary minimum counts."""
    from helix_tf.components.features import Vocabulary
    from helix_tf.components.learners import DNN, Learner

    dims: dict[str, Dimension] = {}
    current: dict[str, Any] = {}
    for d in workflow.declarations:
        op = d.op
        if d.role == Role.TRAIN and isinstance(op, Learner):
            for name, floor in (("l1", 1e-6), ("l2", 1e-6)):
                dims[f"{d.name}.{name}"] = _log_around(float(getattr(op, name)), 100.0, floor)
            dims[f"{d.name}.learning_rate"] = _log_around(float(op.learning_rate), 10.0, 1e-3)
            dims[f"{d.name}.epochs"] = Int(max(1, op.epochs // 2), max(2, op.epochs * 2))
            sizes = sorted(
                {max(32, op.batch_size // 4), max(32, op.batch_size // 2), op.batch_size}
            )
            if len(sizes) > 1:
                dims[f"{d.name}.batch_size"] = Choice(*sizes)
            if isinstance(op, DNN):
                dims[f"{d.name}.dropout"] = Float(0.0, 0.5)
                dims[f"{d.name}.embedding_dim"] = Choice(4, 8, 16)
            names = (
                "l1",
                "l2",
                "learning_rate",
                "epochs",
                "batch_size",
                "dropout",
                "embedding_dim",
            )
            for name in names:
                if f"{d.name}.{name}" in dims:
                    current[f"{d.name}.{name}"] = getattr(op, name)
        elif d.role == Role.FEATURE and isinstance(op, Vocabulary):
            # A few values, not a range: trials repeat them and so share preprocessing.
            m = max(1, op.min_count)
            dims[f"{d.name}.min_count"] = Choice(m, m * 5, m * 25)
            current[f"{d.name}.min_count"] = op.min_count
    return dims, current


def _used_columns(workflow: Any) -> set[str]:
    """Source columns the workflow reads: feature inputs and labels."""
    used: set[str] = set()
    for d in workflow.declarations:
        if d.role == Role.FEATURE and d.op is not None:
            used.update(c for c in d.op.inputs() if isinstance(c, str))
        elif d.role == Role.EXAMPLES:
            column = getattr(d.op, "column", None)
            if isinstance(column, str):
                used.add(column)
    return used


def _deciles(source: Any, columns: list[str]) -> dict[str, str]:
    """Bucketize boundaries per numeric column: its training split's deciles (3 digits)."""
    import numpy as np

    from helix_tf.components.sources import read_all

    if not columns:
        return {}
    try:
        frame = read_all(source, "train")
    except Exception:  # no boundaries, no bucketize dimension; the search goes on
        return {}
    out = {}
    for column in columns:
        if column not in frame:
            continue
        values = np.asarray(frame[column], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        cuts = sorted({float(f"{q:.3g}") for q in np.quantile(values, np.linspace(0.1, 0.9, 9))})
        if len(cuts) >= 2:
            out[column] = ",".join(f"{c:g}" for c in cuts)
    return out


def _structural(workflow: Any) -> tuple[dict[str, Dimension], dict[str, Any]]:
    """The structural edits of a derived space (:mod:`helix_tf.edits`); current: none."""
    from helix_tf.components.features import Numeric, Vocabulary
    from helix_tf.components.learners import DNN, Learner
    from helix_tf.edits import MODELS

    dims: dict[str, Dimension] = {}
    current: dict[str, Any] = {}
    decls = workflow.declarations
    for d in decls:
        if d.role == Role.TRAIN and isinstance(d.op, Learner) and type(d.op).__name__ in MODELS:
            now = type(d.op).__name__
            # A DNN's own parameters (dropout, ...) are searched too: only DNN kinds then.
            if isinstance(d.op, DNN):
                kinds = [m for m in MODELS if m != now and issubclass(MODELS[m], DNN)]
            else:
                kinds = [m for m in MODELS if m != now]
            if kinds:
                dims[f"model:{d.name}"] = Choice(now, *kinds)
                current[f"model:{d.name}"] = now
    sources = [d for d in decls if d.role == Role.SOURCE]
    if len(sources) == 1 and any(d.role == Role.EXAMPLES for d in decls):
        used, names = _used_columns(workflow), {d.name for d in decls}
        for column, kind in sources[0].op.schema().items():
            if column not in used and column not in names:
                dims[f"add:{column}"] = Choice(
                    None, "numeric" if kind in ("int", "float") else "vocabulary"
                )
                current[f"add:{column}"] = None
        numeric = [
            d
            for d in decls
            if d.role == Role.FEATURE
            and isinstance(getattr(d.op, "column", None), str)
            and isinstance(d.op, Numeric)
        ]
        cuts = _deciles(sources[0].op, [d.op.column for d in numeric])
        for d in numeric:
            if d.op.column in cuts:
                dims[f"bucketize:{d.name}"] = Choice(None, cuts[d.op.column])
                current[f"bucketize:{d.name}"] = None
        vocab = [d.name for d in decls if d.role == Role.FEATURE and isinstance(d.op, Vocabulary)]
        pairs = [(a, b) for i, a in enumerate(vocab) for b in vocab[i + 1 :]]
        for a, b in pairs[:MAX_CROSSES]:
            if f"{a}_x_{b}" not in names:
                dims[f"cross:{a}*{b}"] = Choice(None, CROSS_BUCKETS)
                current[f"cross:{a}*{b}"] = None
    return dims, current


def search_space(
    config: str | os.PathLike[str],
    *,
    params: Sequence[str] | Mapping[str, Any] = (),
    data_dir: str | None = None,
) -> SearchSpace:
    """The space the agent searches for ``config``: its ``SEARCH``, or one derived from it.

    Every key of a declared space is checked the way ``-p`` checks it (a declared
    PARAMS key or ``node.param`` of a node that has that parameter); all problems
    are reported together.
    """
    from helix_tf.config import _import, load_config

    loaded = load_config(config, params, data_dir=data_dir)
    module = _import(loaded.path)
    declared = getattr(module, SEARCH_NAME, None)
    if declared is None:
        dims, current = _derived(loaded.workflow)
        more, now = _structural(loaded.workflow)
        return SearchSpace(dimensions={**dims, **more}, current={**current, **now}, declared=False)
    if not isinstance(declared, Mapping):
        raise ConfigError(
            f"{SEARCH_NAME} must be a dict of -p key -> search.Float/Int/Choice, "
            f"but got {type(declared).__name__}",
            path=str(loaded.path),
        )
    problems = [
        f"{SEARCH_NAME}[{k!r}]: expected search.Float, search.Int or search.Choice, got {v!r}"
        for k, v in declared.items()
        if not isinstance(v, Float | Int | Choice)
    ]
    if problems:
        raise ConfigError(problems, path=str(loaded.path))
    _check_values(config, loaded, declared, data_dir)
    current = {}
    from helix_tf.edits import is_edit, value_as_written

    for key in declared:
        if is_edit(key):
            current[key] = value_as_written(loaded.workflow, key)
        elif key in loaded.params:
            current[key] = loaded.params[key]
        else:
            node, _, name = key.partition(".")
            op = loaded.workflow.declaration(node).op
            current[key] = getattr(op, name, None)
    return SearchSpace(dimensions=dict(declared), current=current, declared=True)


def declared_space(
    config: str | os.PathLike[str], data_dir: str | None = None
) -> SearchSpace | None:
    """``config``'s declared space (its ``SEARCH``), None where it declares none (nothing
    derived: no data read) or one that fails :func:`search_space`'s checks."""
    from helix_tf.config import _import, load_config

    path = load_config(config, (), data_dir=data_dir).path
    if getattr(_import(path), SEARCH_NAME, None) is None:
        return None
    try:
        return search_space(config, data_dir=data_dir)
    except ConfigError:
        return None


def _check_values(
    config: Any, loaded: Any, declared: Mapping[str, Dimension], data_dir: Any
) -> None:
    """Every value a declared dimension may take is one ``-p`` accepts (a bound of a Float or
    Int, each value of a Choice), so no trial fails on a value the config refuses. The keys
    first, with an example value of every dimension; then each further value of each
    dimension, the others at their examples; every problem is reported together."""
    from helix_tf.config import load_config

    examples = {k: d.example() for k, d in declared.items()}

    def problems_of(chosen: Mapping[str, Any]) -> list[str]:
        try:
            load_config(config, {**loaded.overrides, **examples, **chosen}, data_dir=data_dir)
        except ConfigError as e:
            return [f"{SEARCH_NAME}: {problem}" for problem in e.problems]
        return []

    problems = problems_of({})
    for key, dim in declared.items() if not problems else ():
        for value in dim.extremes():
            if value != examples[key]:
                problems += problems_of({key: value})
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), path=str(loaded.path))
