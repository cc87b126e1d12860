"""Parsing one block of a CSV file's lines into typed Arrow columns.

:class:`BlockParser` is the CSV reader's parsing part (``_csv_reader.CsvReader`` reads
files and shards and hands it blocks): a fast path through pyarrow's CSV parser for a
clean block, and a careful path that splits lines with vectorised pyarrow.compute
kernels and names the line of every problem.
"""

from __future__ import annotations

import decimal
import re
from typing import TYPE_CHECKING, Any

from helix_tf.components.sources._base import _as_column, _shorten
from helix_tf.components.sources._csv_parsing import (
    _FIX_ROW,
    _blank_lines,
    _cast_lenient,
    _decode_lines,
    _file_hint,
    _split_quoted,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from helix_tf.components.sources._csv import Csv

#: What a number column reads (ignoring case): Arrow's float texts, ``nan(...)`` (C's
#: payload form, which Arrow's parser takes) among them, so a value reads alike whichever
#: path parses its block.
_NUMBER_RE = (
    r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:nan|inf|infinity)$"
    r"|^[+-]?nan\([0-9a-z_]*\)$"
)


class BlockParser:
    """Parses blocks of one :class:`~._csv.Csv` spec's lines (no file access)."""

    def __init__(self, spec: Csv) -> None:
        self.spec = spec

    def parse(
        self, first: int, body: bytes, count: int, path: str
    ) -> tuple[dict[str, pa.Array], np.ndarray, Any]:
        """Parse one block: the fast path when it applies and succeeds, else the careful one."""
        if first == 0 and body.startswith(b"\xef\xbb\xbf"):
            body = body[3:]  # UTF-8 byte-order mark
        if self._fast_ok(body):
            parsed = self._parse_fast(body, first, count)
            if parsed is not None:
                return parsed[0], parsed[1], None
        return self._parse_careful(body, first, path)

    # fast path: pyarrow.csv on a clean block --------------------------------

    def _fast_ok(self, body: bytes) -> bool:
        """Whether Arrow's reader may parse the block: it reads what the careful path reads
        (a value's text decides, never the other rows of its block), except hex, which its
        integers take (``0x10`` is 16) and Csv's numbers do not."""
        replaced = {c for c, _ in self.spec.replace or ()}
        ints = any(k == "int" and n not in replaced for n, k in self.spec.columns)
        return (
            len(self.spec.separator) == 1
            and not self.spec.rest_in_last
            and (self.spec.quote is None or self.spec.quote.encode() not in body)
            and not (ints and _HEX_RE.search(body))
        )

    def _parse_fast(
        self, body: bytes, first: int, n_lines: int
    ) -> tuple[dict[str, pa.Array], np.ndarray] | None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.csv as pcsv

        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
        names = [name for name, _ in self.spec.columns]
        replaced = {c for c, _ in self.spec.replace or ()}
        types = {
            n: pa.int64() if k == "int" else pa.float64()
            for n, k in self.spec.columns
            if k != "string" and n not in replaced
        }
        nulls = sorted({w for v in self.spec.na_values for w in (v, f" {v}", f"{v} ", f" {v} ")})
        invalid: list[Any] = []
        try:
            table = pcsv.read_csv(
                pa.py_buffer(body),
                read_options=pcsv.ReadOptions(
                    column_names=names, block_size=1 << 20, use_threads=False
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter=self.spec.separator,
                    quote_char=False,
                    escape_char=False,
                    ignore_empty_lines=True,
                    invalid_row_handler=lambda row: invalid.append(row) or "skip",
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: types.get(n, pa.string()) for n in names},
                    null_values=nulls,
                    strings_can_be_null=False,
                    check_utf8=True,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        if invalid:
            return None
        lines = np.arange(first + 1, first + n_lines + 1, dtype=np.int64)
        if table.num_rows != n_lines:  # arrow skipped the empty lines: find them
            blank = _blank_lines(body)
            if table.num_rows != n_lines - len(blank):
                return None
            lines = np.delete(lines, blank)
        columns: dict[str, pa.Array] = {}
        for name, kind in self.spec.columns:
            values = table.column(name).combine_chunks()
            if name in types:
                try:
                    columns[name] = _as_column(values, kind)
                except pa.ArrowInvalid:  # an int with no exact float64: named by the careful path
                    return None
                continue
            converted = self._convert(name, kind, values)
            if converted[1] is not None:
                return None
            columns[name] = converted[0]
        return columns, lines

    # careful path: vectorised split, exact line numbers, every problem named --

    def _parse_careful(
        self, body: bytes, first: int, path: str
    ) -> tuple[dict[str, pa.Array], np.ndarray, Any]:
        """Parse a block line by line (vectorised); returns (columns, line numbers, issues).

        ``issues`` is None, or the (line numbers, describe) of the bad rows, for
        :meth:`_BadRows.handle`; bad rows are left out of the columns.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        lines = _decode_lines(body, first, path)
        if b"\r" in body:
            lines = pc.utf8_rtrim(lines, characters="\r")
        n = len(self.spec.columns)
        parts = pc.split_pattern(
            lines, self.spec.separator, max_splits=n - 1 if self.spec.rest_in_last else None
        )
        counts = pc.list_value_length(parts).to_numpy()
        empty = pc.or_(pc.equal(pc.binary_length(lines), 0), pc.utf8_is_space(lines))
        blank = (counts == 1) & np.asarray(empty)
        quoted = self._quoted(lines, body, blank)
        good = (counts == n) & ~blank & ~quoted
        # problems: position in block -> (kind, detail); formatted only when reported
        issues: dict[int, tuple[str, Any]] = {
            int(i): ("count", int(counts[i])) for i in np.flatnonzero(~good & ~blank & ~quoted)
        }
        slow_rows, slow_at = self._split_quoted_lines(lines, quoted, issues)
        position, raw = self._gather(parts.filter(pa.array(good)), good, slow_rows, slow_at)
        failed = np.zeros(len(position), dtype=bool)
        columns: dict[str, pa.Array] = {}
        replaced = {name: dict(pairs) for name, pairs in self.spec.replace or ()}
        for name, kind in self.spec.columns:
            columns[name], bad_values = self._convert(name, kind, raw[name])
            if bad_values is not None:
                for r in np.flatnonzero(bad_values & ~failed):
                    text = raw[name][int(r)].as_py().strip()
                    value = replaced.get(name, {}).get(text, text)  # what was converted
                    issues[int(position[r])] = ("number", (name, kind, value, text))
                failed |= bad_values
        report = None
        if issues:
            where = sorted(issues)

            def describe(k: int) -> tuple[str, str]:
                return _describe(self.spec, issues[where[k]], lines[where[k]].as_py())

            report = ([first + 1 + w for w in where], describe)
        if failed.any():
            keep = pa.array(~failed)
            columns = {k: v.filter(keep) for k, v in columns.items()}
            position = position[~failed]
        return columns, position + first + 1, report

    def _quoted(self, lines: pa.Array, body: bytes, blank: np.ndarray) -> np.ndarray:
        """Which lines hold the quote character in a field the separator splits."""
        import numpy as np
        import pyarrow.compute as pc

        quoted = np.zeros(len(lines), dtype=bool)
        quote, sep = self.spec.quote, self.spec.separator
        if quote is None or quote.encode() not in body:
            return quoted
        n = len(self.spec.columns)
        has_quote = np.asarray(pc.match_substring(lines, quote)) & ~blank
        for i in np.flatnonzero(has_quote):
            text = lines[int(i)].as_py()
            head = text.split(sep, n - 1)[: n - 1] if self.spec.rest_in_last else [text]
            quoted[i] = any(quote in h for h in head)
        return quoted

    def _split_quoted_lines(
        self, lines: pa.Array, quoted: np.ndarray, issues: dict[int, tuple[str, Any]]
    ) -> tuple[list[list[str]], list[int]]:
        """The fields of the quoted lines (in Python) and their positions; problems go to
        ``issues``."""
        import numpy as np

        n = len(self.spec.columns)
        slow_rows: list[list[str]] = []
        slow_at: list[int] = []
        for i in np.flatnonzero(quoted):
            try:
                fields = _split_quoted(
                    lines[int(i)].as_py(),
                    self.spec.separator,
                    self.spec.quote,
                    n if self.spec.rest_in_last else None,
                )
            except ValueError as exc:
                issues[int(i)] = ("quote", str(exc))
                continue
            if len(fields) != n:
                issues[int(i)] = ("count", len(fields))
            else:
                slow_rows.append(fields)
                slow_at.append(int(i))
        return slow_rows, slow_at

    def _gather(
        self, good_parts: pa.Array, good: np.ndarray, slow_rows: list[list[str]], slow_at: list[int]
    ) -> tuple[np.ndarray, dict[str, pa.Array]]:
        """The raw string columns of the good and the quoted lines, in line order, and
        the lines' positions in the block."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        position = np.flatnonzero(good)
        raw: dict[str, pa.Array] = {}
        for j, (name, _) in enumerate(self.spec.columns):
            column = pc.list_element(good_parts, j) if len(position) else pa.array([], pa.string())
            if slow_rows:
                extra = pa.array([r[j] for r in slow_rows], pa.string())
                column = pa.concat_arrays([column, extra])
            raw[name] = column
        if slow_rows:
            position = np.concatenate([position, np.asarray(slow_at, dtype=np.int64)])
            order = np.argsort(position, kind="stable")
            position = position[order]
            raw = {k: v.take(pa.array(order)) for k, v in raw.items()}
        return position, raw

    def _convert(
        self, name: str, kind: str, values: pa.Array
    ) -> tuple[pa.Array, np.ndarray | None]:
        """Trim, replace, apply na_values, convert; returns (array, mask of failures or None)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.spec.strip or kind != "string":
            values = pc.utf8_trim_whitespace(values)
        mapping = dict(self.spec.replace or ()).get(name)
        if mapping:
            keys = pa.array([k for k, _ in mapping], pa.string())
            mapped = pa.array([v for _, v in mapping], pa.string()).take(
                pc.index_in(values, value_set=keys)
            )
            values = pc.coalesce(mapped, values)
        if self.spec.na_values:
            missing = pc.is_in(values, value_set=pa.array(self.spec.na_values, pa.string()))
            values = pc.if_else(missing, pa.scalar(None, pa.string()), values)
        if kind == "string":
            return values, None
        failed = None
        try:
            numbers = pc.cast(values, pa.float64())
        except pa.ArrowInvalid:
            ok = pc.fill_null(pc.match_substring_regex(values, _NUMBER_RE, ignore_case=True), True)
            failed = ~np.asarray(ok)
            numbers = _cast_lenient(pc.if_else(ok, values, pa.scalar(None, pa.string())), failed)
        if kind == "int":
            array = numbers.to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                fraction = np.asarray(numbers.is_valid()) & ~(np.floor(array) == array)
            bad = fraction | _beyond_int64(values, array, numbers)
            if bad.any():
                failed = bad if failed is None else failed | bad
                numbers = pc.if_else(pa.array(bad), pa.scalar(None, pa.float64()), numbers)
            numbers = pc.add(numbers, 0.0)  # -0 is the integer 0, as the fast path reads it
        return numbers, failed


#: The int64 range an int column holds (Csv's fast path reads int columns as int64).
_INT64 = (-(2**63), 2**63 - 1)
#: Numeric columns are float64: integers beyond this magnitude may not be held exactly.
_EXACT = 2**53


def _beyond_int64(values: pa.Array, array: np.ndarray, numbers: pa.Array) -> np.ndarray:
    """Which integral values of an int column lie outside int64 (or are infinite), or
    inside it but with no exact float64 (numeric columns are float64).

    Such a value was read as the nearest float, a silent change of the data; it is
    a bad value like a fraction. Only values from 2**53 on are checked, exactly,
    from their text (a float cannot tell 2**63 - 1 from 2**63).
    """
    import numpy as np

    with np.errstate(invalid="ignore"):
        near = np.asarray(numbers.is_valid()) & ~(np.abs(array) < _EXACT)
    out = np.zeros(len(array), dtype=bool)
    for i in np.flatnonzero(near):
        out[i] = _int_problem(str(values[int(i)].as_py())) is not None
    return out


def _int_problem(text: str) -> str | None:
    """Why an int column cannot hold the integral number ``text`` (None: it can, or
    it is no integral number, which the other checks name)."""
    try:
        value = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        return None
    if value.is_nan():
        return None
    if value.is_infinite() or not _INT64[0] <= value <= _INT64[1]:
        return f"beyond the 64-bit integer range [{_INT64[0]}, {_INT64[1]}]"
    if value != value.to_integral_value():
        return None
    if decimal.Decimal(float(value)) != value:
        return (
            f"an integer that numeric columns (float64, exact up to 2**53 = {_EXACT}) "
            f"cannot hold exactly; it would read as {int(float(value))}"
        )
    return None


def _describe(spec: Csv, issue: tuple[str, Any], text: str) -> tuple[str, str]:
    """(reason, fix) for a problem found in the careful path."""
    kind, detail = issue
    hint = _file_hint(text, spec.separator, len(spec.columns))
    if kind == "count":
        return (
            f"expected {len(spec.columns)} fields separated by {spec.separator!r}, "
            f"found {detail}: {_shorten(text)}",
            hint or _FIX_ROW,
        )
    if kind == "quote":
        fix = _FIX_ROW
        if str(detail).startswith("unterminated"):
            fix = (
                "A quoted field may not span lines (Csv reads one row per line): remove the "
                "line breaks inside quotes, pass quote=None if quotes are ordinary characters "
                "in this file, or pass on_bad_row='skip' to skip malformed rows"
            )
        return f"{detail}: {_shorten(text)}", fix
    name, column_kind, value, written = detail
    found = _shorten(value)
    if written != value:  # the source's replace= made it
        found += f" (replace= maps {_shorten(written)} to it)"
    problem = _int_problem(value) if column_kind == "int" else None
    if problem:
        return (
            f"column {name!r} (int) holds {found}, {problem}: {_shorten(text)}",
            f"Declare {name!r} as 'float' (approximate values) or 'string' (exact text) "
            "in columns=, or pass on_bad_row='skip' to skip such rows",
        )
    what = "an integer" if column_kind == "int" else "a number"
    return (
        f"column {name!r} ({column_kind}) expects {what}, found {found}: {_shorten(text)}",
        hint or _number_fix(name, column_kind, value),
    )


#: Where Arrow's integer parser would read hex (one regex scan: half of two ``in`` tests).
_HEX_RE = re.compile(rb"0[xX]")
#: A number written with thousands separators (``2,174``, ``1,234,567.5``).
_GROUPED_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
#: A number written with a decimal comma (``3,5``; ``2,174`` reads as grouped first).
_DECIMAL_COMMA_RE = re.compile(r"[+-]?\d*,\d+")


def _number_fix(name: str, column_kind: str, value: str) -> str:
    """How to read ``value``, which column ``name`` of ``column_kind`` could not."""
    text = value.strip()
    skip = "or pass on_bad_row='skip' to skip malformed rows"
    if _GROUPED_RE.fullmatch(text):
        return (
            f"Csv reads numbers without thousands separators ({text.replace(',', '')}): "
            f"write the file so, or declare {name!r} as 'string' and convert it in an F.Udf, "
            + skip
        )
    if _DECIMAL_COMMA_RE.fullmatch(text):
        return (
            f"Csv reads numbers with a decimal point ({text.replace(',', '.')}): write the "
            f"file so, or declare {name!r} as 'string' and convert it in an F.Udf, " + skip
        )
    if column_kind == "int" and re.fullmatch(r"[+-]?nan(?:\(\w*\))?", text, re.IGNORECASE):
        return (
            f"Add {value!r} to na_values (to read it as missing in this int column), or declare "
            f"{name!r} as 'float' in columns= (where NaN is missing), {skip}"
        )
    if column_kind == "int" and re.fullmatch(_NUMBER_RE, text, flags=re.IGNORECASE):
        return f"Declare {name!r} as 'float' in columns= (it holds fractions), {skip}"
    return f"Fix the value, declare {name!r} as 'string', add {value!r} to na_values, " + skip
