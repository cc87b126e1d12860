"""``helix-tf store gc | verify | du`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from helix_tf.cli import main
from helix_tf.reuse.metadata import MetadataStore
from helix_tf.reuse.store import ArtifactStore


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _put(store: ArtifactStore, fingerprint: str, data: bytes) -> None:
    staging = store.begin(fingerprint)
    with staging.open("part.bin") as f:
        f.write(data)
    store.commit(staging, kind="table")


def _store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    store = ArtifactStore(str(root))
    _put(store, "fpsource", b"s" * 3000)
    _put(store, "fpfeature", b"f" * 1000)
    _put(store, "fpstray", b"x" * 10)
    with MetadataStore(f"sqlite:///{root / 'metadata.db'}") as md:
        for number, feature in ((1, "fpold"), (2, "fpfeature")):
            dag = {
                "nodes": [
                    {"name": "rows", "fingerprint": "fpsource"},
                    {"name": "age", "fingerprint": feature},
                ]
            }
            md.record_version("census", "c.py", dag, f"d{number}")
    store.begin("fpleft")  # a lease-less writer's staging: no known owner, fresh
    return root


def test_du_names_entries_by_node_and_version(tmp_path: Path) -> None:
    root = _store(tmp_path)
    result = invoke("store", "du", "--store", root, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = {(r["workflow"], r["node"]): r for r in data["nodes"]}
    assert rows["census", "rows"]["versions"] == [1, 2]
    assert rows["census", "rows"]["bytes"] == 3000
    assert rows["census", "age"]["versions"] == [2]
    assert rows["?", "(unnamed table)"]["bytes"] == 10
    assert data["entries_bytes"] == 4010
    assert data["leftovers"] == 1  # the staging folder nobody owns
    text = invoke("store", "du", "--store", root)
    assert text.exit_code == 0 and "census" in text.output and "v1,v2" in text.output


def test_gc_keeps_fresh_unowned_leftovers_unless_told(tmp_path: Path) -> None:
    root = _store(tmp_path)
    kept = invoke("store", "gc", "--store", root, "--json")
    assert json.loads(kept.output)["removed"] == 0
    dry = invoke("store", "gc", "--store", root, "--older-than", "0", "--dry-run")
    assert "would remove 1 leftover" in dry.output
    assert len(list((root / "staging").iterdir())) == 1
    gone = invoke("store", "gc", "--store", root, "--older-than", "0", "--json")
    assert json.loads(gone.output)["removed"] == 1
    assert list((root / "staging").iterdir()) == []


def test_verify_reports_and_repairs(tmp_path: Path) -> None:
    root = _store(tmp_path)
    clean = invoke("store", "verify", "--store", root)
    assert clean.exit_code == 0 and "3 entries verified" in clean.output
    store = ArtifactStore(str(root))
    manifest = store.lookup("fpfeature")
    assert manifest is not None
    Path(store.paths.data_dir("fpfeature", manifest.token), "part.bin").write_bytes(b"g" * 1000)
    bad = invoke("store", "verify", "--store", root)
    assert bad.exit_code == 1 and "fpfeature" in bad.output and "NOT clean" in bad.output
    found = json.loads(invoke("store", "verify", "--store", root, "--json").output)
    assert (found["clean"], found["clean_now"], len(found["bad"])) == (False, False, 1)
    fixed = invoke("store", "verify", "--store", root, "--repair")
    assert fixed.exit_code == 0
    # What it removed is gone: the summary says the store is clean now.
    assert "removed 1 bad entr(ies)" in fixed.output and "clean now" in fixed.output
    assert invoke("store", "verify", "--store", root).exit_code == 0
    assert store.lookup("fpfeature") is None


def test_a_missing_store_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    result = invoke("store", "verify", "--store", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "no artifact store at" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_gc_names_whose_run_died_and_where(tmp_path: Path) -> None:
    """On a shared store a dead run is named by user and host (from its lease file)."""
    root = _store(tmp_path)
    runs = root / "runs"
    runs.mkdir(exist_ok=True)
    lease = {
        "id": "ef" * 8,
        "host": "build-7.example",
        "user": "ana",
        "pid": 4242,
        "proc_start": None,
        "pid_scope": None,
        "created": 0.0,
        "renewed": 0.0,  # never renewed since 1970: expired on any host
        "pins": [],
        "scratch": None,
        "run": {},
    }
    (runs / f"{'ef' * 8}.json").write_text(json.dumps(lease))
    dry = invoke("store", "gc", "--store", root, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    owners = json.loads(dry.output)["dead_run_owners"]
    assert owners == [{"id": "ef" * 8, "user": "ana", "host": "build-7.example", "pid": 4242}]
    text = invoke("store", "gc", "--store", root)
    assert text.exit_code == 0, text.output
    assert f"dead run {'ef' * 8}: ana@build-7.example pid 4242" in text.output


def test_gc_refuses_a_negative_age(tmp_path: Path) -> None:
    """Before: ``--older-than -5`` was taken (and meant "anything", like 0)."""
    root = _store(tmp_path)
    result = invoke("store", "gc", "--store", root, "--older-than", "-5")
    assert result.exit_code == 2 and "Invalid value for '--older-than'" in result.output
