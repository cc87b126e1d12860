"""The example configs compile to their reviewed golden DAGs (tests/golden/*.dag.txt)."""

from __future__ import annotations

import difflib

import pytest

from tests.golden import CONFIGS, REGENERATE, compile_config, render


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_compiled_dag_matches_the_golden_file(config: str) -> None:
    golden = CONFIGS[config]
    actual = render(compile_config(config), config)
    expected = golden.read_text() if golden.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{golden.name} (golden)",
                tofile=f"{config} (compiled now)",
            )
        )
        pytest.fail(
            f"the compiled DAG of {config} differs from {golden}:\n{diff}\n"
            f"If the change is intended, review it and regenerate with `{REGENERATE}`.",
            pytrace=False,
        )
