"""Reading and judging committed entries: is a manifest there, does its data match it."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import posixpath
from collections.abc import Mapping

from helix_tf.reuse.store._fs import _MANIFEST, StoreFiles
from helix_tf.reuse.store._manifest import (
    Manifest,
    NewerFormatError,
    _compare_sizes,
    _Entry,
    _verify_dir,
)

logger = logging.getLogger(__name__)


class Entries:
    """The committed entries of a store: read, validate, remove.

    An entry is ``artifacts/<fingerprint>/MANIFEST.json`` and the data folder it names;
    :meth:`inspect` says whether it is missing, invalid or valid (``_Entry``). Nothing
    here refreshes remote listings or turns I/O errors into ``StoreError``: the caller
    (:class:`~helix_tf.reuse.store.ArtifactStore`) does.
    """

    def __init__(self, files: StoreFiles) -> None:
        self.files = files
        self.paths = files.paths

    def inspect(
        self,
        fingerprint: str,
        *,
        check_data: bool = True,
        sizes_by_token: Mapping[str, Mapping[str, int]] | None = None,
    ) -> _Entry:
        """Read and validate the entry of ``fingerprint`` (no warning, no cache refresh)."""
        try:
            text = self.files.fs.cat_file(self.paths.manifest(fingerprint))
        except FileNotFoundError:
            return _Entry(state="missing")
        return self.validate(
            fingerprint, text, check_data=check_data, sizes_by_token=sizes_by_token
        )

    def validate(
        self,
        fingerprint: str,
        text: bytes,
        *,
        check_data: bool = True,
        sizes_by_token: Mapping[str, Mapping[str, int]] | None = None,
    ) -> _Entry:
        """Parse a manifest and (with ``check_data``) compare it with the data's sizes.

        ``sizes_by_token`` is a listing already made (token → relative path → size);
        without it the data directory is listed.
        """
        try:
            manifest = Manifest.from_json(text)
        except NewerFormatError as exc:
            return _Entry(state="newer", problem=str(exc), raw=text, newer_token=exc.token)
        except ValueError as exc:
            return _Entry(state="invalid", problem=f"bad {_MANIFEST}: {exc}", raw=text)
        if manifest.fingerprint != fingerprint:
            return _Entry(
                state="invalid",
                parsed=manifest,
                problem=f"{_MANIFEST} is for fingerprint {manifest.fingerprint!r}",
                raw=text,
            )
        if check_data:
            if sizes_by_token is not None:
                sizes = sizes_by_token.get(manifest.token, {})
            else:
                sizes = self.files.list_files(self.paths.data_dir(fingerprint, manifest.token))
            problem = _compare_sizes(manifest, sizes)
            if problem:
                return _Entry(state="invalid", parsed=manifest, problem=problem, raw=text)
        return _Entry(state="valid", parsed=manifest, raw=text)

    def inspect_deep(self, fingerprint: str) -> _Entry:
        """:meth:`inspect`, and for a valid entry also every file's sha256."""
        entry = self.inspect(fingerprint)
        if entry.state != "valid" or entry.parsed is None:
            return entry
        problem = self.content_problem(entry.parsed)
        if problem is None:
            return entry
        return dataclasses.replace(entry, state="invalid", problem=problem)

    def content_problem(self, manifest: Manifest) -> str | None:
        """None if every file of a committed entry has its recorded size and sha256."""
        data_dir = self.paths.data_dir(manifest.fingerprint, manifest.token)
        if self.files.is_local:
            return _verify_dir(data_dir, manifest, hashes=True)
        for f in manifest.files:
            try:
                size, sha = self.files.hash_file(posixpath.join(data_dir, f.path))
            except FileNotFoundError:
                return f"data file {f.path} is missing"
            if size != f.bytes or sha != f.sha256:
                return f"data file {f.path} does not match its recorded sha256"
        return None

    def remove_bad(self, fingerprint: str, entry: _Entry, token: str | None = None) -> bool:
        """Remove an unusable manifest and the data it names (unless that is ``token``).

        The manifest is re-read first and left alone if it changed since ``entry`` was
        judged (a concurrent writer replaced it), which narrows the window in which a
        good entry could be removed. Returns whether it was removed.
        """
        path = self.paths.manifest(fingerprint)
        try:
            if self.files.fs.cat_file(path) != entry.raw:
                return False
        except FileNotFoundError:
            return False
        logger.warning(
            "removing unusable artifact entry %s from %s: %s",
            fingerprint,
            self.files.url,
            entry.problem,
        )
        self.files.rm_file(path)
        if entry.token and entry.token != token:
            self.files.rm_tree(self.paths.data_dir(fingerprint, entry.token))
        return True

    def remove_if(self, fingerprint: str, token: str, *, data: bool = False) -> None:
        """Remove the manifest (and with ``data`` its data) only if it still names ``token``."""
        if self.inspect(fingerprint, check_data=False).token != token:
            return
        self.files.rm_file(self.paths.manifest(fingerprint))
        if data:
            self.files.rm_tree(self.paths.data_dir(fingerprint, token))

    def delete(self, fingerprint: str) -> bool:
        """Remove an entry: its manifest first, then the data it names. False if missing."""
        entry = self.inspect(fingerprint, check_data=False)
        if entry.state == "missing":
            return False
        self.files.rm_file(self.paths.manifest(fingerprint))
        if entry.token:
            self.files.rm_tree(self.paths.data_dir(fingerprint, entry.token))
        if self.files.is_local:
            with contextlib.suppress(OSError):
                os.rmdir(self.paths.fp_dir(fingerprint))
        return True
