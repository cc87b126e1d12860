"""Seeds left unset are refusals (QA pass 12): a library call whose ``random_state`` is
None draws from numpy's generator for the whole process (pandas' ``df.sample(frac=0.5)``
on the batch a UDF is given, scikit-learn's ``shuffle``), and a seed parameter defaulting
to None is None when helix_tf calls the UDF with its row or batch only.

Before this pass both were fingerprinted as if seeded: the node was stored and a rerun
reused draws that no fresh run makes.
"""

from __future__ import annotations

import functools
import inspect
import pathlib
import sys
import tempfile

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from helix_tf.compiler.hashing import code_fingerprint
from helix_tf.compiler.hashing._unset_seeds import RUN_TIME_METHODS
from tests.compiler.conftest import load_module


def _udf(load, body: str) -> object:
    module = load(
        f"""
        import numpy as np
        import pandas as pd
        from sklearn.utils import shuffle

        SEED = 7
        NO_SEED = None


        def udf(batch, seed=None, seeded=3, *, key=None):
            {body}
        """
    )
    return module.udf


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ("return batch.sample(frac=0.5)", "random_state"),
        ("return batch['a'].sample(n=2).to_numpy()", "random_state"),
        ("return batch.groupby('k').sample(n=1)", "random_state"),
        ("return batch.sample(frac=0.5, random_state=None)", "random_state"),
        ("return batch.sample(frac=0.5, random_state=NO_SEED)", "random_state"),
        ("return batch.sample(frac=0.5, random_state=np.random)", "random_state"),
        ("return batch.sample(None, 0.5, False, None, None)", "random_state"),
        ("return shuffle(batch)", "random_state"),
    ],
)
def test_a_library_call_leaving_its_seed_none_is_a_refusal(load, body: str, param: str) -> None:
    refusals = code_fingerprint(_udf(load, body)).refusals
    assert len(refusals) == 1, refusals
    assert f"with its {param} left None" in refusals[0]
    assert f"pass {param}=SEED" in refusals[0]


@pytest.mark.parametrize(
    "body",
    [
        "return np.random.default_rng(seed).normal()",
        "return np.random.default_rng(key).normal()",
        "return (lambda s=None: np.random.default_rng(s).normal())()",
        "return batch.sample(frac=0.5, random_state=seed)",
        "return batch.sample(frac=0.5, random_state=key)",
        "return shuffle(batch, random_state=seed)",
        "return (lambda s=None: batch.sample(frac=0.5, random_state=s))()",
    ],
)
def test_a_seed_parameter_defaulting_to_none_is_no_seed(load, body: str) -> None:
    """helix_tf calls a UDF with its row or batch only: ``seed`` is None."""
    refusals = code_fingerprint(_udf(load, body)).refusals
    assert len(refusals) == 1 and "draws numbers no seed fixes" in refusals[0], refusals
    assert "which defaults to None" in refusals[0] and "a number as its default" in refusals[0]


_HELPERS = """
import functools

import numpy as np

SEED = 5


def noise(x, seed=None):
    return x + np.random.default_rng(seed).normal()


def passes_it_on(x, seed=None):
    return noise(x, seed=seed)


class Jitter:
    def __call__(self, x, seed=None):
        return noise(x, seed)


class Base:
    scale = 2.0

    def draw(self, x, seed=None):
        return noise(x, seed)


class Drawing(Base):  # the seeded method inherited
    pass


class Calls(Base):
    def twice(self, x):
        return self.draw(x)


def noise_with(obj, x):
    return obj.draw(x, seed=SEED)


def udf(x):
    {body}
"""


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ("return noise(x, seed=SEED)", False),
        ("return noise(x, 3)", False),
        ("return passes_it_on(x, seed=7)", False),
        ("return noise(x)", True),
        ("return noise(x, seed=None)", True),
        ("return passes_it_on(x)", True),
        ("return list(map(noise, [x]))", True),
        # A method's seed parameter: judged at the calls of the object made (QA pass 14),
        # refused where the object goes where its calls are not seen.
        ("return Jitter()(x, 2)", False),
        ("return Jitter()(x)", True),
        ("j = Jitter()\n    return j(x, seed=SEED) + j.__call__(x, 1)", False),
        ("j = Jitter()\n    return j(x) + j(x, seed=SEED)", True),
        ("return Drawing().draw(x, seed=SEED)", False),
        ("return Drawing().draw(x)", True),
        ("d = Drawing()\n    return d.scale * d.draw(x, SEED)", False),
        ("d = Drawing()\n    return list(map(d.draw, [x]))", True),
        ("return noise_with(Drawing(), x)", True),
        ("return Calls().draw(x, seed=SEED)", True),  # its own self.draw(x) is not followed
    ],
)
def test_a_helper_seed_parameter_is_judged_where_it_is_called(
    load, body: str, refused: bool
) -> None:
    """A helper ``noise(x, seed=None)`` is seeded by its callers: a call passing the seed
    stays reusable, one leaving it out (or handing the helper on) is refused."""
    fp = code_fingerprint(load(_HELPERS.format(body=body)).udf)
    assert bool(fp.refusals) == refused, fp.refusals
    assert all("no seed fixes" in r for r in fp.refusals), fp.refusals


def test_entries_helix_tf_calls_leave_their_seed_parameters_none(load) -> None:
    module = load(_HELPERS.format(body="return x"))
    assert code_fingerprint(module.noise).refusals  # called with the row only
    assert code_fingerprint(module.passes_it_on).refusals
    assert code_fingerprint(module.Jitter()).refusals
    assert not code_fingerprint(functools.partial(module.noise, seed=1)).refusals
    assert code_fingerprint(functools.partial(module.noise)).refusals


@pytest.mark.parametrize(
    "body",
    [
        "return batch.sample(frac=0.5, random_state=SEED)",
        "return batch.sample(frac=0.5, random_state=seeded)",
        "return batch.sample(None, 0.5, False, None, 3)",
        "return batch.sample(frac=0.5, random_state=np.random.default_rng(seeded))",
        "return shuffle(batch, random_state=0)",
        "return np.random.default_rng(seeded).normal()",
        # Set in the body before use: no longer the default.
        "seed = SEED if seed is None else seed; return batch.sample(frac=0.5, random_state=seed)",
        "return np.random.default_rng(seed or 0).normal()",
        # Passed through **kwargs: not known at compile time (not guessed).
        "return batch.sample(frac=0.5, **{'random_state': 1})",
        # Methods of the same name that take no seed.
        "return batch['t'].str.len() + len(batch.index.sample) if False else batch",
    ],
)
def test_seeds_that_are_set_stay_reusable(load, body: str) -> None:
    fp = code_fingerprint(_udf(load, body))
    assert fp.refusals == () and fp.analysable, fp.refusals


@settings(max_examples=25, deadline=None)
@given(
    seed=st.one_of(st.none(), st.integers(0, 2**31)),
    positional=st.booleans(),
    frac=st.floats(0.1, 1.0).map(lambda f: round(f, 2)),
)
def test_only_a_none_seed_refuses_whatever_its_spelling(
    seed: int | None, positional: bool, frac: float
) -> None:
    """Keyword or positional, the seed decides alone: None refuses, a number is reusable."""
    call = (
        f"batch.sample(None, {frac}, False, None, {seed})"
        if positional
        else f"batch.sample(frac={frac}, random_state={seed})"
    )
    with tempfile.TemporaryDirectory() as folder:
        module = load_module(pathlib.Path(folder), f"def udf(batch):\n    return {call}\n")
        sys.modules.pop(module.__name__, None)
        fp = code_fingerprint(module.udf)
    assert bool(fp.refusals) == (seed is None), (call, fp.refusals)


@pytest.mark.parametrize(
    "cls",
    [
        pd.DataFrame,
        pd.Series,
        pd.core.groupby.DataFrameGroupBy,
        pd.core.groupby.SeriesGroupBy,
    ],
)
def test_the_run_time_methods_spell_pandas_own_signatures(cls: type) -> None:
    """The table read when pandas is not imported (a config compiles without it) names
    the parameters as the installed pandas does, the seed last and None by default."""
    for name, params in RUN_TIME_METHODS.items():
        real = inspect.signature(getattr(cls, name)).parameters
        assert list(real)[: len(params)] == list(params), (cls, name)
        assert real[params[-1]].default is None
