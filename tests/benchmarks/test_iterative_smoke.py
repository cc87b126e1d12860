"""Smoke test of the iterative benchmark: census10, scale 1, iterations 0-2, helix and none.

Runs six real ``helix-tf run`` processes (about a minute): the benchmark must
find identical metrics under both policies, and iteration 1 (PPR: add metrics)
under helix must not retrain the model.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import iterative


@pytest.mark.slow  # not in CI (34 s): the benchmark's arithmetic is tested in tests/benchmarks
def test_census10_first_iterations_reuse_the_model(tmp_path, capsys):
    out = tmp_path / "census10.json"
    status = iterative.main(
        [
            "--sequence",
            "census10",
            "--scale",
            "1",
            "--iterations",
            "0-2",
            "--policies",
            "helix,none",
            "--json",
            str(out),
            "--out-dir",
            str(tmp_path / "work"),
            "--timeout",
            "300",
        ]
    )
    printed = capsys.readouterr()
    assert status == 0, printed.err[-3000:]

    report = json.loads(out.read_text())
    assert report["metrics_identical"] is True
    assert report["metrics_compared"] == {"helix": 3, "none": 3}
    assert report["errors"] == []
    assert [r["iteration"] for r in report["iterations"]] == [0, 1, 2]

    ppr = report["iterations"][1]
    assert ppr["type"] == "PPR"
    assert ppr["policies"]["helix"]["states"]["learner"] in ("load", "prune")
    assert ppr["policies"]["none"]["states"]["learner"] == "compute"
    assert set(ppr["policies"]["helix"]["metrics"]) >= {"accuracy", "auc", "precision", "recall"}

    assert set(report["cumulative_seconds"]) == {"helix", "none", "oracle"}
    assert report["bytes_stored_end"]["none"] == 0
    assert report["bytes_stored_end"]["helix"] > 0
    assert (tmp_path / "census10.md").is_file()
    assert (tmp_path / "census10.png").stat().st_size > 0
