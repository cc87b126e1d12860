"""Tests of the HTML report (helix_tf.report): no TensorFlow, no Beam, a real SQLite file."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from helix_tf.report import STATE_COLOURS, render_report, write_report
from helix_tf.reuse.metadata import MetadataStore, NodeRecord

EVIL = "<script>alert('x')</script>"


class FakeClock:
    """A clock that advances one minute per reading."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 60.0
        return self.now


def spec(name: str, kind: str, inputs: list[str], fp: str, **params: object) -> dict:
    return {
        "name": name,
        "role": kind,
        "kind": kind,
        "op": "Op",
        "inputs": inputs,
        "output_type": "table",
        "fingerprint": fp,
        "params": params,
        "code": {},
        "output": name == "evaluation",
        "where": "cfg.py:1",
        "extra": {},
    }


def dag(digest: str, *nodes: dict) -> dict:
    return {"workflow": "census", "digest": digest, "outputs": ["evaluation"], "nodes": list(nodes)}


V1 = dag(
    "d1",
    spec("rows", "source", [], "r1"),
    spec("age", "preprocess", ["rows"], "a1", column="age"),
    spec("old_feature", "preprocess", ["rows"], "o1"),
    spec("examples", "preprocess", ["age", "old_feature"], "e1"),
    spec("learner", "train", ["examples"], "l1", l2=0.0001),
    spec("evaluation", "evaluate", ["learner", "examples"], "v1"),
)
V2 = dag(
    "d2",
    *[n for n in V1["nodes"] if n["name"] not in ("learner", "evaluation")],
    spec("learner", "train", ["examples"], "l2", l2=0.001),
    spec("evaluation", "evaluate", ["learner", "examples"], "v2"),
)
V3 = dag(
    "d3",
    spec("rows", "source", [], "r1"),
    spec("age", "preprocess", ["rows"], "a1", column="age"),
    spec(EVIL, "preprocess", ["rows"], "s1"),
    spec("examples", "preprocess", ["age", EVIL], "e3"),
    spec("learner", "train", ["examples"], "l3", l2=0.001),
    spec("evaluation", "evaluate", ["learner", "examples"], "v3"),
)


def record(
    store: MetadataStore,
    version_dag: dict,
    states: dict[str, str],
    *,
    wall: float,
    metrics: dict[str, float],
    approx: bool = False,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> int:
    """Record ``version_dag`` and one finished run of it (nodes not in ``states`` compute)."""
    number = store.record_version("census", "cfg.py", version_dag, version_dag["digest"])
    run_id = store.start_run(
        "census", number, approx=approx, policy="helix", store_url="", params={}
    )
    nodes = [
        NodeRecord(
            name=n["name"],
            kind=n["kind"],
            fingerprint=n["fingerprint"],
            state=states.get(n["name"], "compute"),
            compute_seconds=1.5 if states.get(n["name"], "compute") == "compute" else 0.0,
            load_seconds=0.25 if states.get(n["name"]) == "load" else 0.0,
            write_seconds=0.1,
            rows=100,
        )
        for n in version_dag["nodes"]
    ]
    store.record_nodes(run_id, nodes)
    store.finish_run(
        run_id,
        status="ok",
        wall_seconds=wall,
        metrics=metrics,
        intervals=intervals,
    )
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetadataStore]:
    """Three versions and runs; the third approximate, with a node named like a script."""
    folder = tmp_path_factory.mktemp("report")
    with MetadataStore(f"sqlite:///{folder}/meta/helix.db", clock=FakeClock()) as s:
        record(s, V1, {}, wall=9.0, metrics={"accuracy": 0.84, "auc": 0.89})
        pruned = {"rows": "prune", "age": "prune", "old_feature": "prune", "examples": "load"}
        record(s, V2, pruned, wall=4.0, metrics={"accuracy": 0.85, "auc": 0.9})
        record(
            s,
            V3,
            {"rows": "load", "age": "load"},
            approx=True,
            wall=2.0,
            metrics={"accuracy": 0.8, "auc": 0.88},
            intervals={"accuracy": (0.78, 0.82), "auc": (0.86, 0.9)},
        )
        yield s


@pytest.fixture(scope="module")
def page(store: MetadataStore) -> str:
    return render_report("census", store)


def dag_svg(page: str) -> str:
    match = re.search(r"<svg.*?</svg>", page, re.S)
    assert match is not None, "no inline SVG in the page"
    return match.group(0)


def boxes(page: str) -> dict[str, dict[str, str]]:
    """``{node name: attributes of its box}``, read from the SVG as a browser would."""
    root = ET.fromstring(dag_svg(page))  # well-formed, so a browser draws it as written
    out = {}
    for group in root.iter("g"):
        title, rect = group.find("title"), group.find("rect")
        assert title is not None and rect is not None and title.text
        name = title.text.split("\n")[0].rsplit(" (", 1)[0]
        out[name] = {**rect.attrib, "text": " / ".join(t.text or "" for t in group.iter("text"))}
    return out


def test_dag_is_an_svg_with_every_node_of_the_latest_run(page: str) -> None:
    svg = dag_svg(page)
    found = boxes(page)
    assert set(found) == {"rows", "age", EVIL, "examples", "learner", "evaluation"}
    for name in ("rows", "age", "examples", "learner", "evaluation"):
        assert f">{name}</text>" in svg
    assert found["learner"]["text"] == "learner / train / computed 1.50 s"
    assert found["rows"]["text"] == "rows / source / loaded 0.25 s"
    assert svg.count('marker-end="url(#helix-arrow)"') == 7  # one arrow per edge
    assert found["evaluation"]["stroke-width"] > found["learner"]["stroke-width"]  # an output


def test_nodes_are_coloured_by_their_state_in_the_latest_run(page: str, store) -> None:
    fill = {name: box["fill"] for name, box in boxes(page).items()}
    assert fill["rows"] == fill["age"] == STATE_COLOURS["load"]
    assert fill["learner"] == fill["evaluation"] == fill[EVIL] == STATE_COLOURS["compute"]
    assert all(colour in page for colour in STATE_COLOURS.values())  # legend
    # An older DAG: its nodes the latest run lacks are white.
    old = render_report("census", store, compiled_dag=V2)
    assert boxes(old)["old_feature"]["fill"] == "#ffffff"  # not in the latest run


def test_dag_layers_run_left_to_right(page: str) -> None:
    x = {name: float(box["x"]) for name, box in boxes(page).items()}
    assert x["rows"] < x["age"] == x[EVIL] < x["examples"] < x["learner"] < x["evaluation"]


def test_charts_are_inline_png(page: str) -> None:
    images = re.findall(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)
    assert len(images) == 2  # run time, metric history
    # Every metric point can be hovered for its run and version.
    assert 'title="run #3, v3 (approximate): accuracy = 0.8000"' in page
    assert page.count("<area ") == 6


def test_table_has_a_row_per_run_newest_first(page: str) -> None:
    table = page[page.index("<table>") : page.index("</table>")]
    rows = re.findall(r"<tr class=\"ok\"><td>#(\d+)</td><td>v(\d+)", table)
    assert rows == [("3", "3"), ("2", "2"), ("1", "1")]
    assert "≈0.8000 [0.7800, 0.8200]" in table  # the approximate run's interval
    assert '<td class="num">4</td><td class="num">2</td><td class="num">0</td>' in table


def test_changes_between_the_latest_two_versions_are_in_plain_words(page: str) -> None:
    changes = page[page.index("What changed from v2 to v3") :]
    assert "<b>added</b> <code>&lt;script&gt;" in changes
    assert "<b>removed</b> <code>old_feature</code> (preprocess)" in changes
    assert (
        "<b>changed</b> <code>examples</code> (preprocess): input changed: &lt;script&gt;"
        in changes
    )
    assert "<b>changed</b> <code>learner</code>" in changes
    assert "unchanged</b> (2): rows, age" in changes


def test_parameter_changes_are_named(tmp_path: Path) -> None:
    with MetadataStore(f"sqlite:///{tmp_path}/two.db", clock=FakeClock()) as two:
        record(two, V1, {}, wall=3.0, metrics={"auc": 0.8})
        record(two, V2, {}, wall=1.0, metrics={"auc": 0.9})
        page = render_report("census", two)
    assert "learner.l2 0.0001 → 0.001" in page
    assert "input changed: learner" in page


def test_page_is_self_contained_and_escaped(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "<script" not in page.lower().replace("&lt;script", "")
    assert EVIL not in page


def test_compiled_dag_is_drawn_with_the_latest_states(store: MetadataStore) -> None:
    new = dag("d4", *V3["nodes"], spec("extra_node", "preprocess", ["rows"], "x1"))
    page = render_report("census", store, compiled_dag=new)
    svg = dag_svg(page)
    assert ">extra_node</text>" in svg and ">not run</text>" in svg
    assert "has not run yet" in page


def test_limit_and_empty_workflow(store: MetadataStore) -> None:
    page = render_report("census", store, limit=1)
    assert "Last 1 run<" in page and "#2</td>" not in page
    empty = render_report("nothing_yet", store)
    assert "No runs of nothing_yet" in empty and "<svg" not in empty
    with pytest.raises(ValueError, match="limit must be at least 1, but got limit=0"):
        render_report("census", store, limit=0)


def test_write_report_creates_folders(page: str, tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "report.html"
    write_report(path, page)
    assert path.read_text(encoding="utf-8") == page
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_import_is_light() -> None:
    code = "import sys, helix_tf.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the DAG after an unchanged rerun, the model views, where the page goes ------------------


def test_an_unchanged_rerun_keeps_the_dag_of_the_run_that_computed_the_version(
    tmp_path: Path,
) -> None:
    with MetadataStore(f"sqlite:///{tmp_path}/rerun.db", clock=FakeClock()) as meta:
        first = record(meta, V1, {}, wall=9.0, metrics={"auc": 0.9})
        reused = {n["name"]: "prune" for n in V1["nodes"]} | {"evaluation": "load"}
        latest = record(meta, V1, reused, wall=0.6, metrics={"auc": 0.9})
        page = render_report("census", meta)
    fill = {name: box["fill"] for name, box in boxes(page).items()}
    assert fill["learner"] == fill["rows"] == STATE_COLOURS["compute"]  # not all pruned
    assert f"latest run #{latest} reused every result (1 loaded, 5 pruned)" in page
    assert f"the colours show run #{first}, the last run that computed v1" in page
    assert "DAG of v1" in page


def test_a_rerun_that_computes_something_is_the_one_shown(store: MetadataStore) -> None:
    page = render_report("census", store)
    assert "reused every result" not in page  # the latest run computed: it is shown


def _commit(artifacts, fingerprint: str, kind: str, files: dict[str, bytes], **meta) -> None:
    staging = artifacts.begin(fingerprint)
    for name, body in files.items():
        with staging.open(name, "wb") as f:
            f.write(body)
    artifacts.commit(staging, kind=kind, rows=None, meta=meta)


def _views_store(folder: Path, *, with_predictions: bool) -> MetadataStore:
    """A store holding a predict node's scores and an explain node's result, and a run of them."""
    import io
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from helix_tf.reuse.store import ArtifactStore

    url = str(folder / "artifacts")
    artifacts = ArtifactStore(url)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = np.clip(0.3 * y + rng.uniform(0, 0.7, 300), 0, 1)
    table = pa.table({"__row": np.arange(300), "__label": y, "__score": scores})
    if with_predictions:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        _commit(
            artifacts,
            "p" * 16,
            "predictions",
            {"test/000000.parquet": buf.getvalue()},
            split="test",
        )
    explanation = {
        "baseline": {"auc": 0.8, "log_loss": 0.5},
        "features": {
            "education": {"auc": 0.03, "auc_std": 0.001},
            "age": {"auc": 0.01, "auc_std": 0.0},
        },
        "rows": 300,
        "repeats": 2,
        "scoring": ["auc", "log_loss"],
        "split": "test",
        "linear": {
            "features": {"education": {"weights": 3, "zero": 0, "norm": 2.0}},
            "positive": [["education", "Doctorate", 1.2]],
            "negative": [["education", "Preschool", -0.8]],
        },
    }
    _commit(
        artifacts, "x" * 16, "explanation", {"explanation.json": json.dumps(explanation).encode()}
    )
    version = dag(
        "dv",
        spec("rows", "source", [], "r" * 16),
        {
            **spec("examples", "preprocess", ["rows"], "e" * 16),
            "extra": {"label": {"column": "income", "positive": ">50K"}},
        },
        spec("learner", "train", ["examples"], "l" * 16),
        spec("predictions", "predict", ["learner", "examples"], "p" * 16),
        spec("evaluation", "evaluate", ["predictions"], "v" * 16),
        spec("explanation", "explain", ["learner", "examples"], "x" * 16),
    )
    meta = MetadataStore(f"sqlite:///{folder}/views.db", clock=FakeClock())
    number = meta.record_version("census", "cfg.py", version, "dv")
    run_id = meta.start_run(
        "census", number, approx=False, policy="helix", store_url=url, params={}
    )
    meta.record_nodes(
        run_id,
        [
            NodeRecord(
                name=n["name"], kind=n["kind"], fingerprint=n["fingerprint"], state="compute"
            )
            for n in version["nodes"]
        ],
    )
    metrics = {"accuracy": 0.8, "accuracy[sex=Female]": 0.9, "accuracy[sex=Male]": 0.75}
    meta.finish_run(run_id, status="ok", wall_seconds=3.0, metrics=metrics)
    return meta


def figures(page: str) -> dict[str, str]:
    """``{view key: its figure's HTML}`` of the model views."""
    return dict(re.findall(r'<figure[^>]*data-view="([a-z_]+)"[^>]*>(.*?)</figure>', page, re.S))


def test_model_views_are_drawn_from_the_stored_predictions_and_explanation(tmp_path: Path) -> None:
    meta = _views_store(tmp_path, with_predictions=True)
    with meta:
        page = render_report("census", meta)
    found = figures(page)
    assert list(found) == [
        "roc",
        "precision_recall",
        "calibration",
        "confusion",
        "slices",
        "importance",
        "weights",
    ]
    for key, title in [
        ("roc", "ROC curve"),
        ("precision_recall", "Precision and recall"),
        ("calibration", "Calibration (reliability)"),
        ("confusion", "Confusion matrix"),
        ("slices", "Metrics per slice"),
        ("importance", "Feature importance (permutation)"),
        ("weights", "Linear weights: top positive and negative"),
    ]:
        assert f"<h3>{title}</h3>" in found[key]
        assert re.search(
            r'<img alt="[^"]+" src="data:image/png;base64,[A-Za-z0-9+/=]{500,}"', found[key]
        )
    assert "300 rows of the evaluation split" in found["confusion"]
    assert "shuffled 2× over 300 rows" in found["importance"]


def test_a_missing_predictions_artifact_leaves_the_curves_out_and_says_why(tmp_path: Path) -> None:
    meta = _views_store(tmp_path, with_predictions=False)
    with meta:
        page = render_report("census", meta)
        no_store = render_report("census", meta, store_url="")
    assert list(figures(page)) == ["slices", "importance", "weights"]
    assert "no curves: the result of node &#x27;predictions&#x27;" in page
    assert "--materialize all" in page
    assert "No artifact store is known for this run" in no_store


def test_the_default_report_path_is_in_the_store() -> None:
    from helix_tf.report import default_report_path

    assert default_report_path("/x/.helix/", "census") == "/x/.helix/reports/census.html"
    assert default_report_path("gs://b/p", "my census/v2") == "gs://b/p/reports/my_census_v2.html"


def test_after_a_failed_run_the_views_show_the_latest_run_that_finished(tmp_path: Path) -> None:
    meta = _views_store(tmp_path, with_predictions=True)
    with meta:
        version = meta.versions("census")[-1].number
        failed = meta.start_run(
            "census", version, approx=False, policy="helix", store_url="", params={}
        )
        meta.finish_run(failed, status="failed", wall_seconds=1.0, metrics={}, error="boom")
        page = render_report("census", meta)
    assert "The model: run #1 (v1)" in page
    assert "roc" in figures(page)


def test_a_report_path_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    """Before: a FileExistsError/NotADirectoryError traceback from ``helix-tf report
    --html`` under a file or in a folder that cannot be made."""
    from helix_tf.errors import ExecutionError

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = blocker / "sub" / "r.html"
    with pytest.raises(ExecutionError, match=r"cannot write the report to .*r\.html.*--html FILE"):
        write_report(target, "<html></html>")
    write_report(tmp_path / "ok" / "r.html", "<p>")
    assert (tmp_path / "ok" / "r.html").read_text() == "<p>"
