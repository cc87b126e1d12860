"""Feature operators: specs, batch transforms and analyzers.

A feature operator turns input columns (raw source columns named by string, or
other features passed as ``NodeRef``) into one output column of a *value kind*
(``helix_tf.types``). Operators that need statistics of the training split
(vocabularies, means, document frequencies) declare an :class:`Analyzer`: a
plain-Python combiner that the engine runs as a Beam ``CombineFn`` over batch
partials. Transforms are vectorised over a batch (numpy/pandas), never per row,
except the row-wise UDF, whose contract is per row.

Nothing here imports TensorFlow or Beam: the engine wraps these in Beam.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from helix_tf.components.base import Operator
from helix_tf.errors import ExecutionError
from helix_tf.types import BAG, CATEGORICAL, NUMERIC, ROW_ID, STRING, TOKENS, NodeRef

__all__ = [
    "Bag",
    "Analyzer",
    "Feature",
    "Numeric",
    "Bucketize",
    "Vocabulary",
    "Cross",
    "Tokenize",
    "TfIdf",
    "Udf",
    "DatasetUdf",
    "Label",
    "MISSING_TOKEN",
]

Input = str | NodeRef
MISSING_TOKEN = "<missing>"


@dataclasses.dataclass(frozen=True, slots=True)
class Bag:
    """Weighted indices per row, stored CSR-style (``offsets`` has n + 1 entries)."""

    offsets: np.ndarray  # int64 [n + 1]
    idx: np.ndarray  # int32 [nnz]
    val: np.ndarray  # float32 [nnz]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, rows: np.ndarray) -> Bag:
        """The bag restricted to ``rows`` (sorted positions)."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        pos = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)] or [[]])
        pos = pos.astype(np.int64)
        return Bag(offsets, self.idx[pos], self.val[pos])


class Analyzer:
    """A combiner over the training split: ``create → add* → merge → finalize``.

    ``add`` receives the feature's input values for one batch (a list, one per
    input). ``finalize`` returns a JSON-able state that the transform reads.
    Accumulators must be picklable plain data (Beam ships them between workers).
    """

    def create(self) -> Any:
        raise NotImplementedError

    def add(self, acc: Any, values: list[Any]) -> Any:
        raise NotImplementedError

    def merge(self, accs: Sequence[Any]) -> Any:
        raise NotImplementedError

    def finalize(self, acc: Any) -> Any:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Feature(Operator):
    """Base of feature operators.

    Subclasses list their inputs in :meth:`inputs`, check the input value kinds
    in :meth:`output_kind`, and implement :meth:`transform` over one batch.
    """

    KIND: ClassVar[str] = "feature"
    #: Value kinds each input accepts (None: any).
    ACCEPTS: ClassVar[tuple[str, ...] | None] = None

    def inputs(self) -> tuple[Input, ...]:
        """Raw column names and feature references this operator reads, in order."""
        raise NotImplementedError

    def reads_whole_row(self) -> bool:
        """True when the transform receives the whole source batch (UDFs)."""
        return False

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        """The value kind of the output, given the input kinds (raise ValueError if invalid)."""
        raise NotImplementedError

    def check_input_kinds(self, input_kinds: Sequence[str]) -> list[str]:
        """Problems with the input kinds, as sentences."""
        if self.ACCEPTS is None:
            return []
        problems = []
        for ref, kind in zip(self.inputs(), input_kinds, strict=True):
            if kind not in self.ACCEPTS:
                what = f"column {ref!r}" if isinstance(ref, str) else f"feature {ref.name!r}"
                problems.append(
                    f"{self.op_name} accepts {' or '.join(self.ACCEPTS)} inputs, "
                    f"but {what} is {kind}"
                )
        return problems

    def analyzer(self) -> Analyzer | None:
        """The statistics this feature needs from the training split, if any."""
        return None

    def finalize_state(self, stats: Any) -> Any:
        """Turn the analyzer's finalised statistics into the transform's state."""
        return stats

    def transform(self, values: list[Any], state: Any, n: int) -> Any:
        """Compute the output for one batch of ``n`` rows."""
        raise NotImplementedError

    def cardinality(self, state: Any) -> int | None:
        """The number of distinct indices for categorical/bag outputs."""
        return None


# --------------------------------------------------------------------------- numeric


class _MomentsAnalyzer(Analyzer):
    def create(self) -> list[float]:
        return [0.0, 0.0, 0.0]

    def add(self, acc: list[float], values: list[Any]) -> list[float]:
        x = np.asarray(values[0], dtype=np.float64)
        x = x[~np.isnan(x)]
        return [acc[0] + len(x), acc[1] + float(x.sum()), acc[2] + float((x * x).sum())]

    def merge(self, accs: Sequence[list[float]]) -> list[float]:
        return [sum(a[i] for a in accs) for i in range(3)]

    def finalize(self, acc: list[float]) -> dict[str, float]:
        n, s, ss = acc
        if n == 0:
            return {"mean": 0.0, "std": 1.0, "count": 0}
        mean = s / n
        var = max(ss / n - mean * mean, 0.0)
        std = math.sqrt(var) or 1.0
        return {"mean": mean, "std": std, "count": int(n)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Numeric(Feature):
    """A numeric column; standardised with mean/std of the training split by default.

    Missing values become the training mean (0 after standardisation).
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = (NUMERIC,)
    column: Input
    standardize: bool = True

    def __init__(self, column: Input, *, standardize: bool = True) -> None:
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "standardize", standardize)
        self.__post_init__()

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return NUMERIC

    def analyzer(self) -> Analyzer | None:
        return _MomentsAnalyzer()

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        x = np.asarray(values[0], dtype=np.float64)
        x = np.where(np.isnan(x), state["mean"], x)
        if self.standardize:
            x = (x - state["mean"]) / state["std"]
        return x.astype(np.float32)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Bucketize(Feature):
    """A numeric column cut at sorted boundaries: index i for boundaries[i-1] <= x < boundaries[i].

    Missing values get their own last index (``len(boundaries) + 1``).
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = (NUMERIC,)
    column: Input
    boundaries: tuple[float, ...]

    def __init__(self, column: Input, boundaries: Sequence[float]) -> None:
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "boundaries", tuple(float(b) for b in boundaries))
        self.__post_init__()

    def validate(self) -> list[str]:
        b = list(self.boundaries)
        if not b:
            return ["boundaries must not be empty"]
        if b != sorted(set(b)):
            return [f"boundaries must be strictly increasing, but got {b}"]
        return []

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return CATEGORICAL

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        x = np.asarray(values[0], dtype=np.float64)
        idx = np.searchsorted(np.asarray(self.boundaries), x, side="right")
        idx = np.where(np.isnan(x), len(self.boundaries) + 1, idx)
        return idx.astype(np.int32)

    def cardinality(self, state: Any) -> int | None:
        return len(self.boundaries) + 2


# --------------------------------------------------------------------------- vocabulary


def _string_array(values: Any) -> Any:
    """Values as an Arrow string array, missing values as MISSING_TOKEN.

    Strings stay in Arrow end to end (counting and lookup are Arrow kernels):
    converting pandas 3's Arrow-backed strings to Python objects and back cost
    half of the preprocessing time at scale.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        arr = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    else:
        try:
            arr = pa.array(values, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array(
                [None if v is None or v != v else str(v) for v in values], type=pa.string()
            )
    return pc.fill_null(arr, MISSING_TOKEN)


class _CountAnalyzer(Analyzer):
    """Term counts (and document frequencies for token lists)."""

    def create(self) -> dict[str, Any]:
        return {"counts": Counter(), "df": Counter(), "docs": 0}

    def add(self, acc: dict[str, Any], values: list[Any]) -> dict[str, Any]:
        v = values[0]
        if not _is_token_lists(v):
            import pyarrow.compute as pc

            counts = pc.value_counts(_string_array(v))
            acc["counts"].update(
                dict(
                    zip(
                        counts.field("values").to_pylist(),
                        counts.field("counts").to_pylist(),
                        strict=True,
                    )
                )
            )
        else:
            for tokens in v:
                acc["counts"].update(tokens)
                acc["df"].update(set(tokens))
            acc["docs"] += len(v)
        return acc

    def merge(self, accs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out = self.create()
        for a in accs:
            out["counts"].update(a["counts"])
            out["df"].update(a["df"])
            out["docs"] += a["docs"]
        return out

    def finalize(self, acc: dict[str, Any]) -> dict[str, Any]:
        return {
            "counts": dict(acc["counts"]),
            "df": dict(acc["df"]),
            "docs": acc["docs"],
        }


def _is_token_lists(v: Any) -> bool:
    return len(v) > 0 and isinstance(v[0], list | tuple | np.ndarray)


def _select_vocab(counts: dict[str, int], min_count: int, top_k: int | None) -> list[str]:
    items = sorted(
        ((t, c) for t, c in counts.items() if c >= min_count), key=lambda tc: (-tc[1], tc[0])
    )
    if top_k is not None:
        items = items[:top_k]
    return [t for t, _ in items]


class _VocabIndex:
    """Vectorised token → index lookup for one finalised vocabulary."""

    def __init__(self, vocab: list[str], oov_buckets: int) -> None:
        import pandas as pd
        import pyarrow as pa

        self.index = pd.Index(vocab, dtype=object)
        self.arrow = pa.array(vocab, type=pa.string())
        self.size = len(vocab)
        self.oov = oov_buckets

    def lookup_arrow(self, tokens: Any) -> np.ndarray:
        """Indices of an Arrow string array (Arrow's hash lookup, no Python objects)."""
        import pyarrow.compute as pc

        found = pc.index_in(tokens, value_set=self.arrow)
        miss = np.flatnonzero(np.asarray(pc.is_null(found)))
        idx = np.asarray(pc.fill_null(found, -1), dtype=np.int64)
        if len(miss):
            if self.oov == 0:
                idx[miss] = -1
            elif self.oov == 1:
                idx[miss] = self.size
            else:
                missed = pc.take(tokens, miss).to_pylist()
                hashed = [zlib.crc32(str(t).encode()) % self.oov for t in missed]
                idx[miss] = self.size + np.asarray(hashed, dtype=np.int64)
        return idx.astype(np.int32)

    def lookup(self, tokens: np.ndarray) -> np.ndarray:
        idx = self.index.get_indexer(tokens)
        miss = np.flatnonzero(idx < 0)
        if len(miss):
            if self.oov == 0:
                idx[miss] = -1
            else:
                hashed = [zlib.crc32(str(tokens[i]).encode()) % self.oov for i in miss]
                idx[miss] = self.size + np.asarray(hashed, dtype=np.int64)
        return idx.astype(np.int32)


_INDEX_CACHE: dict[int, tuple[Any, _VocabIndex]] = {}


def _vocab_index(state: dict[str, Any], oov: int) -> _VocabIndex:
    key = id(state)
    hit = _INDEX_CACHE.get(key)
    if hit is not None and hit[0] is state:
        return hit[1]
    index = _VocabIndex(state["vocab"], oov)
    if len(_INDEX_CACHE) > 64:
        _INDEX_CACHE.clear()
    _INDEX_CACHE[key] = (state, index)
    return index


def _bag_from_lists(rows: list[list[int]], weights: list[list[float]]) -> Bag:
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat_idx = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(offsets[-1]))
    flat_val = np.fromiter(
        (w for r in weights for w in r), dtype=np.float32, count=int(offsets[-1])
    )
    return Bag(offsets, flat_idx, flat_val)


def _counts_per_row(
    token_lists: Any, index: _VocabIndex
) -> tuple[list[list[int]], list[list[float]]]:
    """Per row: distinct in-vocabulary indices (sorted) and their counts."""
    flat = [t for tokens in token_lists for t in tokens]
    ids = index.lookup(np.asarray(flat, dtype=object)) if flat else np.zeros(0, np.int32)
    rows: list[list[int]] = []
    weights: list[list[float]] = []
    pos = 0
    for tokens in token_lists:
        c = Counter(int(i) for i in ids[pos : pos + len(tokens)] if i >= 0)
        pos += len(tokens)
        keys = sorted(c)
        rows.append(keys)
        weights.append([float(c[k]) for k in keys])
    return rows, weights


@dataclasses.dataclass(frozen=True, kw_only=True)
class Vocabulary(Feature):
    """Index a string column (categorical) or a token list (bag of word counts).

    The vocabulary is learned on the training split: tokens seen at least
    ``min_count`` times, the ``top_k`` most frequent if set, ordered by count
    then text. Unseen values hash into ``oov_buckets`` extra indices (0: drop
    them; allowed for token lists only). Missing values are the token
    ``"<missing>"``.
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = (STRING, TOKENS)
    column: Input
    min_count: int = 1
    top_k: int | None = None
    oov_buckets: int = 1

    def __init__(
        self,
        column: Input,
        *,
        min_count: int = 1,
        top_k: int | None = None,
        oov_buckets: int = 1,
    ) -> None:
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "min_count", min_count)
        object.__setattr__(self, "top_k", top_k)
        object.__setattr__(self, "oov_buckets", oov_buckets)
        self.__post_init__()

    def validate(self) -> list[str]:
        problems = []
        if not isinstance(self.min_count, int) or self.min_count < 1:
            problems.append(f"min_count must be an integer >= 1, but got {self.min_count!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            problems.append(f"top_k must be None or an integer >= 1, but got {self.top_k!r}")
        if not isinstance(self.oov_buckets, int) or self.oov_buckets < 0:
            problems.append(f"oov_buckets must be an integer >= 0, but got {self.oov_buckets!r}")
        return problems

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        if input_kinds[0] == STRING and self.oov_buckets == 0:
            raise ValueError(
                "oov_buckets must be >= 1 for a string column (every row needs an index)"
            )
        return BAG if input_kinds[0] == TOKENS else CATEGORICAL

    def analyzer(self) -> Analyzer | None:
        return _CountAnalyzer()

    def finalize_state(self, stats: dict[str, Any]) -> dict[str, Any]:
        return {"vocab": _select_vocab(stats["counts"], self.min_count, self.top_k)}

    def transform(self, values: list[Any], state: Any, n: int) -> Any:
        index = _vocab_index(state, self.oov_buckets)
        v = values[0]
        # Token lists come as Python lists (possibly empty); string columns as arrays.
        if _is_token_lists(v) or (isinstance(v, list) and len(v) == 0):
            rows, weights = _counts_per_row(v, index)
            return _bag_from_lists(rows, weights)
        return index.lookup_arrow(_string_array(v))

    def cardinality(self, state: Any) -> int | None:
        return len(state["vocab"]) + self.oov_buckets


@dataclasses.dataclass(frozen=True, kw_only=True)
class TfIdf(Feature):
    """TF-IDF weights of a token list over a vocabulary learned on the training split.

    idf = ln((1 + docs) / (1 + df)) + 1 (smoothed); rows are L2-normalised when
    ``norm="l2"``; ``sublinear_tf`` uses 1 + ln(tf).
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = (TOKENS,)
    column: Input
    min_count: int = 1
    top_k: int | None = None
    norm: str | None = "l2"
    sublinear_tf: bool = False

    def __init__(
        self,
        column: Input,
        *,
        min_count: int = 1,
        top_k: int | None = None,
        norm: str | None = "l2",
        sublinear_tf: bool = False,
    ) -> None:
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "min_count", min_count)
        object.__setattr__(self, "top_k", top_k)
        object.__setattr__(self, "norm", norm)
        object.__setattr__(self, "sublinear_tf", sublinear_tf)
        self.__post_init__()

    def validate(self) -> list[str]:
        problems = []
        if not isinstance(self.min_count, int) or self.min_count < 1:
            problems.append(f"min_count must be an integer >= 1, but got {self.min_count!r}")
        if self.norm not in (None, "l2"):
            problems.append(f"norm must be None or 'l2', but got {self.norm!r}")
        return problems

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return BAG

    def analyzer(self) -> Analyzer | None:
        return _CountAnalyzer()

    def finalize_state(self, stats: dict[str, Any]) -> dict[str, Any]:
        vocab = _select_vocab(stats["counts"], self.min_count, self.top_k)
        docs = stats["docs"]
        idf = [math.log((1 + docs) / (1 + stats["df"].get(t, 0))) + 1.0 for t in vocab]
        return {"vocab": vocab, "idf": idf}

    def transform(self, values: list[Any], state: Any, n: int) -> Bag:
        index = _vocab_index(state, 0)
        idf = np.asarray(state["idf"], dtype=np.float64)
        rows, counts = _counts_per_row(values[0], index)
        weights = []
        for r, c in zip(rows, counts, strict=True):
            tf = np.asarray(c, dtype=np.float64)
            if self.sublinear_tf:
                tf = 1.0 + np.log(tf)
            w = tf * idf[np.asarray(r, dtype=np.int64)] if r else tf
            if self.norm == "l2" and len(w):
                w = w / max(float(np.sqrt((w * w).sum())), 1e-12)
            weights.append(w.tolist())
        return _bag_from_lists(rows, weights)

    def cardinality(self, state: Any) -> int | None:
        return len(state["vocab"])


# --------------------------------------------------------------------------- crosses, text


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a deterministic, well-spread 64-bit hash."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Cross(Feature):
    """A hashed cross of categorical features into ``buckets`` indices."""

    ACCEPTS: ClassVar[tuple[str, ...]] = (CATEGORICAL,)
    columns: tuple[Input, ...]
    buckets: int

    def __init__(self, columns: Sequence[Input], *, buckets: int) -> None:
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "buckets", buckets)
        self.__post_init__()

    def validate(self) -> list[str]:
        problems = []
        if len(self.columns) < 2:
            problems.append(f"a cross needs at least 2 inputs, but got {len(self.columns)}")
        if not isinstance(self.buckets, int) or self.buckets < 1:
            problems.append(f"buckets must be an integer >= 1, but got {self.buckets!r}")
        return problems

    def inputs(self) -> tuple[Input, ...]:
        return self.columns

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return CATEGORICAL

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            h = np.zeros(n, dtype=np.uint64)
            for v in values:
                h = _mix64(h * np.uint64(1_000_003) + np.asarray(v, dtype=np.uint64))
        return (h % np.uint64(self.buckets)).astype(np.int32)

    def cardinality(self, state: Any) -> int | None:
        return self.buckets


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tokenize(Feature):
    """Split text into tokens: optional lower-casing, a token regex, n-grams.

    The default pattern keeps runs of letters ("tokenise on non-letters").
    ``ngrams=(1, 2)`` adds bigrams joined by a space.
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = (STRING,)
    column: Input
    lower: bool = True
    pattern: str = r"[^\W\d_]+"
    ngrams: tuple[int, ...] = (1,)

    def __init__(
        self,
        column: Input,
        *,
        lower: bool = True,
        pattern: str = r"[^\W\d_]+",
        ngrams: Sequence[int] = (1,),
    ) -> None:
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "ngrams", tuple(ngrams))
        self.__post_init__()

    def validate(self) -> list[str]:
        problems = []
        try:
            re.compile(self.pattern)
        except re.error as exc:
            problems.append(f"pattern {self.pattern!r} is not a valid regular expression: {exc}")
        if not self.ngrams or any((not isinstance(k, int)) or k < 1 for k in self.ngrams):
            problems.append(f"ngrams must be positive integers, but got {self.ngrams!r}")
        return problems

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return TOKENS

    def transform(self, values: list[Any], state: Any, n: int) -> list[list[str]]:
        regex = re.compile(self.pattern)
        out: list[list[str]] = []
        texts = values[0]
        if hasattr(texts, "to_pylist"):
            texts = texts.to_pylist()
        for text in texts:
            if text is None or (isinstance(text, float) and math.isnan(text)):
                out.append([])
                continue
            s = str(text).lower() if self.lower else str(text)
            words = regex.findall(s)
            tokens: list[str] = []
            for k in self.ngrams:
                if k == 1:
                    tokens.extend(words)
                else:
                    tokens.extend(" ".join(words[i : i + k]) for i in range(len(words) - k + 1))
            out.append(tokens)
        return out


# --------------------------------------------------------------------------- UDFs


_UDF_OUTPUTS = (NUMERIC, STRING, CATEGORICAL)


def _coerce_output(op: Feature, result: Any, n: int, output: str, size: int | None) -> np.ndarray:
    arr = np.asarray(result)
    if arr.shape != (n,):
        raise ExecutionError(
            f"{op.op_name} returned shape {arr.shape}, expected ({n},): one value per row"
        )
    if output == NUMERIC:
        return arr.astype(np.float32)
    if output == CATEGORICAL:
        ints = arr.astype(np.int64)
        if size is not None and ((ints < 0) | (ints >= size)).any():
            bad = int(ints[(ints < 0) | (ints >= size)][0])
            raise ExecutionError(f"{op.op_name} returned index {bad}, outside [0, {size})")
        return ints.astype(np.int32)
    return arr.astype(object)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Udf(Feature):
    """A user function computing one value per row.

    ``batched=False``: ``fn(row: dict) -> value`` is called per row (simple,
    slow). ``batched=True``: ``fn(batch: pandas.DataFrame) -> array-like`` is
    called once per batch (the fast form). ``output`` is ``numeric``,
    ``string`` or ``categorical`` (then ``size`` is required).
    """

    fn: Callable[..., Any]
    batched: bool = False
    output: str = NUMERIC
    size: int | None = None

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        batched: bool = False,
        output: str = NUMERIC,
        size: int | None = None,
    ) -> None:
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "batched", batched)
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "size", size)
        self.__post_init__()

    def validate(self) -> list[str]:
        problems = []
        if not callable(self.fn):
            problems.append(f"fn must be callable, but got {type(self.fn).__name__}")
        if self.output not in _UDF_OUTPUTS:
            problems.append(f"output must be one of {_UDF_OUTPUTS}, but got {self.output!r}")
        if self.output == CATEGORICAL and (not isinstance(self.size, int) or self.size < 1):
            problems.append("a categorical UDF needs size=K (its values lie in [0, K))")
        return problems

    def inputs(self) -> tuple[Input, ...]:
        return ()

    def reads_whole_row(self) -> bool:
        return True

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return self.output

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        frame = values[0]
        if self.batched:
            result = self.fn(frame)
        else:
            result = []
            for row in frame.to_dict("records"):
                try:
                    result.append(self.fn(row))
                except Exception as exc:
                    shown = {k: v for k, v in row.items() if k != ROW_ID}
                    text = repr(shown)
                    text = text if len(text) <= 400 else text[:397] + "..."
                    raise ExecutionError(
                        f"{getattr(self.fn, '__name__', 'udf')} raised {type(exc).__name__}: {exc} "
                        f"on row {row.get(ROW_ID)} (the line number in its file): {text}"
                    ) from exc
        return _coerce_output(self, result, n, self.output, self.size)

    def cardinality(self, state: Any) -> int | None:
        return self.size


class _FrameAnalyzer(Analyzer):
    """Collects the declared columns of the training split, then calls ``fit``."""

    def __init__(self, op: DatasetUdf) -> None:
        self.op = op

    def create(self) -> list[Any]:
        return []

    def add(self, acc: list[Any], values: list[Any]) -> list[Any]:
        acc.append(values[0][list(self.op.columns)])
        return acc

    def merge(self, accs: Sequence[list[Any]]) -> list[Any]:
        return [f for a in accs for f in a]

    def finalize(self, acc: list[Any]) -> Any:
        import pandas as pd

        frame = (
            pd.concat(acc, ignore_index=True)
            if acc
            else pd.DataFrame({c: [] for c in self.op.columns})
        )
        state = self.op.fit(frame)
        try:
            json.dumps(state)
        except TypeError as exc:
            raise ExecutionError(
                f"DatasetUdf fit returned a value that is not JSON-serialisable ({exc}); "
                "return numbers, strings, lists and dicts"
            ) from exc
        return state


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetUdf(Feature):
    """A user function that sees the whole training split once, then every batch.

    ``fit(frame) -> state`` receives the training rows' ``columns`` as one
    DataFrame and returns JSON-able state (e.g. quantiles, target means);
    ``apply(batch, state) -> array-like`` computes one value per row of a batch.
    """

    fit: Callable[..., Any]
    apply: Callable[..., Any]
    columns: tuple[str, ...]
    output: str = NUMERIC
    size: int | None = None

    def __init__(
        self,
        *,
        fit: Callable[..., Any],
        apply: Callable[..., Any],
        columns: Sequence[str],
        output: str = NUMERIC,
        size: int | None = None,
    ) -> None:
        object.__setattr__(self, "fit", fit)
        object.__setattr__(self, "apply", apply)
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "size", size)
        self.__post_init__()

    def validate(self) -> list[str]:
        problems = []
        if not callable(self.fit) or not callable(self.apply):
            problems.append("fit and apply must both be callable")
        if not self.columns:
            problems.append("columns must name the columns fit() reads")
        if self.output not in _UDF_OUTPUTS:
            problems.append(f"output must be one of {_UDF_OUTPUTS}, but got {self.output!r}")
        return problems

    def inputs(self) -> tuple[Input, ...]:
        return ()

    def reads_whole_row(self) -> bool:
        return True

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return self.output

    def analyzer(self) -> Analyzer | None:
        return _FrameAnalyzer(self)

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        return _coerce_output(self, self.apply(values[0], state), n, self.output, self.size)

    def cardinality(self, state: Any) -> int | None:
        return self.size


# --------------------------------------------------------------------------- label


@dataclasses.dataclass(frozen=True, kw_only=True)
class Label(Operator):
    """The binary label: ``column == positive`` (or a 0/1 numeric column when ``positive`` is None)."""

    KIND: ClassVar[str] = "label"
    column: str
    positive: Any = None

    def __init__(self, column: str, positive: Any = None) -> None:
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "positive", positive)
        self.__post_init__()

    def validate(self) -> list[str]:
        if not isinstance(self.column, str) or not self.column:
            return [f"column must be a column name, but got {self.column!r}"]
        return []

    def transform(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels as int8 and a mask of rows whose label is missing or invalid."""
        import pandas as pd

        if hasattr(values, "to_pandas"):
            values = values.to_pandas()
        series = pd.Series(values)
        missing = series.isna().to_numpy(dtype=bool)
        if self.positive is None:
            nums = pd.to_numeric(series, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            bad = missing | ~np.isin(nums, (0.0, 1.0))
            return np.where(bad, 0, nums).astype(np.int8), bad
        return (series == self.positive).fillna(False).to_numpy(dtype=bool).astype(np.int8), missing
