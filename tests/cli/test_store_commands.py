"""``helix-tf store gc | verify | du`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def _write_lease(root: Path, run: dict[str, object]) -> None:
    """The lease of run ``ef…`` by ana@build-7.example, pid 4242, dead on any host."""
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
        "run": run,
    }
    (root / "runs").mkdir(exist_ok=True)
    (root / "runs" / f"{'ef' * 8}.json").write_text(json.dumps(lease))


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


def test_verify_says_in_text_json_and_exit_status_alike_that_leftovers_are_not_damage(
    tmp_path: Path,
) -> None:
    """Before: a killed run's leftovers printed "NOT clean" and exited 0 (--json clean_now
    false): the text, --json and the exit status now agree, and leftovers are counted."""
    root = _store(tmp_path)
    _write_lease(root, {})  # a dead run, and its empty staging folder
    (root / "staging" / f"fpdead.run-{'ef' * 8}0001").mkdir()
    text = invoke("store", "verify", "--store", root)
    assert text.exit_code == 0, text.output
    assert "leftover(s) of dead runs" in text.output and "NOT clean" not in text.output
    assert text.output.rstrip().endswith(": clean")
    found = json.loads(invoke("store", "verify", "--store", root, "--json").output)
    assert found["leftovers"] >= 1 and found["clean"] is found["clean_now"] is True


def test_a_missing_store_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    result = invoke("store", "verify", "--store", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "no artifact store at" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_gc_names_whose_run_died_and_where(tmp_path: Path) -> None:
    """On a shared store a dead run is named by user and host (from its lease file)."""
    root = _store(tmp_path)
    _write_lease(root, {})
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


# ------------------------------------------------------- a damaged metadata database


def _damage(db: Path, where: str) -> None:
    """Overwrite the database's header (it no longer opens) or the pages after the first
    (it opens; reading the tables fails)."""
    size = db.stat().st_size
    with open(db, "r+b") as f:
        if where == "header":
            f.write(b"not a database at all" * 4)
        else:
            f.seek(4096)
            f.write(b"\xde\xad\xbe\xef" * ((size - 4096) // 4))


def _dead_lease(root: Path, run_id: int | None) -> None:
    """The lease of a run whose process is gone, naming its run in the store's database."""
    with MetadataStore(f"sqlite:///{root / 'metadata.db'}") as md:
        url = md.url
        for n in range(40):  # pages past the first to damage
            md.record_version("other", "o.py", {"nodes": [], "pad": "p" * 400}, f"o{n}")
    _write_lease(root, {} if run_id is None else {"run_id": run_id, "metadata": url})


@pytest.mark.parametrize("where", ["header", "pages"])
def test_gc_refuses_before_removing_anything_while_the_database_is_damaged(
    tmp_path: Path, where: str
) -> None:
    """Before: gc removed the leftovers and the dead run's lease, then failed marking it
    killed in the damaged database (the lease, its only record, was gone)."""
    root = _store(tmp_path)
    _dead_lease(root, run_id=7)
    _damage(root / "metadata.db", where)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    refused = invoke("store", "gc", "--store", root, "--older-than", "0")
    assert refused.exit_code == 1
    assert "Nothing was removed" in refused.output and "dead runs 7" in refused.output
    assert f"helix-tf store verify --store {root} --repair" in " ".join(refused.output.split())
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    # verify finds it; --repair moves it aside (kept), after which gc works
    found = invoke("store", "verify", "--store", root, "--json")
    assert found.exit_code == 1
    assert json.loads(found.output)["metadata"]["damage"]
    text = invoke("store", "verify", "--store", root)
    assert "bad metadata database" in text.output and "NOT clean" in text.output
    fixed = invoke("store", "verify", "--store", root, "--repair", "--json")
    assert fixed.exit_code == 0, fixed.output
    moved = Path(json.loads(fixed.output)["metadata"]["moved_to"])
    assert moved.is_file() and not (root / "metadata.db").exists()
    assert invoke("store", "gc", "--store", root, "--older-than", "0").exit_code == 0
    assert list((root / "staging").iterdir()) == []


def test_gc_works_around_a_damaged_database_it_has_nothing_to_record_in(tmp_path: Path) -> None:
    root = _store(tmp_path)
    _dead_lease(root, run_id=None)  # a run that died before it was recorded
    _damage(root / "metadata.db", "header")
    done = invoke("store", "gc", "--store", root, "--older-than", "0", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["dead_runs"] == ["ef" * 8]
    assert list((root / "staging").iterdir()) == []


def test_verify_leaves_a_database_of_a_newer_helix_tf_alone(tmp_path: Path) -> None:
    """A newer schema is not damage: noted, never moved aside; gc refuses with its fix."""
    import sqlite3

    root = _store(tmp_path)
    _dead_lease(root, run_id=3)
    with sqlite3.connect(root / "metadata.db") as conn:
        conn.execute("update helix_meta set value = '99' where key = 'schema_version'")
    refused = invoke("store", "gc", "--store", root)
    assert refused.exit_code == 1 and "newer helix_tf" in refused.output
    assert "Nothing was removed" in refused.output and "--repair" not in refused.output
    for args in ((), ("--repair",)):
        done = invoke("store", "verify", "--store", root, *args)
        assert done.exit_code == 0, done.output
        assert "not checked" in done.output and "newer helix_tf" in done.output
    assert (root / "metadata.db").is_file()


def test_du_works_around_a_damaged_database(tmp_path: Path) -> None:
    """Before: du failed on the database it only reads names from."""
    root = _store(tmp_path)
    _dead_lease(root, run_id=None)
    _damage(root / "metadata.db", "header")
    shown = invoke("store", "du", "--store", root, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["entries_bytes"] == 4010
    assert "not named by workflow node" in shown.stderr and "damaged" in shown.stderr


def test_verify_repair_leaves_a_damaged_database_a_live_run_writes_to(tmp_path: Path) -> None:
    import os

    root = _store(tmp_path)
    _damage(root / "metadata.db", "header")
    store = ArtifactStore(str(root))
    with store.open_lease(set(), scratch_root=str(tmp_path / "scratch")):  # this process: live
        held = invoke("store", "verify", "--store", root, "--repair")
    assert held.exit_code == 1, held.output
    assert f"pid {os.getpid()}" in held.output and "not moved aside" in held.output
    assert (root / "metadata.db").is_file()
    assert invoke("store", "verify", "--store", root, "--repair").exit_code == 0
    assert not (root / "metadata.db").exists()
