"""The reuse invariant against edits that reach a UDF past the names it reads (QA pass 17):
a pandas accessor a helper registers (the UDF reaches it from its batch), a pandas option
the config sets when imported. Each: a run, one edit, a run on the same store (reusing what
it may) and a run of the edited config on an empty store must give the same metrics, and
the edit must be visible (the fresh run differs from the first). Before this pass both
edits kept every fingerprint: the accessor's reused run gave the first run's AUC (census
rows, 0.607 reused against 0.664 fresh).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from helix_tf import api
from tests.conftest import write_config

CONFIG = """\
import pandas as pd
import qa17_accessors

$setting


def workflow(params):
    wf = Workflow("settings")
    wf.source("rows", sources.Csv(train=r"$train", test=r"$test", **CENSUS_CSV_OPTIONS))
    age = wf.feature("age", F.Numeric("age"))

    @wf.udf("older", batched=True)
    def older(batch):
        return batch["age"].qa17.over()

    @wf.udf("text_length", batched=True)
    def text_length(batch):
        return batch["hours_per_week"].map(lambda h: float(len(str(pd.Series([h / 7])))))

    examples = wf.examples(
        "examples",
        [age, wf.feature("older_f", F.Numeric(older, standardize=False)),
         wf.feature("length_f", F.Numeric(text_length))],
        label=F.Label("income", positive=">50K"),
    )
    model = wf.train("learner", examples, learners.Linear(epochs=2, batch_size=64))
    predictions = wf.predict("predictions", model, examples)
    wf.output(wf.evaluate("evaluation", predictions, metrics.AUC(), metrics.LogLoss()))
    return wf
"""

ACCESSORS = """\
import pandas as pd


@pd.api.extensions.register_series_accessor("qa17")
class Over:
    def __init__(self, series):
        self._series = series

    def over(self):
        return (self._series.fillna(0).astype(float) > $age).astype(float)
"""

#: (what the first run has, what the edit makes of it): the accessor's threshold, the
#: option the config sets.
EDITS = {
    "accessor": (("30", ""), ("60", "")),
    "pandas option": (
        ("30", 'pd.set_option("display.precision", 1)'),
        ("30", 'pd.set_option("display.precision", 4)'),
    ),
}


@pytest.fixture
def clean_pandas() -> Iterator[None]:
    yield
    pd.reset_option("display.precision")
    if "qa17" in pd.Series._accessors:
        delattr(pd.Series, "qa17")
        pd.Series._accessors.discard("qa17")


def _write(folder: Path, census: tuple[Path, Path], age: str, setting: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa17_accessors.py").write_text(ACCESSORS.replace("$age", age))
    return write_config(folder, CONFIG, train=census[0], test=census[1], setting=setting)


def _metrics(config: Path, store: Path) -> dict[str, float]:
    with warnings.catch_warnings():  # pandas: the accessor registered again on a new load
        warnings.simplefilter("ignore", UserWarning)
        return dict(api.run(config, store=str(store), materialize="all").metrics)


@pytest.mark.slow
@pytest.mark.ci  # ~20 s for both: CI keeps the class covered
@pytest.mark.usefixtures("clean_pandas")
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edit_reaching_a_udf_past_its_names_is_not_reused(
    tmp_path: Path, census_like: tuple[Path, Path], edit: str
) -> None:
    first, second = EDITS[edit]
    config = _write(tmp_path / "project", census_like, *first)
    before = _metrics(config, tmp_path / "store")
    _write(tmp_path / "project", census_like, *second)
    reused = _metrics(config, tmp_path / "store")
    fresh = _metrics(config, tmp_path / "fresh")
    assert fresh != before, "the edit changes what a fresh run computes"
    assert reused == fresh
