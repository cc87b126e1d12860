"""Tests of the artifact store on local, memory:// and gs:// (emulator) backends."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from helix_tf.errors import StoreError
from helix_tf.reuse.store import ArtifactStore, FileEntry, Manifest, Staging, drop_if_damaged

from .conftest import GCS_BUCKET

WORKER = str(Path(__file__).with_name("_store_worker.py"))
LOGGER = "helix_tf.reuse.store"
BACKENDS = ["local", "memory", "gs"]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store URL for each backend."""
    if request.param == "local":
        return str(tmp_path / "store")
    if request.param == "memory":
        return f"memory://helix-test-{uuid.uuid4().hex}"
    request.getfixturevalue("gcs_emulator")
    return f"gs://{GCS_BUCKET}/t-{uuid.uuid4().hex}"


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(store_url, cache_dir=str(tmp_path / "cache"))


def stage(store: ArtifactStore, fingerprint: str, files: dict[str, bytes]) -> Staging:
    staging = store.begin(fingerprint)
    for rel, data in files.items():
        with staging.open(rel) as f:
            f.write(data)
    return staging


def put(store: ArtifactStore, fingerprint: str, files: dict[str, bytes], **kw: object) -> Manifest:
    manifest = store.commit(stage(store, fingerprint, files), kind=kw.pop("kind", "blob"), **kw)
    assert manifest is not None
    return manifest


def data_path(store: ArtifactStore, manifest: Manifest, rel: str) -> str:
    return store.paths.data_dir(manifest.fingerprint, manifest.token) + "/" + rel


def overwrite(store: ArtifactStore, path: str, data: bytes) -> None:
    with store.fs.open(path, "wb") as f:
        f.write(data)


def token_dirs(store: ArtifactStore, fingerprint: str) -> set[str]:
    store.files.refresh()
    group = store._collector.scan("artifacts").get(fingerprint)
    return set(group.subdirs) if group else set()


def staging_dirs(store: ArtifactStore) -> set[str]:
    store.files.refresh()
    return set(store._collector.scan("staging"))


def warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


FILES = {"part-0.parquet": b"first file" * 100, "sub/dir/part-1.parquet": b"second" * 7}


# --------------------------------------------------------------------------- roundtrip


def test_commit_lookup_open_local_roundtrip(store: ArtifactStore, store_url: str) -> None:
    manifest = put(
        store,
        "fp1",
        FILES,
        kind="table",
        rows=3,
        schema={"age": "int64"},
        meta={"node": "rows"},
        compute_seconds=1.5,
    )
    assert manifest.files == tuple(
        FileEntry(path=p, bytes=len(d), sha256=hashlib.sha256(d).hexdigest())
        for p, d in sorted(FILES.items())
    )
    assert manifest.bytes == sum(len(d) for d in FILES.values())
    assert (manifest.kind, manifest.rows, manifest.compute_seconds) == ("table", 3, 1.5)

    # A second instance (another run) sees the same entry.
    other = ArtifactStore(store_url, cache_dir=store.cache_dir)
    assert other.lookup("fp1") == manifest
    local = other.open_local(manifest)
    assert local is not None and os.path.isdir(local)
    for rel, data in FILES.items():
        assert Path(local, rel).read_bytes() == data
    assert sorted(
        str(p.relative_to(local)) for p in Path(local).rglob("*") if p.is_file()
    ) == sorted(FILES)
    if store.is_local:
        assert local == store.paths.data_dir("fp1", manifest.token) == store.data_url(manifest)
    else:
        assert local.startswith(store.cache_dir)
        assert other.open_local(manifest) == local  # served from the cache
    assert staging_dirs(store) == set()


def test_data_url_names_the_entry_files_in_the_store(store: ArtifactStore) -> None:
    """data_url: the stored folder itself (not a cached copy), readable through fsspec."""
    import fsspec

    manifest = put(store, "fp", FILES)
    url = store.data_url(manifest)
    if store.is_local:
        assert url == store.open_local(manifest)
    else:
        assert "://" in url and url.endswith(f"/artifacts/fp/{manifest.token}")
    fs, path = fsspec.core.url_to_fs(url)
    if store.url.startswith("gs://"):
        fs = store.fs  # the emulator's file system, as configured by the store
    for rel, data in FILES.items():
        assert fs.cat_file(f"{path}/{rel}") == data


def test_file_url_is_a_local_store(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/store")
    assert store.is_local and store.root == store.url == str(tmp_path / "store")
    manifest = put(store, "fp", FILES)
    assert store.open_local(manifest) == str(
        tmp_path / "store" / "artifacts" / "fp" / manifest.token
    )


def test_lookup_missing_is_none_without_warning(
    store: ArtifactStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.lookup("nothing-here") is None
    assert warned(caplog) == []


def test_second_commit_of_same_fingerprint_is_discarded(store: ArtifactStore) -> None:
    first = put(store, "fp", FILES)
    second = stage(store, "fp", {"other.bin": b"x"})
    assert store.commit(second, kind="blob") is None
    assert store.lookup("fp") == first
    assert token_dirs(store, "fp") == {first.token}
    assert staging_dirs(store) == set()


# --------------------------------------------------------------------------- corruption


def test_truncated_file_is_rejected_then_replaced(
    store: ArtifactStore, caplog: pytest.LogCaptureFixture
) -> None:
    bad = put(store, "fp", FILES)
    overwrite(store, data_path(store, bad, "part-0.parquet"), b"trunc")
    assert store.lookup("fp") is None
    assert any("fp" in m and "bytes" in m for m in warned(caplog))
    # Not "will be recomputed" (a pruned node's entry never is): what it means, what removes it.
    assert any(
        "treated as not stored" in m and "store verify --repair" in m for m in warned(caplog)
    )

    good = put(store, "fp", FILES)
    assert good.token != bad.token
    assert store.lookup("fp") == good
    assert store.open_local(good) is not None
    assert token_dirs(store, "fp") == {good.token}


def test_same_size_corruption_fails_open_local_then_is_replaced(
    store: ArtifactStore, caplog: pytest.LogCaptureFixture
) -> None:
    bad = put(store, "fp", FILES)
    original = FILES["part-0.parquet"]
    overwrite(store, data_path(store, bad, "part-0.parquet"), b"X" * len(original))
    assert store.lookup("fp") == bad  # sizes match: only hashes can tell
    assert store.open_local(bad, verify=True) is None
    assert any("sha256" in m for m in warned(caplog))
    assert store.lookup("fp") is None  # the corrupt entry was removed

    good = put(store, "fp", FILES)
    assert store.lookup("fp") == good
    local = store.open_local(good)
    assert local is not None
    assert Path(local, "part-0.parquet").read_bytes() == original


def test_drop_if_damaged_removes_only_a_damaged_entry(store: ArtifactStore) -> None:
    good = put(store, "good", FILES)
    bad = put(store, "bad", FILES)
    overwrite(store, data_path(store, bad, "part-0.parquet"), b"X" * len(FILES["part-0.parquet"]))
    assert drop_if_damaged(store, "good") is None
    assert store.lookup("good") == good
    problem = drop_if_damaged(store, "bad")
    assert problem is not None and "part-0.parquet" in problem
    assert store.lookup("bad") is None and token_dirs(store, "bad") == set()
    assert drop_if_damaged(store, "absent") is None


@pytest.mark.parametrize(
    "text",
    [b"{not json", b"", b"[]", b'{"format_version": 99}', b'{"format_version": 1}'],
    ids=["garbage", "empty", "list", "future-version", "missing-fields"],
)
def test_bad_manifest_is_skipped_then_replaced(
    store: ArtifactStore, caplog: pytest.LogCaptureFixture, text: bytes
) -> None:
    put(store, "fp", FILES)
    overwrite(store, store.paths.manifest("fp"), text)
    assert store.lookup("fp") is None
    assert any("fp" in m for m in warned(caplog))
    assert store.entries() == []
    good = put(store, "fp", FILES)
    assert store.lookup("fp") == good


def test_an_entry_of_a_newer_format_is_not_read_and_never_removed_as_damaged(
    store: ArtifactStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A store shared with a newer helix_tf (a manifest format this one cannot read).
    Before: "unusable ... `helix-tf store verify --repair` removes it", and verify counted
    it bad (exit 1) and removed it with --repair, as gc did: a newer version's data lost.
    A run computing the same fingerprint still replaces it (in a format both read)."""
    manifest = put(store, "fp", FILES)
    data = json.loads(store.fs.cat_file(store.paths.manifest("fp")))
    newer = json.dumps({**data, "format_version": 2}).encode()
    overwrite(store, store.paths.manifest("fp"), newer)
    assert store.lookup("fp") is None
    (said,) = [m for m in warned(caplog) if "fp" in m]
    assert "written by a newer helix_tf" in said and "verify --repair" not in said
    report = store.verify(repair=True)
    assert report.newer == ["fp"] and report.bad == [] and report.clean
    store.collect(older_than=0)
    assert store.fs.cat_file(store.paths.manifest("fp")) == newer
    assert token_dirs(store, "fp") == {manifest.token}
    assert put(store, "fp", FILES).format_version == 1


def test_manifest_for_missing_data_is_not_an_entry(store: ArtifactStore) -> None:
    manifest = put(store, "fp", FILES)
    store.files.rm_tree(store.paths.data_dir("fp", manifest.token))
    assert store.lookup("fp") is None
    assert store.open_local(manifest) is None
    assert put(store, "fp", FILES).token != manifest.token


def test_remote_cache_damage_is_repaired(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://helix-test-{uuid.uuid4().hex}", cache_dir=str(tmp_path))
    manifest = put(store, "fp", FILES)
    local = store.open_local(manifest)
    assert local is not None
    Path(local, "part-0.parquet").write_bytes(b"damaged")
    assert store.open_local(manifest) == local
    assert Path(local, "part-0.parquet").read_bytes() == FILES["part-0.parquet"]
    assert store.lookup("fp") == manifest


# --------------------------------------------------------------------------- staging


def test_staged_files_are_invisible_until_commit(store: ArtifactStore) -> None:
    staging = stage(store, "fp", FILES)
    assert store.lookup("fp") is None
    assert store.entries() == []
    assert staging.fingerprint == "fp" and staging.token in staging.url
    if store.is_local:
        assert staging.local_path is not None
        assert Path(staging.local_path, "part-0.parquet").read_bytes() == FILES["part-0.parquet"]
    else:
        assert staging.local_path is None
        assert "://" in staging.url
    store.abort(staging)
    assert staging_dirs(store) == set()
    assert store.lookup("fp") is None


def test_commit_of_empty_staging_raises(store: ArtifactStore) -> None:
    staging = store.begin("fp")
    with pytest.raises(StoreError, match="nothing was written"):
        store.commit(staging, kind="blob")


def test_commit_with_non_json_meta_raises_and_cleans_up(store: ArtifactStore) -> None:
    staging = stage(store, "fp", FILES)
    with pytest.raises(StoreError, match="JSON"):
        store.commit(staging, kind="blob", meta={"f": object()})
    assert staging_dirs(store) == set()
    assert store.lookup("fp") is None


@pytest.mark.parametrize("rel", ["../escape", "/abs", "a//b", "./a", ""])
def test_staging_open_rejects_paths_outside(store: ArtifactStore, rel: str) -> None:
    staging = store.begin("fp")
    with pytest.raises(ValueError, match="relative POSIX"):
        staging.open(rel)


@pytest.mark.parametrize("fingerprint", ["", "../x", "a/b", ".hidden", "a.b", "x" * 201])
def test_bad_fingerprints_are_rejected(store: ArtifactStore, fingerprint: str) -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        store.begin(fingerprint)


def test_staging_from_another_store_is_rejected(store: ArtifactStore, tmp_path: Path) -> None:
    other = ArtifactStore(str(tmp_path / "other"))
    staging = stage(other, "fp", FILES)
    with pytest.raises(StoreError, match="does not belong"):
        store.commit(staging, kind="blob")


# --------------------------------------------------------------------------- manage


def test_delete(store: ArtifactStore) -> None:
    manifest = put(store, "fp", FILES)
    keep = put(store, "other", {"a": b"1"})
    store.delete("fp")
    assert store.lookup("fp") is None
    assert token_dirs(store, "fp") == set()
    assert store.open_local(manifest) is None
    store.delete("fp")  # idempotent
    assert store.lookup("other") == keep


def test_entries_and_their_bytes(store: ArtifactStore, caplog: pytest.LogCaptureFixture) -> None:
    made = [put(store, f"fp{i}", {f"f{j}": b"x" * (i + j) for j in range(i + 1)}) for i in range(3)]
    assert store.entries() == made
    assert sum(m.bytes for m in store.entries()) == sum(m.bytes for m in made)
    overwrite(store, store.paths.manifest("fp1"), b"garbage")
    assert [m.fingerprint for m in store.entries()] == ["fp0", "fp2"]
    assert sum(m.bytes for m in store.entries()) == made[0].bytes + made[2].bytes
    assert any("fp1" in m for m in warned(caplog))


def test_cleanup_removes_only_stale_leftovers(store: ArtifactStore) -> None:
    kept = put(store, "kept", FILES)
    stage(store, "abandoned", FILES)  # a run killed while writing
    orphan = stage(store, "kept", {"x": b"1"})  # killed between move and manifest
    store._committer.move_in(orphan, store.paths.data_dir("kept", orphan.token))
    store.files.rm_tree(orphan.path)  # commit removes a remote staged copy after the move
    broken = put(store, "broken", FILES)
    overwrite(store, store.paths.manifest("broken"), b"garbage")

    assert store.collect(older_than=3600).removed == 0  # everything is fresh
    removed = store.collect(older_than=0).removed
    # staging dir, orphan token dir, broken manifest and the data nothing names any more
    assert removed == 4
    assert staging_dirs(store) == set()
    assert token_dirs(store, "kept") == {kept.token}
    assert token_dirs(store, "broken") == set()
    assert broken.token not in token_dirs(store, "broken")
    assert store.lookup("kept") == kept
    assert store.open_local(kept) is not None
    assert store.entries() == [kept]
    assert store.collect(older_than=0).removed == 0


# --------------------------------------------------------------------------- errors


def test_store_under_a_file_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="blocker") as info:
        ArtifactStore(str(blocker / "store"))
    assert "--store" in str(info.value)


@pytest.mark.parametrize("folder", ["staging", "artifacts", "runs"])
def test_a_file_in_place_of_a_stores_own_folder_is_named(tmp_path: Path, folder: str) -> None:
    """Before: "a file is in the way: the store must be a folder" about a store that is
    one (the file was its staging folder's place). A file in place of ``runs`` went
    unnoticed: the run wrote no lease (logged at debug), so other runs' eviction and
    clean-up no longer knew what it read or staged."""
    root = tmp_path / "store"
    ArtifactStore(str(root))
    shutil.rmtree(root / folder, ignore_errors=True)
    (root / folder).write_text("not a folder")
    with pytest.raises(StoreError) as info:
        ArtifactStore(str(root))
    assert f"the file {root / folder} is in the way of the store's own folders" in str(info.value)


@pytest.mark.parametrize("folder", ["staging", "artifacts"])
def test_verify_and_clean_up_name_a_file_in_place_of_a_stores_folder(
    tmp_path: Path, folder: str
) -> None:
    """QA pass 26: with a file in place of ``artifacts``, ``store verify`` said "0 entries
    verified ... clean" (the scan listed the file, not a folder, and found no entry) and
    ``store gc`` reclaimed nothing, silently. Now both name the file and the fix."""
    root = tmp_path / "store"
    store = ArtifactStore(str(root))
    shutil.rmtree(root / folder)
    (root / folder).write_text("not a folder")
    for action in (store.verify, store.collect):
        with pytest.raises(StoreError) as info:
            action()
        said = str(info.value)
        assert f"the file {root / folder} is in the way of the store's own folders" in said


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOSPC, "disk \\(or your quota\\) is full: free space there"),
        (errno.EDQUOT, "disk \\(or your quota\\) is full: free space there"),
        (errno.EROFS, "mounted read-only: pass a --store on a writable one"),
        (errno.EFBIG, "file-size limit \\(`ulimit -f`\\) allows: raise the limit"),
    ],
)
def test_a_store_that_cannot_be_created_names_the_disks_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, fix: str
) -> None:
    """Creating a store on a full or read-only disk: the fix named is that, not a
    permissions check (before: "check the path and your permissions" for every errno)."""
    real = os.makedirs

    def failing(path: str, *args: object, **kwargs: object) -> None:
        if str(path).startswith(str(tmp_path / "store")):
            raise OSError(code, os.strerror(code), str(path))
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "makedirs", failing)
    with pytest.raises(StoreError, match=fix):
        ArtifactStore(str(tmp_path / "store"))


def test_an_entry_this_user_may_not_read_names_the_file_and_the_read_permission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data file another user left unreadable (mode 600, another owner). Before: "grant
    write access to it", the wrong fix, about the store rather than the file."""
    from helix_tf.reuse.store import _open

    store = ArtifactStore(str(tmp_path / "store"))
    manifest = put(store, "fp1", FILES, kind="table")
    unreadable = os.path.join(store.paths.data_dir("fp1", manifest.token), "part-0.parquet")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", unreadable)

    monkeypatch.setattr(_open, "_verify_dir", denied)
    with pytest.raises(StoreError) as info:
        store.open_local(manifest, verify=True)
    assert f"this user may not read {unreadable}: fix its permissions" in str(info.value)
    assert "write access" not in str(info.value)
    monkeypatch.setattr(os, "makedirs", denied)
    with pytest.raises(StoreError, match=f"may not write {unreadable}"):
        store.begin("fp2")


def test_a_database_this_user_may_not_read_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's "unable to open database file" for a file of mode 600 and another owner.
    Before: "check FILE and its folder's permissions" (the folder was fine)."""
    from helix_tf.reuse.metadata import MetadataStore
    from helix_tf.reuse.metadata._database import _cannot_open

    file = tmp_path / "metadata.db"
    with MetadataStore(str(file)):
        pass
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != file and real(p, mode))
    assert f"this user may not read and write {file}: fix its permissions" in _cannot_open(
        str(file)
    )


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores directory permissions"
)
def test_store_in_read_only_dir_raises_store_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=r"(?i)permission"):
            ArtifactStore(str(ro / "store"))
    finally:
        ro.chmod(0o700)


def test_store_with_write_protected_folder_fails_commit_cleanly(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    staging = stage(store, "fp", FILES)
    artifacts = Path(store.root, "artifacts")
    artifacts.rmdir()
    artifacts.write_text("in the way")  # even root cannot create a folder inside a file
    with pytest.raises(StoreError, match=str(tmp_path / "store")):
        store.commit(staging, kind="blob")


@pytest.mark.parametrize("url", ["nosuchscheme://bucket/x", "   "])
def test_bad_url_raises_store_error(url: str) -> None:
    with pytest.raises(StoreError, match="store URL"):
        ArtifactStore(url)


def test_missing_bucket_raises_store_error(gcs_emulator: str) -> None:
    with pytest.raises(StoreError, match="no-such-bucket"):
        ArtifactStore(f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}/x")


@pytest.mark.parametrize(
    ("marker", "match"),
    [
        ('{"format_version": 42}', r"format_version 42 .* a newer helix_tf wrote it: upgrade"),
        ('{"format_version": 0}', r"format_version 0 .* use the helix_tf that wrote it"),
        ('{"format_version": "1"}', r"format_version '1' .* use the helix_tf that wrote it"),
        ('{"format_ver', r"not a helix_tf store marker .* write \{\"format_version\": 1"),
    ],
)
def test_a_foreign_or_damaged_marker_is_refused_saying_what_to_do(
    tmp_path: Path, marker: str, match: str
) -> None:
    """Before: a store older than this helix_tf was told to "upgrade helix_tf"."""
    root = tmp_path / "store"
    root.mkdir()
    (root / "helix_store.json").write_text(marker)
    with pytest.raises(StoreError, match=match) as raised:
        ArtifactStore(str(root))
    assert "nothing in it was changed" in str(raised.value) or "marker" in str(raised.value)
    assert (root / "helix_store.json").read_text() == marker  # left as it was


# --------------------------------------------------------------------------- manifest


def test_manifest_json_is_deterministic_and_sorted(store: ArtifactStore) -> None:
    manifest = put(store, "fp", FILES, meta={"b": 1, "a": 2})
    text = manifest.to_json()
    assert Manifest.from_json(text) == manifest
    assert Manifest.from_json(text).to_json() == text
    keys = list(json.loads(text))
    assert keys == sorted(keys)
    assert store.fs.cat_file(store.paths.manifest("fp")).decode() == text


paths = st.lists(
    st.from_regex(r"[a-z0-9_]{1,8}(/[a-z0-9_]{1,8}){0,2}", fullmatch=True), unique=True
)
jsonish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=50, deadline=None)
@given(
    paths=paths,
    sizes=st.data(),
    meta=st.dictionaries(st.text(max_size=5), jsonish, max_size=3),
    rows=st.none() | st.integers(min_value=0),
)
def test_manifest_roundtrip_property(
    paths: list[str], sizes: st.DataObject, meta: dict, rows: int | None
) -> None:
    files = tuple(
        FileEntry(
            path=p,
            bytes=sizes.draw(st.integers(0, 10**12)),
            sha256=hashlib.sha256(p.encode()).hexdigest(),
        )
        for p in sorted(paths)
    )
    manifest = Manifest(
        fingerprint="fp",
        kind="table",
        token="0" * 32,
        files=files,
        bytes=sum(f.bytes for f in files),
        rows=rows,
        schema=None,
        meta=meta,
        compute_seconds=0.25,
        created=1234.5,
    )
    assert Manifest.from_json(manifest.to_json()) == manifest


# --------------------------------------------------------------------------- imports


def test_import_is_light_and_never_loads_tensorflow_or_beam() -> None:
    code = (
        "import sys, helix_tf.reuse.store\n"
        "bad = [m for m in ('tensorflow', 'keras', 'apache_beam', 'gcsfs') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# --------------------------------------------------------------------------- processes


def _spawn(url: str, fingerprint: str, cache: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, url, fingerprint, "--cache-dir", str(cache), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(paths: list[Path], procs: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"worker exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, "workers never became ready"
        time.sleep(0.002)


def _aim(proc: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Wait until ``ready()`` while the process still runs."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the writer ended before the moment aimed at: {proc.communicate()}")
        assert time.monotonic() < deadline, "the writer never got to the moment aimed at"
        time.sleep(0.001)


def _race(
    url: str, tmp_path: Path, fingerprint: str, n: int = 2, *extra: str
) -> list[dict[str, str]]:
    """``n`` worker processes stage, wait at a barrier, then commit at the same moment."""
    go = tmp_path / f"{fingerprint}.go"
    ready = [tmp_path / f"{fingerprint}.ready{i}" for i in range(n)]
    procs = [
        _spawn(url, fingerprint, tmp_path / "cache", "--ready", str(r), "--go", str(go), *extra)
        for r in ready
    ]
    try:
        _wait_for(ready, procs, timeout=300)
        go.touch()
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    return [json.loads(out) for out, _ in outs]


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "gs":
        request.getfixturevalue("gcs_emulator")
        return f"gs://{GCS_BUCKET}/proc-{uuid.uuid4().hex}"
    return str(tmp_path / "store")


@pytest.mark.parametrize("backend", ["local", "gs"])
def test_concurrent_commits_of_one_fingerprint(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two processes commit one fingerprint at the same moment, a few times over."""
    url = _url(backend, tmp_path, request)
    store = ArtifactStore(url, cache_dir=str(tmp_path / "cache"))
    for round_ in range(3 if backend == "local" else 2):
        fingerprint = f"race{round_}"
        results = _race(url, tmp_path, fingerprint)
        winners = [r["token"] for r in results if r["outcome"] == "won"]
        manifest = store.lookup(fingerprint)
        assert manifest is not None
        assert manifest.token in winners
        assert store.open_local(manifest) is not None
        if backend == "gs":
            # The emulator ignores ifGenerationMatch=0: both may "win"; the manifest then
            # names the last writer and the other's data is an orphan for cleanup().
            store.collect(older_than=0)
        else:
            assert len(winners) == 1, results
        assert token_dirs(store, fingerprint) == {manifest.token}
        assert staging_dirs(store) == set()


@pytest.mark.parametrize("backend", ["local", pytest.param("gs", marks=pytest.mark.slow)])
def test_killed_writers_never_leave_a_bad_entry(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGKILL a writer at random moments of begin/write/commit; the store stays sound."""
    url = _url(backend, tmp_path, request)
    store = ArtifactStore(url, cache_dir=str(tmp_path / "cache"))
    rng = random.Random(1234)
    # gs:// workers spend ~0.5 s importing gcsfs and talking to the emulator first.
    start, stop = (0.05, 0.6) if backend == "local" else (0.4, 1.6)
    for i in range(10):
        fingerprint = f"kill{i}"
        proc = _spawn(
            url,
            fingerprint,
            tmp_path / "cache",
            "--files=5",
            "--size=8192",
            "--delay=0.003",
            "--slow-commit=0.02",
        )
        # Aim: even kills while files are being staged, odd ones once the commit has
        # moved the data in (between that and the manifest, or just after).
        staged = store.paths.join("staging")
        moved = store.paths.fp_dir(fingerprint)
        if i % 2 == 0:
            _aim(proc, lambda s=staged: bool(store.files.list_files(s)))
            time.sleep(rng.uniform(0.0, stop - start) / 4)
        else:
            _aim(proc, lambda m=moved: bool(store.files.list_files(m)))
            time.sleep(rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the writer must be alive when killed"

        found = store.lookup(fingerprint)
        if found is not None:
            assert store.open_local(found) is not None
        again = store.commit(stage(store, fingerprint, {"part.bin": b"retry"}), kind="blob")
        manifest = store.lookup(fingerprint)
        assert manifest is not None
        assert again is None or again == manifest
        assert store.open_local(manifest) is not None
    assert len(store.entries()) == 10
    store.collect(older_than=0)
    assert staging_dirs(store) == set()
    for m in store.entries():
        assert token_dirs(store, m.fingerprint) == {m.token}
