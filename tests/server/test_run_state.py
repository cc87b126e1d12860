"""A served run's request carries what of its process state the trainer must take on:
the umask its files take and the warning filters (QA 24)."""

from __future__ import annotations

import os
import warnings

import pytest

from helix_tf.server._run_state import of_this_process, taken_on


def test_a_request_is_answered_under_the_runs_umask_and_warning_filters() -> None:
    before_mask = os.umask(0o022)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            state = of_this_process()
        os.umask(0o077)
        state["umask"] = 0o027
        with pytest.warns(UserWarning):  # our own filters: shown, not raised
            warnings.warn("ours", UserWarning, stacklevel=1)
        with taken_on(state):
            assert os.umask(0o027) == 0o027
            with pytest.raises(UserWarning):
                warnings.warn("the run's filters make it an error", UserWarning, stacklevel=1)
        assert os.umask(0o077) == 0o077  # ours again
        with pytest.warns(UserWarning):
            warnings.warn("ours again", UserWarning, stacklevel=1)
    finally:
        os.umask(before_mask)


def test_a_request_without_state_is_answered_under_ours() -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    filters = list(warnings.filters)
    with taken_on({}):
        assert list(warnings.filters) == filters
        assert os.umask(mask) == mask
