"""A run never stores results computed while their data file was being rewritten.

The compiler hashes a data file before the run reads it. A file saved again in between
(the user's editor, a download finishing) is read as the new content while the results
are stored under the fingerprint of the old one: once the file holds the old bytes again
(an undo, a ``git checkout``), a run loaded results that a fresh run does not compute.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from helix_tf import api
from helix_tf.events import Planned
from tests.conftest import TINY_CENSUS, write_config


def _shifted(data: bytes) -> bytes:
    """The same size, another age in the first rows."""
    lines = data.split(b"\n")
    out = b"\n".join(
        bytes([ln[0] + 1]) + ln[1:] if ln and 0x31 <= ln[0] <= 0x37 else ln for ln in lines
    )
    assert len(out) == len(data) and out != data
    return out


def test_a_file_rewritten_while_a_run_reads_it_keeps_that_run_out_of_the_store(
    tmp_path: Path, census_cut: tuple[Path, Path]
) -> None:
    train, test = (shutil.copy(p, tmp_path / p.name) for p in census_cut)
    config = write_config(tmp_path, TINY_CENSUS, train=train, test=test)
    store = tmp_path / "store"
    original = Path(train).read_bytes()

    def rewrite_when_planned(event: object) -> None:
        if isinstance(event, Planned):
            Path(train).write_bytes(_shifted(original))

    during = api.run(config, store=str(store), materialize="all", progress=rewrite_when_planned)
    assert not any(n.materialized for n in during.nodes)
    Path(train).write_bytes(original)  # back to the bytes the compiler hashed: nothing stored
    planned = api.plan(config, store=str(store))
    assert [n.state for n in planned.nodes] == ["compute"] * len(planned.nodes)
