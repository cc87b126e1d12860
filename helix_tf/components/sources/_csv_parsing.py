"""CSV parsing below the level of a spec: blocks of lines, quoted fields, the bad-row policy."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from helix_tf.components.sources._base import (
    _MAX_TEXT,
    _compression_of,
    _is_url,
    _local,
    _shorten,
)
from helix_tf.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

logger = logging.getLogger(__name__)

_MIN_BLOCK_BYTES = 1 << 16
_WARN_FIRST = 5


class _BadRows:
    """Applies the on_bad_row policy: raise, or skip, count and warn."""

    def __init__(
        self, policy: str, limit: int, counters: dict[str, int] | None, *, report: bool = True
    ) -> None:
        self.policy, self.limit, self.counters = policy, limit, counters
        #: False: the rows are another reader's to count and warn about (the same
        #: block read again for other replicated copies); the policy still applies.
        self.report = report
        self.skipped = 0
        self.per_file: dict[str, int] = {}

    def handle(
        self, path: str, lines: list[int], describe: Callable[[int], tuple[str, str]]
    ) -> None:
        """Report bad rows at sorted ``lines``; ``describe(i)`` gives (reason, fix) of the i-th."""
        if not lines:
            return
        if self.policy == "fail":
            reason, fix = describe(0)
            raise DataError(f"{path} line {lines[0]}: {reason}. {fix}")
        if not self.report:  # the shard of copy 0 counts them and applies max_bad_rows
            return
        for i in range(min(len(lines), max(0, _WARN_FIRST - self.skipped))):
            logger.warning("skipping %s line %d: %s", path, lines[i], describe(i)[0])
        self.skipped += len(lines)
        self.per_file[path] = self.per_file.get(path, 0) + len(lines)
        if self.counters is not None:
            total = self.counters.get("bad_rows_skipped", 0) + len(lines)
            self.counters["bad_rows_skipped"] = total
        if self.skipped > self.limit:
            raise DataError(
                f"{path}: more than max_bad_rows={self.limit} malformed rows skipped "
                f"({self.skipped} so far; line {lines[0]}: {describe(0)[0]}); the file probably "
                "does not match the declared columns or separator. Fix the file or the "
                "declaration, or raise max_bad_rows"
            )

    def summarise(self) -> None:
        if not self.report:
            return
        for path, count in self.per_file.items():
            logger.warning("skipped %d malformed rows in %s", count, path)


_FIX_ROW = "Fix the row, or pass on_bad_row='skip' to skip malformed rows"

#: Separators a file written by another tool commonly uses, tried when a line does not
#: split into the declared columns at the declared separator.
_LIKELY_SEPARATORS = (",", "\t", ";", "|", ", ")


def _file_hint(text: str, separator: str | None = None, columns: int = 0) -> str | None:
    """How to fix a whole file whose line ``text`` shows a wrong encoding, line ending or
    separator (None when the line shows none of them).

    A problem of the whole file shows on its first line as a row problem ("expected 3
    fields", "expects an integer", a header that does not match), whose usual fix
    ("fix the row") does not help; this names the real one.
    """
    if "\x00" in text or text.startswith(("\ufffd\ufffd", "\ufeff\x00")):
        return (
            "The file looks UTF-16-encoded (NUL bytes between the characters); convert it "
            "to UTF-8, e.g. iconv -f utf-16 -t utf-8 FILE > NEW.csv"
        )
    if "\r" in text.rstrip("\r"):
        return (
            "The file's lines end with a bare carriage return (\\r, as old Mac tools write); "
            "convert the line endings to \\n, e.g. tr '\\r' '\\n' < FILE > NEW.csv"
        )
    trailing = bool(separator) and text.endswith(separator or "")
    if trailing and columns and len(text.split(separator)) == columns + 1:
        return (
            f"The line ends with the separator {separator!r} (an empty field after the "
            f"{columns} declared columns): remove it from the file's lines, or declare one "
            "more column (e.g. ('unused', 'string')) and leave it unread"
        )
    if separator is not None and separator not in text:
        for other in _LIKELY_SEPARATORS:
            if other != separator and len(text.split(other)) == columns:
                return (
                    f"The line splits into the {columns} declared columns at {other!r}: "
                    f"pass separator={other!r}"
                )
    return None


def _blocks(handle: Any, first: int, batch_rows: int) -> Iterator[tuple[int, bytes, int]]:
    """Yield (lines before the block, block, lines in it) for blocks of about batch_rows lines.

    A block holds complete lines joined by newlines, without the final newline.
    """
    carry = b""
    line_bytes = 128.0
    while True:
        data = handle.read(max(_MIN_BLOCK_BYTES, int(batch_rows * line_bytes * 0.95)))
        if not data:
            if carry:
                yield first, carry, carry.count(b"\n") + 1
            return
        buffer = carry + data if carry else data
        cut = buffer.rfind(b"\n")
        if cut < 0:
            carry = buffer
            continue
        block, carry = buffer[:cut], buffer[cut + 1 :]
        count = block.count(b"\n") + 1
        yield first, block, count
        first += count
        line_bytes = max(8.0, (cut + 1) / count)


def _block_groups(
    handle: Any, line: int | None, batch_rows: int, shard_bytes: int
) -> list[tuple[tuple[int, int, int], ...]]:
    """The blocks :func:`_blocks` reads from ``handle`` on, grouped into about ``shard_bytes``.

    Each block is (byte offset, byte length, lines before it); ``line`` is the
    lines before the handle's position (None: nothing to read).
    """
    if line is None:
        return []
    offset = handle.tell()
    groups: list[tuple[tuple[int, int, int], ...]] = []
    group: list[tuple[int, int, int]] = []
    size = 0
    for first, body, _ in _blocks(handle, line, batch_rows):
        group.append((offset, len(body), first))
        offset += len(body) + 1  # and the newline after it
        size += len(body) + 1
        if size >= shard_bytes:
            groups.append(tuple(group))
            group, size = [], 0
    if group:
        groups.append(tuple(group))
    return groups


def _seek_blocks(
    handle: Any, blocks: tuple[tuple[int, int, int], ...]
) -> Iterator[tuple[int, bytes, int]]:
    """The blocks of :func:`_block_groups`, read back as :func:`_blocks` yields them."""
    for offset, length, first in blocks:
        handle.seek(offset)
        body = handle.read(length)
        yield first, body, body.count(b"\n") + 1


def _plain_size(path: str) -> int | None:
    """The size of an uncompressed file; None for a compressed one (it cannot be cut)
    or one that cannot be read (reading it whole then names the problem)."""
    if _compression_of(path):
        return None
    try:
        if _is_url(path):
            import fsspec

            fs, inner = fsspec.core.url_to_fs(path)
            return int(fs.size(inner))
        return os.path.getsize(_local(path))
    except OSError:
        return None


def _blank_lines(block: bytes) -> list[int]:
    """Indices of the empty lines of a block (lines joined by newlines)."""
    blank = []
    line = 0
    position = 0
    if block.startswith(b"\n") or not block:
        blank.append(0)
    while True:
        found = block.find(b"\n\n", position)
        if found < 0:
            break
        line += block.count(b"\n", position, found + 1)
        blank.append(line)
        position = found + 1
    if block.endswith(b"\n"):
        last = block.count(b"\n")
        if not blank or blank[-1] != last:
            blank.append(last)
    return blank


def _decode_lines(block: bytes, first: int, path: str) -> pa.Array:
    """A block's lines as an arrow string array; invalid UTF-8 is a DataError."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lines = pc.split_pattern(pa.array([block], pa.binary()), b"\n").flatten()
    try:
        return lines.cast(pa.string())
    except pa.ArrowInvalid:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first + 1 + block.count(b"\n", 0, exc.start)
            start = block.rfind(b"\n", 0, exc.start) + 1
            text = block[start : start + _MAX_TEXT].decode("utf-8", errors="replace")
            end = text.find("\n")
            text = text if end < 0 else text[:end]
            fix = _file_hint(text) or "Convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8"
            raise DataError(
                f"{path} line {line}: the text is not valid UTF-8 ({exc.reason} at byte "
                f"{exc.start - start + 1} of the line): {_shorten(text)}. {fix}"
            ) from exc
        raise


def _split_quoted(text: str, sep: str, quote: str | None, max_fields: int | None) -> list[str]:
    """Split one line with quoted fields; ``max_fields``: the last takes the rest.

    A field whose first non-blank character is ``quote`` runs to the matching quote
    (a doubled quote is a literal one) and may contain separators; a quote inside
    an unquoted field is an ordinary character. Raises ValueError for an
    unterminated quote or text after a closing quote.
    """
    fields: list[str] = []
    size = len(text)
    i = 0
    while True:
        if max_fields is not None and len(fields) == max_fields - 1:
            fields.append(text[i:])
            return fields
        j = i
        while j < size and text[j] in " \t" and not text.startswith(sep, j):
            j += 1
        if quote is None or j >= size or text[j] != quote:
            end = text.find(sep, i)
            if end < 0:
                fields.append(text[i:])
                return fields
            fields.append(text[i:end])
            i = end + len(sep)
            continue
        pieces, k = [], j + 1
        while True:
            close = text.find(quote, k)
            if close < 0:
                raise ValueError(f"unterminated quoted field starting at character {j + 1}")
            pieces.append(text[k:close])
            if text.startswith(quote, close + 1):
                pieces.append(quote)
                k = close + 2
                continue
            k = close + 1
            break
        while k < size and text[k] in " \t" and not text.startswith(sep, k):
            k += 1
        fields.append("".join(pieces))
        if k >= size:
            return fields
        if not text.startswith(sep, k):
            raise ValueError(f"text after the closing quote at character {k + 1}")
        i = k + len(sep)


def _cast_lenient(values: pa.Array, failed: np.ndarray) -> pa.Array:
    """Cast strings to float64 when a regex pre-check may disagree with arrow's parser.

    Values that still do not parse are marked in ``failed`` (in place) and become null.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(values, pa.float64())
    except pa.ArrowInvalid:
        out = []
        for i, value in enumerate(values.to_pylist()):
            try:
                number = None if value is None else pc.cast(pa.scalar(value), pa.float64())
                out.append(None if number is None else number.as_py())
            except pa.ArrowInvalid:
                failed[i] = True
                out.append(None)
        return pa.array(out, pa.float64())
