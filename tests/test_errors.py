"""The error hierarchy's messages."""

from __future__ import annotations

from helix_tf.errors import CompileError, ConfigError


def test_a_problem_naming_its_file_and_line_is_not_prefixed_with_the_file_again() -> None:
    problem = "configs/x.py:29: node 'examples': label column 'y' is not a column of source 'rows'"
    assert str(CompileError([problem], path="configs/x.py")) == problem
    assert str(ConfigError("line 1: RuntimeError: boom", path="configs/x.py")) == (
        "configs/x.py: line 1: RuntimeError: boom"
    )
    # Another file's line keeps the config's name in front; several problems are listed.
    other = "helpers.py:3: bad"
    assert str(ConfigError([other], path="configs/x.py")) == f"configs/x.py: {other}"
    both = str(ConfigError([problem, other], path="configs/x.py"))
    assert both.splitlines() == ["2 errors in configs/x.py:", f"  - {problem}", f"  - {other}"]


def test_a_sampled_data_error_keeps_what_it_found_apart_from_the_samples_note() -> None:
    import pickle

    from helix_tf.errors import SampledDataError

    error = SampledDataError("line 9 of test.csv has label 'maybe'", note="1% sample", node="y")
    assert (
        str(error) == "operator 'y' failed: line 9 of test.csv has label 'maybe'. Note: 1% sample"
    )
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, SampledDataError)
    assert (again.found, again.note, again.node, str(again)) == (
        error.found,
        error.note,
        error.node,
        str(error),
    )
