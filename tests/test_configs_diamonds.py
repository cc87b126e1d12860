"""The diamonds examples: generated look-alike data, both configs out of the box (on
generated data where the shared copy is absent), and the quality bars on the real table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helix_tf import api
from helix_tf.sample_data import DIAMONDS_COLUMNS, DIAMONDS_CUTS, write_diamonds_like
from tests.conftest import ROOT, SHARED_DATA

SHARED_DIAMONDS = SHARED_DATA / "diamonds"


def test_diamonds_like_is_deterministic_and_in_the_real_format(tmp_path: Path) -> None:
    first = write_diamonds_like(tmp_path / "a", rows=400, seed=3)
    again = write_diamonds_like(tmp_path / "b", rows=400, seed=3)
    assert first.read_bytes() == again.read_bytes()
    assert write_diamonds_like(tmp_path / "c", rows=400, seed=4).read_bytes() != first.read_bytes()
    frame = pd.read_csv(first)
    assert list(frame.columns) == [name for name, _ in DIAMONDS_COLUMNS] and len(frame) == 400
    assert set(frame["cut"]) <= set(DIAMONDS_CUTS) and frame["price"].between(326, 18823).all()
    if SHARED_DIAMONDS.is_dir():  # same header line as the real file
        real = (SHARED_DIAMONDS / "diamonds.csv").read_text().split("\n", 1)[0]
        assert first.read_text().split("\n", 1)[0] == real


def test_diamonds_like_log_price_is_linear_in_the_four_cs(tmp_path: Path) -> None:
    """As in the real table, least squares on log carat and one-hot grades explains ~98%."""
    frame = pd.read_csv(write_diamonds_like(tmp_path, rows=3000, seed=1))
    design = pd.get_dummies(frame[["cut", "color", "clarity"]], drop_first=True).astype(float)
    design["log_carat"] = np.log(frame["carat"])
    design["one"] = 1.0
    y = np.log(frame["price"].to_numpy())
    coef, *_ = np.linalg.lstsq(design.to_numpy(), y, rcond=None)
    residual = y - design.to_numpy() @ coef
    assert 1 - residual.var() / y.var() > 0.97


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize("config", ["diamonds_price", "diamonds_cut"])
def test_the_configs_run_out_of_the_box_on_generated_data(tmp_path: Path, config: str) -> None:
    (tmp_path / "empty").mkdir()  # a data folder without diamonds/
    result = api.run(
        ROOT / "configs" / f"{config}.py", data_dir=str(tmp_path / "empty"), store=str(tmp_path)
    )
    assert any("diamonds table was not found" in note for note in result.notes)
    if config == "diamonds_price":
        assert result.metrics["r2@log"] > 0.95 and result.metrics["rmse"] > 10
    else:
        assert result.metrics["accuracy"] > 0.5 and "f1/macro" in result.metrics


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DIAMONDS.is_dir(), reason=f"{SHARED_DIAMONDS} is absent")
def test_quality_bars_on_the_real_diamonds(tmp_path: Path) -> None:
    price = api.run(ROOT / "configs" / "diamonds_price.py", store=str(tmp_path / "price"))
    assert price.metrics["r2@log"] >= 0.98
    cut = api.run(ROOT / "configs" / "diamonds_cut.py", store=str(tmp_path / "cut"))
    assert cut.metrics["accuracy"] >= 0.75
