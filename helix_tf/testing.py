"""Helpers for testing an operator you write: spec round trip, fingerprints, transform.

An operator is a spec (a frozen dataclass, see :mod:`helix_tf.components.base`)
plus the code that computes it. Three things decide whether it is safe in a
workflow that reuses results, and each has a helper here:

:func:`check_spec_round_trip`
    the spec is rebuilt from its :meth:`~helix_tf.components.base.Operator.params`
    (as ``-p`` overrides and ``Workflow.override`` rebuild it) equal and with the
    same parameters, and its own ``with_params`` gives it back.
:func:`check_fingerprints`
    the compiler gives the same spec the same fingerprint, here and in a fresh
    Python process (another hash seed), and a different one for every changed
    parameter: otherwise an edit would reuse a stale result.
:func:`transform_table`
    the feature computed on a small table as the engine does it: its analyzer over
    the training rows in batches, merged and finalised, the state through JSON (as
    a later run loads it), then the transform.

Examples
--------
>>> import pandas as pd
>>> from helix_tf import features as F
>>> check_spec_round_trip(F.Bucketize("age", [30, 60]))
Bucketize(column='age', boundaries=(30.0, 60.0))
>>> transform_table(F.Bucketize("age", [30, 60]), pd.DataFrame({"age": [20, 45, None, 70]}))
array([0, 1, 3, 2], dtype=int32)
>>> transform_table(F.Numeric("x"), pd.DataFrame({"x": [1.0, 3.0]})).tolist()
[-1.0, 1.0]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from helix_tf.components.base import Operator
from helix_tf.components.features import Feature, SourceRows
from helix_tf.components.sources import Csv
from helix_tf.types import ROW_ID

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["check_fingerprints", "check_spec_round_trip", "feature_fingerprint", "transform_table"]


def check_spec_round_trip(op: Operator) -> Operator:
    """Check that ``op`` is rebuilt from its parameters unchanged; return the rebuilt spec.

    The spec is built again from ``params()`` as keywords, and through
    ``with_params()`` with no change and with every parameter given again; each
    must equal ``op``, hash alike and have the same ``params()`` and
    ``fingerprint_params()``.

    Raises
    ------
    AssertionError
        Naming the way of rebuilding and the parameters that came back different.
    """
    params = op.params()
    rebuilt = {
        f"{op.op_name}(**params())": type(op)(**params),
        "with_params()": op.with_params(),
        "with_params(**params())": op.with_params(**params),
    }
    for how, other in rebuilt.items():
        changed = {
            k: (v, other.params().get(k)) for k, v in params.items() if other.params().get(k) != v
        }
        if other != op or hash(other) != hash(op) or changed or other.params() != params:
            raise AssertionError(
                f"{how} does not rebuild {op!r}: it gave {other!r}; parameters that differ "
                f"(given, rebuilt): {changed or 'none (equality or hashing differs)'}"
            )
        if other.fingerprint_params() != op.fingerprint_params():
            raise AssertionError(f"{how} changes fingerprint_params() of {op!r}")
    unknown = set(op.fingerprint_params()) - set(params)
    if unknown:
        raise AssertionError(
            f"fingerprint_params() of {op!r} has keys that are no parameter: {unknown}"
        )
    return rebuilt[f"{op.op_name}(**params())"]


def feature_fingerprint(op: Feature, columns: Mapping[str, str]) -> str:
    """The fingerprint the compiler gives ``op`` as a feature of a CSV source.

    Parameters
    ----------
    op
        A feature that reads raw columns (references to other features are not
        supported here: compile a workflow for those).

    Raises
    ------
    AssertionError
        When the compiler never reuses ``op``'s results (its code reads the clock, the
        string-hash seed or something it cannot hash), naming why.
    columns
        The source's columns, name -> ``"int"``, ``"float"`` or ``"string"``. The
        source's file is generated (one fixed row), so the fingerprint depends on
        ``op`` and ``columns`` only.
    """
    from helix_tf.compiler.graph import compile_workflow
    from helix_tf.workflow import Workflow

    with tempfile.TemporaryDirectory(prefix="helix-testing-") as folder:
        path = os.path.join(folder, "rows.csv")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(",".join("1" if k != "string" else "a" for k in columns.values()) + "\n")
        wf = Workflow("operator_under_test")
        wf.source("rows", Csv(train=path, columns=dict(columns)))
        wf.output(wf.feature("feature", op))
        node = compile_workflow(wf).node("feature")
        refused = node.facts.get("volatile")
        if refused:
            raise AssertionError(
                f"{op!r} is recomputed every run, its results never reused: " + "; ".join(refused)
            )
        return node.fingerprint


def check_fingerprints(
    factory: Callable[[], Feature],
    columns: Mapping[str, str],
    changes: Mapping[str, Any],
) -> str:
    """Check that a feature's fingerprint is stable and that each parameter changes it.

    Parameters
    ----------
    factory
        A module-level function (importable by its module and name) that returns
        the feature: it is called here and again in a fresh Python process.
    columns
        The source's columns, as for :func:`feature_fingerprint`.
    changes
        Parameter name -> another valid value, for **every** parameter the
        fingerprint holds (``fingerprint_params()``): each must give another
        fingerprint. A parameter left out is an error, so a new parameter gets
        its check.

    Returns
    -------
    str
        The fingerprint.

    Raises
    ------
    AssertionError
        Naming the parameter whose change kept the fingerprint, the parameters
        ``changes`` lacks, the two fingerprints of the same spec, or why the compiler
        never reuses its results.
    """
    op = factory()
    missing = sorted((set(op.fingerprint_params()) & set(op.params())) - set(changes))
    if missing:
        raise AssertionError(
            f"changes must give another value for every fingerprinted parameter of "
            f"{op.op_name}; missing: {', '.join(missing)}"
        )
    fingerprint = feature_fingerprint(op, columns)
    again = feature_fingerprint(factory(), columns)
    if again != fingerprint:
        raise AssertionError(f"{op!r} has fingerprint {fingerprint} and then {again}")
    elsewhere = _fingerprint_in_fresh_process(factory, columns)
    if elsewhere != fingerprint:
        raise AssertionError(
            f"{op!r} has fingerprint {fingerprint} here and {elsewhere} in a fresh process: "
            "something in its parameters is hashed by identity or in set/hash order"
        )
    same = [
        k
        for k, v in changes.items()
        if feature_fingerprint(op.with_params(**{k: v}), columns) == fingerprint
    ]
    if same:
        raise AssertionError(
            f"changing {', '.join(same)} of {op!r} keeps its fingerprint: a stored result "
            "of the old value would be reused"
        )
    return fingerprint


_FRESH = """
import importlib, json, sys
from helix_tf.testing import feature_fingerprint
module, name, columns = json.loads(sys.argv[1])
factory = importlib.import_module(module)
for part in name.split("."):
    factory = getattr(factory, part)
print(feature_fingerprint(factory(), columns))
"""


def _fingerprint_in_fresh_process(
    factory: Callable[[], Feature], columns: Mapping[str, str]
) -> str:
    module, name = factory.__module__, factory.__qualname__
    if "<" in name or module == "__main__":
        raise AssertionError(
            f"factory {name!r} of module {module!r} cannot be imported in another process; "
            "pass a function defined at the top level of an importable module"
        )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), PYTHONHASHSEED="random"
    )
    done = subprocess.run(
        [sys.executable, "-c", _FRESH, json.dumps([module, name, dict(columns)])],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"computing the fingerprint in a fresh process failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def transform_table(
    op: Feature,
    table: pd.DataFrame,
    *,
    train: pd.DataFrame | None = None,
    batch_rows: int = 2,
    columns: Mapping[str, str] | None = None,
) -> Any:
    """Compute feature ``op`` on ``table`` as the engine does, and return its output.

    Parameters
    ----------
    op
        A feature reading raw columns of ``table`` (or whole rows, as a UDF does).
    table
        The rows to transform.
    train
        The training rows its analyzer learns from (default: ``table``).
    batch_rows
        The analyzer sees the training rows in batches of this many, then merges
        the partial results (small, so that ``merge`` is exercised).
    columns
        The declared column types (``"int"``, ``"float"``, ``"string"``); default:
        from the frame's dtypes.

    Returns
    -------
    Any
        What ``transform`` returned (an array, a :class:`~helix_tf.components.features.Bag`,
        token lists).

    Raises
    ------
    AssertionError
        When the analyzer's state is not JSON-serialisable or the output's length is
        not the number of rows.
    """
    train = table if train is None else train
    kinds = dict(columns) if columns is not None else _kinds(table)
    state = None
    analyzer = op.analyzer()
    if analyzer is not None:
        parts = [
            analyzer.add(analyzer.create(), _inputs(op, train.iloc[i : i + batch_rows], kinds))
            for i in range(0, max(len(train), 1), batch_rows)
        ]
        state = op.finalize_state(analyzer.finalize(analyzer.merge(parts)))
        try:
            state = json.loads(json.dumps(state))
        except TypeError as exc:
            raise AssertionError(f"the state of {op!r} is not JSON-serialisable: {exc}") from exc
    out = op.transform(_inputs(op, table, kinds), state, len(table))
    if len(out) != len(table):
        raise AssertionError(f"{op!r} returned {len(out)} values for {len(table)} rows")
    return out


def _kinds(frame: pd.DataFrame) -> dict[str, str]:
    import pandas as pd

    def kind(series: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
            return "int"
        return "float" if pd.api.types.is_numeric_dtype(series) else "string"

    return {str(c): kind(frame[c]) for c in frame.columns if c != ROW_ID}


def _inputs(op: Feature, frame: pd.DataFrame, kinds: Mapping[str, str]) -> list[Any]:
    """The transform's inputs as the engine builds them (``engine.batch_compute``): numbers
    as float64 arrays, text as Arrow strings; whole rows as the frame (numbers as float64,
    a row id) and the :class:`SourceRows`."""
    import numpy as np
    import pyarrow as pa

    def column(name: str) -> Any:
        if kinds.get(name) in ("int", "float"):
            return np.asarray(frame[name], dtype=np.float64)
        return pa.array([None if v is None or v != v else str(v) for v in frame[name]], pa.string())

    if op.reads_whole_row():
        rows = frame.reset_index(drop=True).copy()
        for name, kind in kinds.items():
            if kind != "string":
                rows[name] = rows[name].astype(np.float64)
        if ROW_ID not in rows:
            rows[ROW_ID] = np.arange(1, len(rows) + 1, dtype=np.int64)
        return [rows, SourceRows(columns=dict(kinds), describe=lambda row: f"row {row}")]
    missing = [r for r in op.inputs() if not isinstance(r, str)]
    if missing:
        raise AssertionError(
            f"transform_table computes features of raw columns; {op!r} reads other features "
            f"({', '.join(r.name for r in missing)}): compute those first and test through a workflow"
        )
    return [column(name) for name in op.inputs()]
