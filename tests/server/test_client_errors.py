"""The served run's client: a run process that ends without its exit status is an error,
in JSON too when ``--json`` was asked for (as every command's error)."""

from __future__ import annotations

import json
import os
import socket

import pytest

from helix_tf.server._client import _follow


@pytest.mark.parametrize("as_json", [False, True])
def test_a_run_process_gone_without_an_exit_status_is_an_error(
    as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    ours, theirs = socket.socketpair()
    theirs.close()  # the run process ended (killed) before it sent its exit status
    assert _follow(ours, os.getpid(), as_json=as_json) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: the helix-tf server's run process ended without an exit")
    if not as_json:
        assert out == ""
        return
    error = json.loads(out)["error"]
    assert error["exit_code"] == 1 and error["message"] in err
