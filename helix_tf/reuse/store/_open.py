"""Reading entries back: a local folder with an entry's files, verified."""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import secrets
import shutil

from helix_tf.reuse.store._entries import Entries
from helix_tf.reuse.store._fs import _check_fingerprint, _discard_local, _write_local
from helix_tf.reuse.store._manifest import Manifest, _verify_dir

logger = logging.getLogger(__name__)


class Opener:
    """Gives local folders holding entries' files; a remote entry is downloaded once.

    Parameters
    ----------
    entries : Entries
        The store's entries (a corrupt one is removed through them).
    cache_dir : str
        Where remote entries are downloaded (``<fingerprint>/<token>/``).
    """

    def __init__(self, entries: Entries, cache_dir: str) -> None:
        self.entries = entries
        self.files = entries.files
        self.cache_dir = cache_dir

    def open_local(self, manifest: Manifest, *, verify: bool = True) -> str | None:
        """See ``ArtifactStore.open_local``."""
        _check_fingerprint(manifest.fingerprint)
        with self.files.errors(f"open {manifest.fingerprint}"):
            if not self.files.is_local:
                return self._open_remote(manifest, verify=verify)
            data_dir = self.files.paths.data_dir(manifest.fingerprint, manifest.token)
            problem = _verify_dir(data_dir, manifest, hashes=verify)
            if problem is None:
                return data_dir
            self._reject(manifest, problem)
            return None

    def _open_remote(self, manifest: Manifest, *, verify: bool) -> str | None:
        parent = os.path.join(self.cache_dir, manifest.fingerprint)
        target = os.path.join(parent, manifest.token)
        marker = target + ".complete"
        if os.path.isdir(target):
            # A target dir is only ever created by renaming a verified download; without
            # its marker (a crash or a concurrent download in between) hashes decide.
            marked = os.path.exists(marker)
            problem = _verify_dir(target, manifest, hashes=verify or not marked)
            if problem is None:
                if not marked:
                    _write_local(marker, manifest.to_json().encode())
                return target
            logger.warning(
                "cached copy of %s is damaged (%s); downloading again",
                manifest.fingerprint,
                problem,
            )
            _discard_local(target, marker)
        os.makedirs(parent, exist_ok=True)
        partial = os.path.join(parent, f".{manifest.token}.{secrets.token_hex(4)}.partial")
        try:
            if not self._download(manifest, partial, verify=verify):
                return None
            try:
                os.rename(partial, target)
            except OSError:
                if not os.path.isdir(target):  # else: a concurrent download won; use it
                    raise
            _write_local(marker, manifest.to_json().encode())
            return target
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _download(self, manifest: Manifest, partial: str, *, verify: bool) -> bool:
        """Fetch an entry's files into ``partial`` and check them; False if it is bad."""
        data_dir = self.files.paths.data_dir(manifest.fingerprint, manifest.token)
        try:
            self.files.fs.get(
                [posixpath.join(data_dir, f.path) for f in manifest.files],
                [os.path.join(partial, *f.path.split("/")) for f in manifest.files],
            )
        except FileNotFoundError as exc:
            self._reject(manifest, f"file missing in the store: {exc}")
            return False
        os.makedirs(partial, exist_ok=True)
        problem = _verify_dir(partial, manifest, hashes=verify)
        if problem is not None:
            self._reject(manifest, problem)
            return False
        return True

    def _reject(self, manifest: Manifest, problem: str) -> None:
        """Log a corrupt entry and remove it from the store so it can be recomputed."""
        logger.warning(
            "artifact %s in %s failed verification and will be recomputed: %s",
            manifest.fingerprint,
            self.files.url,
            problem,
        )
        with contextlib.suppress(Exception):
            self.entries.remove_if(manifest.fingerprint, manifest.token, data=True)
        if not self.files.is_local:
            target = os.path.join(self.cache_dir, manifest.fingerprint, manifest.token)
            _discard_local(target, target + ".complete")
