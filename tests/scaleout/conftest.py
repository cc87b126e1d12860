"""Fixtures for the scale-out tests: the GCS emulator of the reuse tests, and a census
config whose own code (a function in the config, a helper module beside it) must reach
the workers by value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_CENSUS, write_config
from tests.reuse.conftest import GCS_BUCKET, emulator_env, gcs_emulator

__all__ = ["GCS_BUCKET", "emulator_env", "gcs_emulator", "udf_census_config"]

_HELPER = "def tens(values):\n    return (values // 10).astype(float)\n"


def _with_user_code(body: str) -> str:
    body = body.replace(
        "def workflow(params):",
        "import census_helpers_14\n\n\ndef decade(batch):\n"
        "    return census_helpers_14.tens(batch['age'])\n\n\ndef workflow(params):",
    )
    body = body.replace(
        '    age = wf.feature("age", F.Numeric("age"))',
        '    age = wf.feature("age", F.Numeric("age"))\n'
        '    ten = wf.feature("decade", F.Udf(decade, batched=True))',
    )
    body = body.replace(
        "[age, hours, education, occupation]", "[age, ten, hours, education, occupation]"
    )
    assert "ten = wf.feature" in body and "[age, ten," in body, "TINY_CENSUS changed shape"
    return body


@pytest.fixture
def udf_census_config(tmp_path: Path, census_like: tuple[Path, Path]) -> Path:
    """TINY_CENSUS plus a user feature defined in the config that calls a helper module
    beside it: neither is importable on a worker, both must travel inside the DoFns."""
    train, test = census_like
    folder = tmp_path / "user_config"
    folder.mkdir()
    (folder / "census_helpers_14.py").write_text(_HELPER, encoding="utf-8")
    return write_config(folder, _with_user_code(TINY_CENSUS), train=train, test=test)
