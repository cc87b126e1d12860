"""Settings of an approximate run (``helix_tf.approx.settings``).

Covered: ``Approx`` validation (each bad value is a ``ConfigError`` that names the
option, the allowed range or choices and the value received; several problems are
reported together), ``for_compiler`` (the keys folded into fingerprints; an unknown
placement is rejected), the CPU capability probe, and the ``auto`` precision rule —
bfloat16 only for networks (DNN, WideDeep) on CPUs with fast bfloat16, float32 for
linear models — with the CPU capability monkeypatched both ways, directly and
through the compiler, so nothing depends on this machine's CPU.
"""

from __future__ import annotations

import builtins
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

import helix_tf
from helix_tf import Workflow, features as F, learners
from helix_tf.approx import settings as approx_settings
from helix_tf.approx.settings import (
    PRECISIONS,
    Approx,
    cpu_has_fast_bf16,
    resolve_precision,
    training_epochs,
)
from helix_tf.compiler._values import train_approx
from helix_tf.compiler.graph import compile_workflow
from helix_tf.config import load_config
from helix_tf.errors import ConfigError, HelixError
from tests.conftest import TINY_CENSUS, write_config

LINEAR = "learners.Linear(epochs=params.epochs, batch_size=128, learning_rate=0.05)"


# ------------------------------------------------------------------------------ Approx


def test_defaults_are_a_ten_percent_sample_with_auto_precision() -> None:
    a = Approx()
    assert (a.sample, a.precision, a.epochs_scale, a.seed) == (None, "auto", 1.0, 0)
    assert a.resolved(None).sample == 0.1 and a.for_compiler(placement="source")["sample"] == 0.1
    assert helix_tf.Approx is Approx  # the public name


@pytest.mark.parametrize(
    ("rows", "sample"),
    [
        *[(None, 0.1), (3_256, 0.1), (325_610, 0.1), (400_000, 0.1), (400_001, 0.09)],
        *[(3_256_100, 0.01), (32_561_000, 0.001), (7_000_000, 0.005)],
    ],
)
def test_an_unnamed_sample_keeps_ten_percent_or_about_40k_rows(rows: int, sample: float) -> None:
    """Large data samples a smaller share (census ×100 keeps 1%: as many rows as ×10's
    10%); a named fraction is kept whatever the data."""
    assert Approx().resolved(rows).sample == sample
    assert Approx(sample=0.3).resolved(rows).sample == 0.3


def test_the_sample_is_sized_by_the_sources_estimated_training_rows(tmp_path: Path) -> None:
    """An approximate census ×100 run samples 1% at the source and in its fingerprints;
    ×10 keeps 10% (the estimate reads only the files' sizes and first lines)."""
    from helix_tf import sources
    from helix_tf._session import _training_rows
    from helix_tf.compiler.content import ContentHasher

    lines = "".join(f"{20 + i % 50},{i % 7},{'ab'[i % 2]}\n" for i in range(2_000))
    (tmp_path / "train.csv").write_text(lines, encoding="utf-8")
    (tmp_path / "test.csv").write_text(lines[:400], encoding="utf-8")
    for replicate, sample in ((10, 0.1), (250, 0.08), (1_000, 0.02)):
        wf = Workflow("sized")
        columns = {"age": "int", "hours": "int", "education": "string"}
        wf.source(
            "rows",
            sources.Csv(
                train=str(tmp_path / "train.csv"),
                test=str(tmp_path / "test.csv"),
                columns=columns,
                replicate=replicate,
            ),
        )
        age = wf.feature("age", F.Numeric("age"))
        examples = wf.examples("examples", [age], label=F.Label("education", positive="a"))
        wf.output(wf.train("learner", examples, learners.Linear(epochs=1)))
        compiled = compile_workflow(wf, hasher=ContentHasher())
        rows = _training_rows(compiled)
        assert rows is not None and abs(rows - 2_000 * replicate) <= 20 * replicate
        approx = Approx().resolved(rows).for_compiler(placement="source")
        assert approx["sample"] == sample
        # The exact run's optimizer steps: more epochs over a smaller sample.
        assert approx["epochs_scale"] == pytest.approx(1 / sample)
        assert Approx(epochs_scale=0.5).resolved(rows).for_compiler(placement="train")[
            "epochs_scale"
        ] == pytest.approx(0.5 / sample)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(1_000, 10**9),
    fraction=st.one_of(st.none(), st.floats(1e-5, 1.0)),  # None: sized by the data
    batch=st.integers(1, 4096),
    epochs=st.integers(1, 50),
    placement=st.sampled_from(["source", "train"]),
    drawn=st.floats(0.9, 1.1),
)
def test_training_on_the_sample_takes_the_exact_runs_steps(
    rows: int,
    fraction: float | None,
    batch: int,
    epochs: int,
    placement: str,
    drawn: float,
) -> None:
    """Sample the rows, not the optimisation: at the learner's batch size, the sample's
    epochs take as many optimizer steps as the exact run's epochs over the rows the sample
    stands for (``sampled / fraction``), up to the rounding of the epochs (half an epoch
    of the sample's batches) — a sample smaller than a batch included."""
    approx = Approx(sample=fraction).resolved(rows)
    compiled = train_approx(_declared(), approx.for_compiler(placement=placement))
    assert compiled is not None
    sampled = max(1, round(approx.sample * rows * drawn))  # type: ignore[operator]
    trained = training_epochs(epochs, compiled, rows=sampled, batch_size=batch)
    per_epoch = math.ceil(sampled / batch)
    exact = math.ceil(sampled / approx.sample / batch) * epochs  # type: ignore[operator]
    assert abs(per_epoch * trained - exact) <= per_epoch / 2 + 1e-9 * exact
    assert training_epochs(epochs, {}, rows=sampled, batch_size=batch) == epochs  # exact run


def _declared() -> Any:
    """A train node's declaration, as the compiler hands it to ``train_approx``."""
    from types import SimpleNamespace

    return SimpleNamespace(op=learners.Linear(epochs=1))


@pytest.mark.parametrize(("scale", "expected"), [(1.0, 40), (0.5, 20), (0.01, 1), (1e-3, 1)])
def test_a_users_epochs_scale_scales_the_exact_runs_steps(scale: float, expected: int) -> None:
    settings_ = train_approx(
        _declared(), Approx(sample=0.25, epochs_scale=scale).for_compiler(placement="source")
    )
    assert settings_ is not None
    # 4,000 rows stand for 16,000: 160 batches of 100 an epoch exact, 40 over the sample
    assert training_epochs(10, settings_, rows=4_000, batch_size=100) == expected


@pytest.mark.parametrize("sample", [1.0, 1, 0.5, 1e-6, None])  # None: sized by the data
def test_valid_samples_are_accepted(sample: float) -> None:
    assert Approx(sample=sample).sample == sample


@pytest.mark.parametrize("sample", [0, 0.0, 1.5, -0.1, 2, float("nan"), "0.5"])
def test_bad_sample_names_the_option_the_range_and_the_value(sample: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Approx(sample=sample)
    assert isinstance(info.value, HelixError)
    assert info.value.problems == [f"--sample must be in (0, 1], but got {sample!r}"]
    assert str(info.value) == f"--sample must be in (0, 1], but got {sample!r}"


@pytest.mark.parametrize("sample", [True, False])
def test_a_boolean_is_not_a_sample(sample: bool) -> None:
    with pytest.raises(ConfigError):
        Approx(sample=sample)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", None])
def test_bad_seed_is_a_config_error_not_a_crash_later(seed: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Approx(seed=seed)
    assert info.value.problems == [
        f"the sampling seed must be a non-negative integer, but got {seed!r}"
    ]


@pytest.mark.parametrize("precision", ["fp64", "FP32", "", "float16", None])
def test_bad_precision_lists_the_choices(precision: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Approx(precision=precision)
    (problem,) = info.value.problems
    assert problem == (f"--precision must be one of auto, fp32, bf16, fp16, but got {precision!r}")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_documented_precision_is_accepted(precision: str) -> None:
    assert Approx(precision=precision).precision == precision


@pytest.mark.parametrize("scale", [0, -1, 1.5, 2, "half"])
def test_bad_epochs_scale_names_the_field_and_the_range(scale: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Approx(epochs_scale=scale)
    assert info.value.problems == [f"epochs_scale must be in (0, 1], but got {scale!r}"]


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.01])
def test_valid_epochs_scales_are_accepted(scale: float) -> None:
    assert Approx(epochs_scale=scale).epochs_scale == scale


# QA 27: NaN passed the check (every comparison with it is false) and every run then
# approximated, whatever it would save.
@pytest.mark.parametrize("seconds", [-1, float("nan"), "1", True, None])
def test_bad_min_saving_names_the_option_and_the_range(seconds: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Approx(min_saving_seconds=seconds)
    (problem,) = info.value.problems
    assert problem.startswith("min_saving_seconds (--approx-min-saving) must be a number >= 0")


@pytest.mark.parametrize("seconds", [0, 0.5, 3, float("inf")])
def test_valid_min_savings_are_accepted(seconds: float) -> None:
    assert Approx(min_saving_seconds=seconds).min_saving_seconds == seconds


def test_every_problem_is_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        Approx(sample=0, precision="x", epochs_scale=2)
    assert len(info.value.problems) == 3
    text = str(info.value)
    assert text.startswith("3 errors:")
    for fragment in ("--sample", "--precision", "epochs_scale", "(0, 1]", "'x'"):
        assert fragment in text


def test_settings_are_frozen_and_keyword_only() -> None:
    a = Approx(sample=0.5)
    with pytest.raises(AttributeError):
        a.sample = 0.2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Approx(0.5)  # type: ignore[misc]
    assert Approx(sample=0.5, seed=3) == Approx(sample=0.5, seed=3)
    assert Approx(sample=0.5, seed=3) != Approx(sample=0.5, seed=4)


# ------------------------------------------------------------------------------ for_compiler


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("placement", ["source", "train"])
def test_for_compiler_returns_every_setting_and_the_placement(
    monkeypatch: pytest.MonkeyPatch, placement: str, fast: bool
) -> None:
    monkeypatch.setattr(approx_settings, "cpu_has_fast_bf16", lambda: fast)
    out = Approx(sample=0.25, precision="bf16", epochs_scale=0.5, seed=7).for_compiler(
        placement=placement
    )
    assert out == {
        "sample": 0.25,
        "seed": 7,
        "precision": "bf16",
        "epochs_scale": 0.5 * 4,  # the user's scale on the exact run's steps (1 / 0.25)
        "placement": placement,
        "bf16_fast": fast,
    }
    assert type(out["sample"]) is float and type(out["epochs_scale"]) is float
    assert type(out["seed"]) is int


def test_for_compiler_normalises_integer_settings_to_floats() -> None:
    out = Approx(sample=1, epochs_scale=1).for_compiler(placement="source")
    assert type(out["sample"]) is float and out["sample"] == 1.0
    assert type(out["epochs_scale"]) is float and out["epochs_scale"] == 1.0


@pytest.mark.parametrize("placement", ["examples", "Source", "", "predict"])
def test_for_compiler_rejects_an_unknown_placement(placement: str) -> None:
    with pytest.raises(ValueError, match=r"placement must be one of \('source', 'train'\)"):
        Approx().for_compiler(placement=placement)


def test_for_compiler_requires_the_placement_by_keyword() -> None:
    with pytest.raises(TypeError):
        Approx().for_compiler("source")  # type: ignore[misc]


# ------------------------------------------------------------------------------ CPU probe


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """``cpu_has_fast_bf16`` is cached per process: clear it around the test."""
    cpu_has_fast_bf16.cache_clear()
    yield
    cpu_has_fast_bf16.cache_clear()


def _fake_cpuinfo(monkeypatch: pytest.MonkeyPatch, flags: str | None) -> None:
    real_open = builtins.open

    def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) == "/proc/cpuinfo":
            if flags is None:
                raise FileNotFoundError(path)
            return io.StringIO(f"processor\t: 0\nflags\t\t: {flags}\n")
        return real_open(path, *args, **kwargs)

    # Only the settings module's ``open`` is replaced (a module global shadows the builtin).
    monkeypatch.setattr(approx_settings, "open", fake_open, raising=False)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse2 avx2 avx512f avx512_bf16", True),
        ("fpu sse2 avx2 amx_bf16 amx_tile", True),
        ("fpu sse2 avx2 avx512f avx512_vnni", False),
        ("", False),
        (None, False),  # no /proc/cpuinfo (not Linux): assume no fast bf16
    ],
)
def test_cpu_probe_reads_the_bf16_flags(
    monkeypatch: pytest.MonkeyPatch, fresh_probe: None, flags: str | None, expected: bool
) -> None:
    _fake_cpuinfo(monkeypatch, flags)
    assert cpu_has_fast_bf16() is expected


# ------------------------------------------------------------------------------ auto precision


@pytest.mark.parametrize("learner", ["DNN", "WideDeep"])
def test_auto_uses_bf16_for_networks_only_on_cpus_with_fast_bf16(learner: str) -> None:
    assert resolve_precision("auto", learner, True) == "bf16"
    assert resolve_precision("auto", learner, False) == "fp32"


@pytest.mark.parametrize("fast", [True, False])
def test_auto_keeps_linear_models_in_fp32(fast: bool) -> None:
    assert resolve_precision("auto", "Linear", fast) == "fp32"


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("learner", ["Linear", "DNN", "WideDeep"])
@pytest.mark.parametrize("requested", ["fp32", "bf16", "fp16"])
def test_an_explicit_precision_is_used_as_requested(
    requested: str, learner: str, fast: bool
) -> None:
    assert resolve_precision(requested, learner, fast) == requested


def _train_node(config: Path, approx: Approx, placement: str = "source") -> Any:
    wf = load_config(config).workflow
    compiled = compile_workflow(wf, approx=approx.for_compiler(placement=placement))
    (train,) = [n for n in compiled.nodes if n.role == "train"]
    return train


@pytest.fixture
def dnn_config(tmp_path: Path, census_like: tuple[Path, Path]) -> Path:
    body = TINY_CENSUS.replace(LINEAR, "learners.DNN(epochs=params.epochs, hidden=(4,))")
    assert body != TINY_CENSUS
    return write_config(tmp_path, body, name="dnn.py", train=census_like[0], test=census_like[1])


@pytest.mark.parametrize(("fast", "expected"), [(True, "bf16"), (False, "fp32")])
def test_compiled_network_trains_in_the_precision_auto_resolves_to(
    monkeypatch: pytest.MonkeyPatch, dnn_config: Path, fast: bool, expected: str
) -> None:
    monkeypatch.setattr(approx_settings, "cpu_has_fast_bf16", lambda: fast)
    train = _train_node(dnn_config, Approx(sample=0.5))
    assert train.extra["approx"]["precision"] == expected


@pytest.mark.parametrize("fast", [True, False])
def test_compiled_linear_model_trains_in_fp32_whatever_the_cpu(
    monkeypatch: pytest.MonkeyPatch, tiny_census_config: Path, fast: bool
) -> None:
    monkeypatch.setattr(approx_settings, "cpu_has_fast_bf16", lambda: fast)
    train = _train_node(tiny_census_config, Approx(sample=0.5))
    assert train.extra["approx"]["precision"] == "fp32"


def test_resolved_precision_decides_the_train_fingerprint(
    monkeypatch: pytest.MonkeyPatch, tiny_census_config: Path, dnn_config: Path
) -> None:
    """What is resolved is fingerprinted: a network's model differs by CPU, a linear one not;
    ``auto`` and the precision it resolves to share results."""

    def fingerprint(config: Path, fast: bool, precision: str = "auto") -> str:
        monkeypatch.setattr(approx_settings, "cpu_has_fast_bf16", lambda: fast)
        return _train_node(config, Approx(sample=0.5, precision=precision)).fingerprint

    assert fingerprint(dnn_config, True) != fingerprint(dnn_config, False)
    assert fingerprint(dnn_config, True) == fingerprint(dnn_config, False, "bf16")
    assert fingerprint(tiny_census_config, True) == fingerprint(tiny_census_config, False)
    assert fingerprint(tiny_census_config, True) == fingerprint(tiny_census_config, True, "fp32")
    assert fingerprint(tiny_census_config, True) != fingerprint(tiny_census_config, True, "bf16")
