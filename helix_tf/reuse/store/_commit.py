"""Staging and committing: a run's files become an entry all at once, or not at all."""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import time
from collections.abc import Callable, Mapping
from typing import Any

from helix_tf.errors import StoreError
from helix_tf.reuse.store._entries import Entries
from helix_tf.reuse.store._fs import _check_fingerprint
from helix_tf.reuse.store._manifest import FileEntry, Manifest, Staging, _compare_sizes

logger = logging.getLogger(__name__)

_PUBLISH_ATTEMPTS = 3


class Committer:
    """Writes entries: private staging folders, then move in and publish the manifest last.

    Parameters
    ----------
    entries : Entries
        The store's entries (and through them its files).
    new_token : callable
        Gives a fresh 32-hex-digit token for each staging (it starts with the lease id
        of the run that writes, see ``_leases``).
    """

    def __init__(self, entries: Entries, new_token: Callable[[], str]) -> None:
        self.entries = entries
        self.files = entries.files
        self.paths = entries.paths
        self.new_token = new_token

    def begin(self, fingerprint: str) -> Staging:
        """A fresh private staging folder for ``fingerprint`` (see ``ArtifactStore.begin``)."""
        _check_fingerprint(fingerprint)
        token = self.new_token()
        path = self.paths.staging(fingerprint, token)
        with self.files.errors(f"create a staging directory for {fingerprint}"):
            if self.files.is_local:
                os.makedirs(path)
        return Staging(
            fingerprint=fingerprint,
            token=token,
            url=self.paths.to_url(path),
            path=path,
            fs=self.files.fs,
        )

    def abort(self, staging: Staging) -> None:
        """Discard a staging folder and everything written to it."""
        self.check(staging)
        with self.files.errors(f"remove staging {staging.url}"):
            self.files.rm_tree(staging.path)

    def check(self, staging: Staging) -> None:
        """Raise StoreError unless ``staging`` came from this store's :meth:`begin`."""
        if staging.path != self.paths.staging(staging.fingerprint, staging.token):
            raise StoreError(
                f"staging {staging.url} does not belong to artifact store {self.files.url}; "
                "use the Staging returned by this store's begin()"
            )

    def commit(self, staging: Staging, **facts: Any) -> Manifest | None:
        """Publish a staged artifact (see ``ArtifactStore.commit``); None if another won."""
        self.check(staging)
        fingerprint, token = staging.fingerprint, staging.token
        with self.files.errors(f"commit {fingerprint}"):
            self.files.refresh()
            manifest, text = self._describe(staging, facts)
            if not self._make_way(staging):
                return None
            data_dir = self.paths.data_dir(fingerprint, token)
            if not self._move_and_publish(staging, data_dir, text):
                logger.info(
                    "artifact %s was committed concurrently in %s; discarding ours",
                    fingerprint,
                    self.files.url,
                )
                self.files.rm_tree(data_dir)
                if not self.files.is_local:
                    self.files.rm_tree(staging.path)
                return None
            if not self._confirm(manifest, staging, data_dir):
                return None
        logger.info(
            "committed artifact %s to %s: %d files, %d bytes",
            fingerprint,
            self.files.url,
            len(manifest.files),
            manifest.bytes,
        )
        return manifest

    def _describe(self, staging: Staging, facts: Mapping[str, Any]) -> tuple[Manifest, bytes]:
        """Hash the staged files into the manifest to publish, and its JSON bytes.

        ``facts``: ``kind`` and optionally ``rows``, ``schema``, ``meta`` and
        ``compute_seconds``, as :meth:`ArtifactStore.commit` takes them.
        """
        files = self._hash_staged(staging)
        if not files:
            raise StoreError(
                f"nothing was written to staging {staging.url} for {staging.fingerprint}; "
                "write the artifact's files there before commit (was it cleaned up meanwhile?)"
            )
        manifest = Manifest(
            fingerprint=staging.fingerprint,
            kind=facts["kind"],
            token=staging.token,
            files=files,
            bytes=sum(f.bytes for f in files),
            rows=facts.get("rows"),
            schema=facts.get("schema"),
            meta=dict(facts.get("meta") or {}),
            compute_seconds=float(facts.get("compute_seconds") or 0.0),
            created=time.time(),
        )
        try:
            return manifest, manifest.to_json().encode()
        except (TypeError, ValueError) as exc:
            self.files.rm_tree(staging.path)
            raise StoreError(
                f"cannot commit {staging.fingerprint} to {self.files.url}: schema/meta must "
                f"be JSON-serialisable (str keys, finite numbers), but {exc}"
            ) from exc

    def _hash_staged(self, staging: Staging) -> tuple[FileEntry, ...]:
        entries = []
        for rel in sorted(self.files.list_files(staging.path)):
            size, sha = self.files.hash_file(posixpath.join(staging.path, rel))
            entries.append(FileEntry(path=rel, bytes=size, sha256=sha))
        return tuple(entries)

    def _make_way(self, staging: Staging) -> bool:
        """False (and our files discarded) if a sound entry is there; a bad one goes, and so
        does one a newer helix_tf wrote (this run's result of the same fingerprint replaces
        it, in the format both read; ``verify`` and ``gc`` leave such entries alone)."""
        existing = self.entries.inspect_deep(staging.fingerprint)
        if existing.state in ("invalid", "newer"):
            self.entries.remove_bad(staging.fingerprint, existing, staging.token)
        elif existing.state == "valid":
            logger.info(
                "artifact %s already committed in %s; discarding ours",
                staging.fingerprint,
                self.files.url,
            )
            self.files.rm_tree(staging.path)
            return False
        return True

    def _move_and_publish(self, staging: Staging, data_dir: str, text: bytes) -> bool:
        """Move the files in, then publish the manifest; True if ours won."""
        try:
            self.move_in(staging, data_dir)
        except BaseException:
            self._move_back(staging, data_dir)
            raise
        try:
            return self._publish(staging.fingerprint, staging.token, text)
        except BaseException:
            # The caller may still read the staged files: give them back.
            with contextlib.suppress(Exception):
                current = self.entries.inspect(staging.fingerprint, check_data=False)
                if current.token != staging.token:
                    self._move_back(staging, data_dir)
            raise

    def _confirm(self, manifest: Manifest, staging: Staging, data_dir: str) -> bool:
        """After winning: drop the remote staged copy; withdraw if our data vanished."""
        if not self.files.is_local:
            with contextlib.suppress(Exception):
                self.files.rm_tree(staging.path)
        # A concurrent cleanup()/delete() may have removed our data in the window
        # between the move and the manifest: never leave a manifest pointing at nothing.
        problem = _compare_sizes(manifest, self.files.list_files(data_dir))
        if problem is None:
            return True
        logger.warning(
            "artifact %s lost its data while committing (%s); withdrawn",
            manifest.fingerprint,
            problem,
        )
        self.entries.remove_if(manifest.fingerprint, manifest.token)
        return False

    def move_in(self, staging: Staging, data_dir: str) -> None:
        """Move the staged files to ``data_dir`` (local: one rename; remote: copy)."""
        if self.files.is_local:
            os.makedirs(os.path.dirname(data_dir), exist_ok=True)
            os.rename(staging.path, data_dir)
            # Fresh mtime: cleanup() measures age by it, and this dir has no manifest yet.
            os.utime(data_dir)
            return
        rels = sorted(self.files.list_files(staging.path))
        # gcsfs's mv tries the moveTo API first (unsupported by the emulator, retried for
        # ~17 s per file); a server-side copy is portable and as cheap. The staged copy
        # is removed once the manifest is published (commit), so a failure keeps it.
        self.files.fs.copy(
            [posixpath.join(staging.path, r) for r in rels],
            [posixpath.join(data_dir, r) for r in rels],
        )

    def _move_back(self, staging: Staging, data_dir: str) -> None:
        """Undo :meth:`move_in` after a failed commit: the staged files are the caller's."""
        with contextlib.suppress(Exception):
            if self.files.is_local and os.path.isdir(data_dir) and not os.path.exists(staging.path):
                os.rename(data_dir, staging.path)
            else:
                self.files.rm_tree(data_dir)

    def _publish(self, fingerprint: str, token: str, text: bytes) -> bool:
        """Create MANIFEST.json exclusively; replace an invalid one. True if ours won.

        A manifest already there that names our own token is ours: the create reached
        the store but its reply was lost, and the client's retry met the precondition
        (gcsfs retries on timeouts and 5xx; the retry gets HTTP 412). Taking that for a
        loss would delete the data the published manifest names.
        """
        path = self.paths.manifest(fingerprint)
        for _attempt in range(_PUBLISH_ATTEMPTS):
            try:
                self.files.create_exclusive(path, text, token)
            except FileExistsError:
                entry = self.entries.inspect_deep(fingerprint)
                if entry.token == token:
                    return True
                if entry.state == "valid":
                    return False
                if entry.state in ("invalid", "newer"):
                    self.entries.remove_bad(fingerprint, entry, token)
                continue
            # Read back: guards backends that ignore the create-if-absent precondition.
            current = self.entries.inspect(fingerprint, check_data=False)
            return current.token == token
        raise StoreError(
            f"could not publish {fingerprint} to {self.files.url} after {_PUBLISH_ATTEMPTS} "
            "attempts: its manifest keeps changing under concurrent writers; retry later"
        )
