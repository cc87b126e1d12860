"""Fingerprints and compiled facts of every role, pinned.

The compiler reads what joins each role's fingerprint from the role table
(``helix_tf.roles.ROLE_SPECS``); the values pinned here were computed by the
compiler before the table existed (string roles, one branch per role), so a
table entry that forgets or adds a fact fails here. A change of the fingerprint
scheme (``FINGERPRINT_SCHEME``) re-pins them; nothing else may. Scheme 3 only added
the libraries a node's stage computes with (``compiler._runtime``): without them, and
under scheme 2 (and Numeric's version 1, before its exact sums), every pin holds.
Approximate learners carry their training loop (``"loop": "light"``, issue 9: a
traced step over seeded numpy batches instead of Keras' fit), so the approximate
pins of the learning nodes were re-pinned then, and again for ``"loop_version": 2``
(the step gathers its batch in the graph), 3 (a bag's width open in the traced
step), 4 (an epoch one traced loop over its batches, session 11) and 5 (a linear
learner steps over one table of its weights, session 17), and for ``"plateau"`` and ``"fraction"`` (session 10: a sample trains the exact run's
steps, matched by batches, and ends once its loss stopped falling), and for the plateau
rule's sampling-error tolerance and planned-epochs window (``errors``, ``share``), and
for the approximate scoring of a linear model in numpy (``APPROX_SCORING``, session 17); the
exact pins did not move.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import FINGERPRINT_SCHEME, compile_workflow
from helix_tf.errors import ConfigError

TRAIN = "\n".join(f"{20 + i},{30 + i % 7},{'ab'[i % 2]},{i % 3 * 1.5}" for i in range(12)) + "\n"
TEST = "\n".join(f"{40 + i},{35 + i % 5},{'ba'[i % 2]},{i % 2 * 2.5}" for i in range(6)) + "\n"
COLUMNS = {"age": "int", "hours": "int", "education": "string", "target": "float"}

APPROX: dict[str, dict[str, Any] | None] = {
    "exact": None,
    "at_source": {
        "sample": 0.5,
        "seed": 3,
        "precision": "fp32",
        "epochs_scale": 1.0,
        "placement": "source",
        "bf16_fast": False,
    },
    "at_train": {
        "sample": 0.25,
        "seed": 1,
        "precision": "auto",
        "epochs_scale": 0.5,
        "placement": "train",
        "bf16_fast": False,
    },
}

#: Computed by the compiler of main before the role table (scheme 2). The binary examples'
#: label moved from ``education`` (also one of its features) to ``target`` in QA pass 9,
#: when a feature reading the label column became a compile error: the pins of the binary
#: examples and what follows them were recomputed then under the same scheme 2.
PINNED: dict[str, dict[str, str]] = {
    "at_source": {
        "rows": "65455653706735f0b3ba9be4144fca31",
        "age": "f8df2974f77f4a3526a2fb8a1d600229",
        "hours": "928ffc4239eb5bf723f9aa79da41a7e2",
        "education": "40adddd58eb43a9bbf2ec977523a3b2f",
        "examples": "bac241623648d1d816c1befeecc38757",
        "learner": "e7b4a29aa3e87bf3d8dd653845bca490",
        "predictions": "49133984696cad1dbb18b1d454dabbf4",
        "train_predictions": "2ff61fbd4119d5c4f0835aa1ebb92102",
        "evaluation": "3ccba9fb712fc767ec603afee5c1d26d",
        "sliced": "626abbaee297a89d7331de54a8b61fdd",
        "explanation": "0bb184261984fa9f14dace721d4fa78c",
        "reg_examples": "7732edb95c47d93ab35de40a7fb43429",
        "reg_learner": "4f8c0de0ad4d92a4cc4e0323410bd197",
        "reg_predictions": "c0faa3c3d1632816fcfbaf039b6b6514",
        "reg_evaluation": "d70261ddf8d295830df3e522185e1c83",
    },
    "at_train": {
        "rows": "b807197ddadd5ecbf86027d1e4e4b030",
        "age": "5db43566c752330d045b7121a0531c6d",
        "hours": "9c15eaf8d9ac338900a777ef1988db48",
        "education": "fe389788db6c16b9d88d090cb91db2f4",
        "examples": "fa7cf3e52e6be2a0bb1f60aec75a2db7",
        "learner": "673d2cbc3afbc7b362d0be225695421d",
        "predictions": "46173c9b95a125b11c7e52c3f3ab5cd1",
        "train_predictions": "9b0877fc4728af1b72a16de7ff2c82d5",
        "evaluation": "84f1500dd06abaff8b77f891556e7ac5",
        "sliced": "3648e630102afbe861653ae4dbc437e3",
        "explanation": "b1edc144e4750ee0df3d21ab3850d72a",
        "reg_examples": "45e15fbecd46d74cfd89186e2ffd1877",
        "reg_learner": "a0fcb55d29929579684bda4c2877fbe5",
        "reg_predictions": "9a945bc9706a936f532739df7a9ca637",
        "reg_evaluation": "b390efcfc8d74bfbe6ead88f26b07941",
    },
    "exact": {
        "rows": "b807197ddadd5ecbf86027d1e4e4b030",
        "age": "5db43566c752330d045b7121a0531c6d",
        "hours": "9c15eaf8d9ac338900a777ef1988db48",
        "education": "fe389788db6c16b9d88d090cb91db2f4",
        "examples": "fa7cf3e52e6be2a0bb1f60aec75a2db7",
        "learner": "935d628250e3f5a43eaeea144bf945c0",
        "predictions": "78f98d5205cfb89282eac310ff26cd94",
        "train_predictions": "f0cf0fe83df5c2113c08568ce4f26336",
        "evaluation": "e6c3a4588040e235f036b326a2d5aaa3",
        "sliced": "79531aeaf8605e651476a4a17475e6e6",
        "explanation": "6d7ef22f4c85137ca2216293f72524a6",
        "reg_examples": "45e15fbecd46d74cfd89186e2ffd1877",
        "reg_learner": "51e953cb9b7fbe2fee9dd63a168bd176",
        "reg_predictions": "d3f002aedff4251f7fcc75d2462a35f0",
        "reg_evaluation": "a107d702cb7fe058c5b71cda452a79b6",
    },
}


def _workflow(folder: Path) -> Workflow:
    (folder / "train.csv").write_text(TRAIN, encoding="utf-8")
    (folder / "test.csv").write_text(TEST, encoding="utf-8")
    wf = Workflow("roles")
    rows = wf.source(
        "rows",
        sources.Csv(
            train=str(folder / "train.csv"), test=str(folder / "test.csv"), columns=COLUMNS
        ),
    )
    age = wf.feature("age", F.Numeric("age"))
    hours = wf.feature("hours", F.Numeric("hours"), source=rows)
    edu = wf.feature("education", F.Vocabulary("education"))
    binary = wf.examples("examples", [age, hours, edu], label=F.Label("target", positive=1.5))
    model = wf.train("learner", binary, learners.Linear(epochs=1))
    preds = wf.predict("predictions", model, binary)
    on_train = wf.predict("train_predictions", model, binary, split="train")
    wf.output(wf.evaluate("evaluation", preds, metrics.Accuracy(), metrics.AUC()))
    wf.output(wf.evaluate("sliced", on_train, metrics.Accuracy(slice_by="education")))
    wf.output(wf.explain("explanation", model, binary, repeats=1))
    numeric = wf.examples(
        "reg_examples", [age, hours], label=F.NumericLabel("target", transform="log1p")
    )
    reg = wf.train("reg_learner", numeric, learners.Linear(epochs=1))
    wf.output(
        wf.evaluate("reg_evaluation", wf.predict("reg_predictions", reg, numeric), metrics.RMSE())
    )
    return wf


def _compiled(tmp_path: Path, approx: str) -> Any:
    return compile_workflow(_workflow(tmp_path), hasher=ContentHasher(), approx=APPROX[approx])


@pytest.fixture
def scheme_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint scheme before the runtime joined it, Numeric before its
    statistics were summed exactly (version 2), and the class labels before blank text
    was a missing label (version 2, QA pass 15) and before a binary label's value the
    training split lacks was an error (Label version 3, QA pass 16) and before the text
    NaN was a missing label (Label version 4, MulticlassLabel version 3, QA pass 20), and
    Numeric, NumericLabel and RMSE before they were finite for every finite value
    (Numeric version 3, NumericLabel and RMSE version 2, QA pass 23), and Vocabulary,
    Csv, the metrics and the class labels before QA pass 25 (a missing value no text,
    hex refused, slice keys, spellings of one label value: Vocabulary and Csv version 2,
    Metric 2, RMSE 3, Label 5, MulticlassLabel 4)."""
    from helix_tf.compiler import _identity

    assert FINGERPRINT_SCHEME == 3 and F.Numeric.VERSION == 3 and F.NumericLabel.VERSION == 2
    assert metrics.RMSE.VERSION == 3 and metrics.Metric.VERSION == 2
    assert F.Label.VERSION == 5 and F.MulticlassLabel.VERSION == 4
    assert F.Vocabulary.VERSION == 2 and sources.Csv.VERSION == 2
    monkeypatch.setattr(_identity, "FINGERPRINT_SCHEME", 2)
    monkeypatch.setattr(_identity, "runtime_identity", lambda stage, settings=None: {})
    monkeypatch.setattr(F.Numeric, "VERSION", 1)
    monkeypatch.setattr(F.NumericLabel, "VERSION", 1)
    monkeypatch.setattr(metrics.RMSE, "VERSION", 1)
    monkeypatch.setattr(F.Label, "VERSION", 1)
    monkeypatch.setattr(F.MulticlassLabel, "VERSION", 1)
    monkeypatch.setattr(F.Vocabulary, "VERSION", 1)
    monkeypatch.setattr(sources.Csv, "VERSION", 1)
    monkeypatch.setattr(metrics.Metric, "VERSION", 1)


@pytest.mark.parametrize("approx", sorted(APPROX))
def test_every_role_keeps_its_fingerprint(tmp_path: Path, approx: str, scheme_2: None) -> None:
    compiled = _compiled(tmp_path, approx)
    assert {n.name: n.fingerprint for n in compiled.nodes} == PINNED[approx]


def test_a_library_upgrade_changes_the_nodes_of_the_stages_that_compute_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result is reused only by the library versions that computed it: upgrading
    TensorFlow retrains and predicts again but keeps the preprocessing; upgrading
    pandas recomputes the preprocessing (and so everything after it)."""
    from helix_tf.compiler import _runtime

    real = _runtime._version

    def compiled(**versions: str) -> dict[str, str]:
        monkeypatch.setattr(
            _runtime, "_version", lambda d, state=None: versions.get(d) or real(d, state)
        )
        return {n.name: n.fingerprint for n in _compiled(tmp_path, "exact").nodes}

    base = compiled()
    tf = compiled(tensorflow="0.0-other")
    changed = {n for n in base if base[n] != tf[n]}
    learning = {"learner", "predictions", "train_predictions", "explanation", "reg_learner"}
    assert changed == learning | {"reg_predictions", "evaluation", "sliced", "reg_evaluation"}
    pandas = compiled(pandas="0.0-other")
    assert {n for n in base if base[n] != pandas[n]} == set(base)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    onednn = compiled()
    assert {n for n in base if base[n] != onednn[n]} == changed


@pytest.mark.parametrize("dist", ["tensorflow-cpu", "tf-nightly", "tensorflow-macos"])
def test_a_library_installed_under_another_name_is_versioned_by_that_distribution(
    monkeypatch: pytest.MonkeyPatch, dist: str
) -> None:
    """TensorFlow installed as ``tensorflow-cpu`` (or a nightly) provides the same import
    package: upgrading it must retrain as upgrading ``tensorflow`` does (QA pass 7: both
    versions read "absent", and the old model was reused)."""
    import importlib.metadata

    from helix_tf.compiler import _runtime

    real = importlib.metadata.version
    installed = {"version": "2.16.1"}

    def version(name: str) -> str:
        if name == "tensorflow":
            raise importlib.metadata.PackageNotFoundError(name)
        return installed["version"] if name == dist else real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(_runtime, "import_providers", lambda state: {"tensorflow": [dist]})
    # not the TensorFlow this test session may have loaded: the installs below are all
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)

    def identity(stage: str) -> dict[str, Any]:
        _runtime._installed_version.cache_clear()
        return _runtime.runtime_identity(stage)

    try:
        train, preprocess = identity("train"), identity("preprocess")
        assert train["libraries"]["tensorflow"] == f"{dist} 2.16.1"
        installed["version"] = "2.17.0"
        assert identity("train") != train
        assert identity("preprocess") == preprocess  # TensorFlow does not preprocess
    finally:
        _runtime._installed_version.cache_clear()


@pytest.mark.parametrize("setting", ["HELIX_EAGER_MAX_STEPS", "HELIX_TF_STREAM_BYTES"])
def test_a_training_setting_changes_the_learning_nodes_only_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """Training eagerly or traced, in memory or streamed, gives other bits: a model
    trained under another setting is not reused; unset, fingerprints are as before."""
    monkeypatch.delenv(setting, raising=False)
    base = {n.name: n.fingerprint for n in _compiled(tmp_path, "exact").nodes}
    monkeypatch.setenv(setting, "0")
    changed = {n.name for n in _compiled(tmp_path, "exact").nodes if base[n.name] != n.fingerprint}
    learning = {"learner", "predictions", "train_predictions", "explanation", "reg_learner"}
    assert changed == learning | {"reg_predictions", "evaluation", "sliced", "reg_evaluation"}
    monkeypatch.setenv(setting, " ")
    assert {n.name: n.fingerprint for n in _compiled(tmp_path, "exact").nodes} == base


def test_training_settings_are_read_when_a_learner_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    from helix_tf.components.learners import training_setting

    monkeypatch.delenv("HELIX_EAGER_MAX_STEPS", raising=False)
    assert training_setting("HELIX_EAGER_MAX_STEPS", 20) == 20
    monkeypatch.setenv("HELIX_EAGER_MAX_STEPS", "0")
    assert training_setting("HELIX_EAGER_MAX_STEPS", 20) == 0
    monkeypatch.setenv("HELIX_EAGER_MAX_STEPS", "many")
    with pytest.raises(ConfigError, match=r"HELIX_EAGER_MAX_STEPS='many' must be a whole number"):
        training_setting("HELIX_EAGER_MAX_STEPS", 20)


def test_compiled_facts_per_role(tmp_path: Path) -> None:
    """What each compiled node carries (stored as "extra" in a version's DAG)."""
    dag = _compiled(tmp_path, "at_source").to_dict()
    facts = {n["name"]: n["extra"] for n in dag["nodes"]}
    sample = {"fraction": 0.5, "seed": 3}
    assert facts["rows"] == {"sample": sample}
    assert facts["age"] == {"source": "rows"} and facts["hours"] == {"source": "rows"}
    assert facts["examples"] == {
        "features": ["age", "hours", "education"],
        "label": {"column": "target", "positive": 1.5},
    }
    assert facts["learner"] == {
        "approx": {
            "sample": None,
            "seed": 3,
            "precision": "fp32",
            "epochs_scale": 1.0,
            "fraction": 0.5,
            "plateau": {"errors": 1.0, "share": 0.1, "epochs": 10},
            "loop": "light",
            "loop_version": 5,
        }
    }
    assert facts["train_predictions"] == {"split": "train"}
    assert facts["explanation"] == {"split": "test"}
    assert facts["evaluation"] == {
        "metrics": [
            {"op": "Accuracy", "params": {"threshold": 0.5, "slice_by": None}},
            {"op": "AUC", "params": {"slice_by": None}},
        ],
        "source": None,
    }
    assert facts["sliced"]["source"] == "rows"
    kinds = {n["name"]: (n["role"], n["kind"], n["output_type"]) for n in dag["nodes"]}
    assert kinds["rows"] == ("source", "source", "table")
    assert kinds["education"] == ("feature", "preprocess", "feature:categorical")
    assert kinds["examples"] == ("examples", "preprocess", "examples")
    assert kinds["learner"] == ("train", "train", "model")
    assert kinds["predictions"] == ("predict", "predict", "predictions")
    assert kinds["evaluation"] == ("evaluate", "evaluate", "metrics")
    assert kinds["explanation"] == ("explain", "explain", "explanation")


def test_every_fact_a_role_names_is_computed_by_the_compiler() -> None:
    from helix_tf.compiler._identity import FINGERPRINT_FACTS, NODE_FACTS
    from helix_tf.roles import ROLE_SPECS

    for role, spec in ROLE_SPECS.items():
        assert set(spec.fingerprint) <= set(FINGERPRINT_FACTS), role
        assert set(spec.facts) <= set(NODE_FACTS), role
    used = {f for s in ROLE_SPECS.values() for f in s.fingerprint}
    assert used == set(FINGERPRINT_FACTS), "a fingerprint fact no role uses"
    assert {f for s in ROLE_SPECS.values() for f in s.facts} == set(NODE_FACTS)


@pytest.mark.parametrize("setting", ["PLATEAU_ERRORS", "PLATEAU_SHARE", "PLATEAU_EPOCHS"])
def test_when_a_sample_stops_training_is_in_the_approximate_learners_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """Another plateau rule trains another model: its approximate learning nodes move;
    the preprocessing and every exact fingerprint stay."""
    from helix_tf.approx import settings as approx_settings

    before = {a: _compiled(tmp_path, a) for a in APPROX}
    monkeypatch.setattr(approx_settings, setting, getattr(approx_settings, setting) * 2)
    for approx, compiled in before.items():
        after = {n.name: n.fingerprint for n in _compiled(tmp_path, approx).nodes}
        moved = {n.name for n in compiled.nodes if after[n.name] != n.fingerprint}
        if approx == "exact":
            assert moved == set()
        else:
            assert "learner" in moved and "reg_learner" in moved
            assert not moved & {"rows", "age", "hours", "education", "examples"}
