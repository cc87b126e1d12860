"""Multiclass and numeric labels: encoding, learned and declared classes, unseen values,
transforms and their inverses, parameter checks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from helix_tf.components import features as F
from helix_tf.components.features._label import OTHER_CLASS, forward_transform, inverse_transform
from helix_tf.errors import ConfigError, DataError


def _learn(label: F.MulticlassLabel, *batches: list) -> dict:
    analyzer = label.analyzer()
    assert analyzer is not None
    parts = [analyzer.add(analyzer.create(), [pa.array(b, pa.string())]) for b in batches]
    return label.finalize_state(analyzer.finalize(analyzer.merge(parts)))


def test_classes_are_learned_from_the_training_split_sorted() -> None:
    label = F.MulticlassLabel("cut")
    state = _learn(label, ["Ideal", "Good", None], ["Fair", "Ideal"])
    assert label.class_names(state) == ["Fair", "Good", "Ideal"]
    assert label.describe(state) == {"task": "multiclass", "classes": ["Fair", "Good", "Ideal"]}
    idx, bad = label.encode(pa.array(["Good", "Ideal", "Fair"]), state)
    assert idx.tolist() == [1, 2, 0] and not bad.any()


def test_declared_classes_keep_their_order_and_need_no_analysis() -> None:
    label = F.MulticlassLabel("cut", classes=["Fair", "Good", "Ideal"])
    assert label.analyzer() is None
    idx, bad = label.encode(pa.array(["Ideal", "Fair"]))
    assert idx.tolist() == [2, 0] and not bad.any()


def test_unseen_and_missing_values_are_flagged() -> None:
    label = F.MulticlassLabel("cut", classes=["a", "b"])
    _, bad = label.encode(pa.array(["a", "zz", None]))
    assert bad.tolist() == [False, True, True]
    assert "unseen='other'" in label.problem("zz")
    assert label.problem(None) == "labels must not be missing"


def test_unseen_other_collects_unknown_values_in_one_last_class() -> None:
    label = F.MulticlassLabel("cut", classes=["a", "b"], unseen="other")
    assert label.class_names() == ["a", "b", OTHER_CLASS]
    idx, bad = label.encode(pa.array(["b", "zz", "a"]))
    assert idx.tolist() == [1, 2, 0] and not bad.any()
    _, bad = label.encode(pa.array([None, "a"]))
    assert bad.tolist() == [True, False]  # missing is still an error


def test_numeric_class_columns_compare_as_text() -> None:
    label = F.MulticlassLabel("grade", classes=[1, 2, 3])
    idx, bad = label.encode(np.array([3.0, 1.0, np.nan]))
    assert idx[:2].tolist() == [2, 0] and bad.tolist() == [False, False, True]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classes": ["a"]}, "at least 2 classes"),
        ({"classes": ["a", "a"]}, "distinct"),
        ({"unseen": "drop"}, "unseen must be"),
        ({"classes": ["a", OTHER_CLASS], "unseen": "other"}, "collects unseen values"),
    ],
)
def test_bad_multiclass_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        F.MulticlassLabel("cut", **kwargs)


def test_a_class_spelled_other_is_a_class_or_refused_never_merged() -> None:
    """A learned class "<other>" was refused as unseen under unseen="error", and under
    unseen="other" was a second class of that name, its rows scored in the collected one."""
    state = _learn(F.MulticlassLabel("y"), ["a", OTHER_CLASS, "b", OTHER_CLASS])
    label = F.MulticlassLabel("y")
    assert label.class_names(state) == [OTHER_CLASS, "a", "b"]
    idx, bad = label.encode(pa.array(["a", OTHER_CLASS, "b"]), state)
    assert idx.tolist() == [1, 0, 2] and not bad.any()
    with pytest.raises(DataError, match=r"holds the value '<other>' \(2 rows\).*replace="):
        F.MulticlassLabel("y", unseen="other").class_names(state)
    declared = F.MulticlassLabel("y", classes=["a", OTHER_CLASS])  # unseen="error"
    idx, bad = declared.encode(pa.array([OTHER_CLASS, "a", "z"]))
    assert idx[:2].tolist() == [1, 0] and bad.tolist() == [False, False, True]


def test_spellings_of_one_value_are_refused_not_read_as_others() -> None:
    """``Yes`` beside ``yes`` (or ``>50K.`` beside ``>50K``) in the training split was a
    negative row of Label(positive="yes"), and two classes of a learned MulticlassLabel
    (QA pass 25); the error names the spellings, their rows and the replace= fix."""
    binary = F.Label("y", positive="yes")
    state = _learn_binary(binary, ["yes", "no", "Yes", "yes", "no", "yes."])
    with pytest.raises(
        DataError,
        match=r"holds 'yes' \(2 rows\), 'Yes' \(1 row\), 'yes\.' "
        r"\(1 row\).*only 'yes' is positive.*replace=\{'y': \{'Yes': 'yes', "
        r"'yes\.': 'yes'\}\}",
    ):
        binary.encode(np.array(["yes", "no"], dtype=object), state)
    numbers = F.Label("y", positive="1")  # a text column merged from two exports
    state = _learn_binary(numbers, ["1", "0", "1.0", "0.0"])
    with pytest.raises(DataError, match=r"holds '1' \(1 row\), '1\.0' \(1 row\)"):
        numbers.encode(np.array(["1", "0"], dtype=object), state)
    codes = F.Label("y", positive="250.1")  # codes, not numbers: 250.10 is another one
    state = _learn_binary(codes, ["250.1", "250.10", "401"])
    assert codes.encode(np.array(["250.1", "250.10"], dtype=object), state)[0].tolist() == [1, 0]
    fine = _learn_binary(binary, ["yes", "no", "No", "NO"])  # negatives alike: no matter
    assert binary.encode(np.array(["yes", "No"], dtype=object), fine)[0].tolist() == [1, 0]
    multi = F.MulticlassLabel("cut")
    state = _learn(multi, ["Ideal", "Good", "ideal", "Ideal", " Good."])
    with pytest.raises(
        DataError,
        match=r"holds 'Good' \(1 row\), ' Good\.' \(1 row\); 'Ideal' \(2 rows\), 'ideal' "
        r"\(1 row\): .*different classes.*replace=\{'cut': \{' Good\.': 'Good', 'ideal': "
        r"'Ideal'\}\}\).*declare the classes",
    ):
        multi.class_names(state)
    declared = F.MulticlassLabel("cut", classes=["Ideal", "ideal"])  # declared: as said
    assert declared.encode(pa.array(["ideal", "Ideal"]))[0].tolist() == [1, 0]


def test_numeric_label_stores_the_original_scale_whatever_the_transform() -> None:
    values = np.array([10.0, 0.0, np.nan, -1.0, 5.0, np.inf])
    stored = {}
    for transform in (None, "log", "sqrt"):
        label = F.NumericLabel("price", transform=transform)
        out, bad = label.encode(values)
        assert bad.tolist() == [False, False, True, False, False, True]
        stored[transform] = out
    # The examples do not depend on the transform (it is applied when training).
    assert all(np.array_equal(stored[None], v) for v in stored.values())
    assert stored[None][[0, 1, 3, 4]].tolist() == [10.0, 0.0, -1.0, 5.0]
    assert F.NumericLabel("p").problem(None) == "a regression label must be a finite number"
    # A text column of classes (QA pass 25): the fix names the multiclass label.
    assert "features.MulticlassLabel('p')" in F.NumericLabel("p").problem("SI1")
    assert F.NumericLabel("p").problem("inf") == "a regression label must be a finite number"


def test_the_training_target_is_checked_against_the_transform_domain() -> None:
    label = F.NumericLabel("price", transform="log")
    np.testing.assert_allclose(label.target(np.array([1.0, np.e]), np.array([3, 4])), [0, 1])
    with pytest.raises(DataError, match=r"row 8 .* label 0\.0 in column 'price'.*> 0"):
        label.target(np.array([2.0, 0.0, -1.0]), np.array([7, 8, 9]))
    assert F.NumericLabel("price", transform="log1p").target(np.array([0.0]), np.array([1]))[0] == 0


@pytest.mark.parametrize("name", [None, "log", "log1p", "sqrt"])
def test_transforms_invert(name: str | None) -> None:
    x = np.array([0.5, 1.0, 326.0, 18823.0])
    np.testing.assert_allclose(inverse_transform(name, forward_transform(name, x)), x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"transform": "exp"}, "transform must be one of"),
        ({"loss": "hinge"}, "loss must be one of"),
        ({"huber_delta": 0}, "huber_delta must be"),
    ],
)
def test_bad_numeric_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        F.NumericLabel("price", **kwargs)


def _learn_binary(label: F.Label, values: list) -> dict:
    analyzer = label.analyzer()
    assert analyzer is not None
    return label.finalize_state(analyzer.finalize(analyzer.add(analyzer.create(), [values])))


def test_binary_label_is_unchanged() -> None:
    label = F.Label("income", positive=">50K")
    state = _learn_binary(label, [">50K", "<=50K"])
    labels, bad = label.encode(np.array([">50K", "<=50K"], dtype=object), state)
    assert labels.dtype == np.int8 and labels.tolist() == [1, 0] and not bad.any()
    assert F.Label("income").analyzer() is None  # a 0/1 column: its domain is known


@pytest.mark.parametrize("values", [pa.array(["yes", "maybe", "no"]), ["yes", "maybe", "no"]])
def test_a_binary_label_value_the_training_split_lacks_is_invalid_not_negative(
    values: object,
) -> None:
    """``maybe`` only in the test split counted as a negative row, silently."""
    label = F.Label("answer", positive="yes")
    state = _learn_binary(label, ["yes", "no", None])
    labels, bad = label.encode(values, state)
    assert bad.tolist() == [False, True, False] and labels.tolist()[0] == 1
    problem = label.problem("maybe")
    assert "'maybe'" in problem and "replace={'answer': {'maybe': <a training value>}}" in problem


def test_binary_label_numbers_are_compared_as_the_training_split_holds_them() -> None:
    label = F.Label("grade", positive=2)
    state = _learn_binary(label, np.array([1.0, 2.0, 3.0]))
    labels, bad = label.encode(np.array([2.0, 3.0, 4.0]), state)
    assert labels.tolist()[:2] == [1, 0] and bad.tolist() == [False, False, True]


@pytest.mark.parametrize("values", [pa.array(["spam", "", "ham", "  "]), ["spam", "", "ham", "  "]])
def test_a_binary_label_of_blank_text_is_missing_not_negative(values: object) -> None:
    """A source whose ``na_values`` keep empty text (the SMS config's ``()``, for an empty
    message) read a row without its label as a negative one, and trained on it silently."""
    label = F.Label("label", positive="spam")
    labels, bad = label.encode(values, _learn_binary(label, ["spam", "ham", " "]))
    assert bad.tolist() == [False, True, False, True]
    assert labels.tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("nan", ["NaN", "nan", " NAN ", "-nan"])
def test_a_label_of_nan_text_is_missing_in_every_label_kind(nan: str) -> None:
    """The text ``NaN`` in a string label column (numpy's ``savetxt``, pandas'
    ``to_csv(na_rep="NaN")``) was a negative row of a binary label and a class of its own
    of a multiclass one, where a numeric label column reads it as missing (QA pass 20)."""
    binary = F.Label("label", positive="spam")
    _, bad = binary.encode(pa.array(["spam", nan, "ham"]), _learn_binary(binary, ["spam", "ham"]))
    assert bad.tolist() == [False, True, False]
    assert binary.transform(["spam", nan])[1].tolist() == [False, True]
    multi = F.MulticlassLabel("cut")
    state = _learn(multi, ["Ideal", nan, "Good"])
    assert multi.class_names(state) == ["Good", "Ideal"]  # never a class "NaN"
    other = F.MulticlassLabel("cut", classes=("Good", "Ideal"), unseen="other")
    _, bad = other.encode(pa.array(["Good", nan]), None)
    assert bad.tolist() == [False, True]  # missing, not "<other>"
    assert not F.Label("x", positive="Nano").validate()  # only NaN itself is missing


@pytest.mark.parametrize(
    "label",
    [
        lambda: F.Label("income", positive="NaN"),
        lambda: F.MulticlassLabel("cut", classes=("Good", "nan")),
    ],
)
def test_a_class_spelled_as_a_missing_label_is_refused_with_the_fix(label) -> None:
    with pytest.raises(ConfigError, match="reads as missing") as info:
        label()
    assert "replace=" in str(info.value)


def test_a_multiclass_label_of_blank_text_is_missing_not_a_class() -> None:
    """Learned classes counted blank text as a class of its own (named '')."""
    label = F.MulticlassLabel("cut")
    state = _learn(label, ["Ideal", "", "Good", " "])
    assert label.class_names(state) == ["Good", "Ideal"]
    _, bad = label.encode(pa.array(["Good", "", "Ideal", None]), state)
    assert bad.tolist() == [False, True, False, True]
    assert label.problem(None) == "labels must not be missing"


@pytest.mark.parametrize("positive", [2, 2.0, "2", "2.0"])
@pytest.mark.parametrize(
    "column", [np.array([1.0, 2.0, 0.0, 2.0]), pa.array(["1", "2", "0", "2"])], ids=["num", "text"]
)
def test_positive_is_read_as_the_column_is(positive: object, column: object) -> None:
    """positive="2" on a numeric column, or 2 on a text one, matched no row though the
    training split's values were counted as the text "2": the run failed saying no row
    equals positive='2', the values found being '2' (2 rows), ... (QA pass 25)."""
    label = F.Label("y", positive=positive)
    state = _learn_binary(label, column)  # type: ignore[arg-type]
    labels, bad = label.encode(column, state)
    if positive == "2.0" and isinstance(column, pa.Array):
        assert labels.tolist() == [0, 0, 0, 0]  # the text "2.0" is not the text "2"
    else:
        assert labels.tolist() == [0, 1, 0, 1] and not bad.any()


def test_a_value_only_another_split_holds_names_the_training_value_it_spells() -> None:
    """``Yes`` only in the test split said "map it … to <a training value>"; the value it
    is a spelling of is the fix (QA pass 25)."""
    binary = F.Label("y", positive="yes")
    state = _learn_binary(binary, ["yes", "no", "no"])
    assert "replace={'y': {'Yes': 'yes'}})" in binary.problem("Yes", state)
    assert "<a training value>" in binary.problem("maybe", state)
    learned = F.MulticlassLabel("cut")
    state = _learn(learned, ["Ideal", "Good"])
    assert "a spelling of the class 'Ideal'" in learned.problem("ideal ", state)
    declared = F.MulticlassLabel("cut", classes=["Ideal", "Good"])
    assert "replace={'cut': {'good.': 'Good'}})" in declared.problem("good.")
    assert "declare it in classes=" in declared.problem("Fair")
