"""What an approximate run changes: sample fraction, precision, epochs — and where.

An approximate run (``--approx``) is the same workflow made cheaper so a person
sees the *trend* of a change fast. Its settings become part of the fingerprints
of the nodes they affect, so approximate and exact results never mix.

Steps ("sample the rows, not the optimisation"): a learner trains on the sample
with the exact run's batch size and as many optimizer steps as the exact run takes
(its epochs over the sample are the exact epochs divided by the sample fraction,
:attr:`Approx.sample_epochs`), and stops sooner once its training loss falls by less
than the sample can resolve: a window's mean loss (:data:`PLATEAU_SHARE` of the planned
epochs, 2 to :data:`PLATEAU_EPOCHS`) down against the window before by less than
:data:`PLATEAU_ERRORS` standard errors of a mean over the sample's rows, ``1 /
sqrt(rows)`` of the loss (:func:`helix_tf.components._light_fit.plateau_rule`: smaller
improvements fit the sample, not the population). A learner whose result depends on
how many steps it takes (FTRL's per-coordinate rates shrink with every step) then
trains towards where the exact run lands: on census ×100 a 1% sample at the steps of
a 10% one gave FTRL the exact ×10 result (accuracy 0.8316 against 0.8474 exact), and
ranked it below L2 1e-2; the 1% sample (32.7k rows, tolerance 0.55% of the loss)
stops FTRL after ~100 of its 490 epochs at 0.839 / AUC 0.886 (the full 490: 0.8477 /
0.898), still above L2 1e-2 (0.829 / 0.884). One that converges early (Adam here)
stops after ~20–30 sample epochs.

Placement ("placed where it saves most"): when the exact examples are already
stored, the sample is drawn from them at training time (no preprocessing at
all); on a cold store it is drawn at the source, so preprocessing also shrinks.

Precision ``auto`` resolves per learner: bfloat16 mixed precision only for
networks (DNN, wide & deep) on CPUs with native bfloat16 (AVX512-BF16/AMX),
where it measured ~22% faster per epoch for a 64-unit MLP; never for linear
models (no faster) and never float16 on a CPU (~5x slower here). float16 is for
GPUs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

from helix_tf.errors import ConfigError
from helix_tf.roles import Role

__all__ = [
    "AUTO_SAMPLE_ROWS",
    "DEFAULT_SAMPLE",
    "PLATEAU_EPOCHS",
    "PLATEAU_ERRORS",
    "PLATEAU_SHARE",
    "PRECISIONS",
    "Approx",
    "auto_sample",
    "cpu_has_fast_bf16",
    "resolve_precision",
    "training_epochs",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: The sample of an approximate run that names none: this share of the training rows...
DEFAULT_SAMPLE = 0.1
#: ... or fewer, so that about this many rows are kept at most (large data: ×100 census
#: keeps 1%, as many rows as ×10 keeps with 10%).
AUTO_SAMPLE_ROWS = 40_000
#: A learner trained on a sample stops before the exact run's steps once the mean of its
#: training loss over a window of epochs fell by less than this many standard errors of a
#: mean over the sample's rows (``1 / sqrt(rows)`` of the loss) against the window before:
#: the sampling error of the sample's mean loss, what more optimisation cannot resolve.
PLATEAU_ERRORS = 1.0
#: ... a window being this share of the planned epochs ...
PLATEAU_SHARE = 0.1
#: ... but at most this many epochs (and at least 2).
PLATEAU_EPOCHS = 10
#: Where a sample may be placed: at the node of this role (the source, or training).
PLACEMENTS = (Role.SOURCE, Role.TRAIN)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Approx:
    """Settings of an approximate run.

    Parameters
    ----------
    sample:
        Fraction of training rows kept (by a seeded hash of each row's id); ``None``
        (the default): sized by the data (:meth:`resolved`).
    precision:
        ``auto`` (per learner, see the module docs), ``fp32``, ``bf16`` or ``fp16``.
    epochs_scale:
        Multiplier on every learner's epochs (at least one epoch is kept).
    seed:
        Seed of the row hash: the same rows are kept wherever the sample is applied.
    min_saving_seconds:
        An approximate run that, by the last exact measurements, would save less than
        this much work runs exact instead and says so (tiny data: a sample saves
        nothing worth its imprecision). 0 always approximates.
    """

    sample: float | None = None
    precision: str = "auto"
    epochs_scale: float = 1.0
    seed: int = 0
    min_saving_seconds: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.sample is not None and (
            isinstance(self.sample, bool)
            or not isinstance(self.sample, int | float)
            or not 0 < self.sample <= 1
        ):
            problems.append(f"--sample must be in (0, 1], but got {self.sample!r}")
        if self.precision not in PRECISIONS:
            problems.append(
                f"--precision must be one of {', '.join(PRECISIONS)}, but got {self.precision!r}"
            )
        if not isinstance(self.epochs_scale, int | float) or not 0 < self.epochs_scale <= 1:
            problems.append(f"epochs_scale must be in (0, 1], but got {self.epochs_scale!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(
                f"the sampling seed must be a non-negative integer, but got {self.seed!r}"
            )
        if (
            isinstance(self.min_saving_seconds, bool)
            or not isinstance(self.min_saving_seconds, int | float)
            or not self.min_saving_seconds >= 0  # NaN too: no saving compares with it
        ):
            problems.append(
                "min_saving_seconds (--approx-min-saving) must be a number >= 0 (0: always "
                f"approximate), but got {self.min_saving_seconds!r}"
            )
        if problems:
            raise ConfigError(problems)

    @property
    def sample_epochs(self) -> float:
        """The epochs multiplier that gives training on the sample the exact run's
        optimizer steps at its batch size: ``1 / sample`` (an unresolved sample is
        :data:`DEFAULT_SAMPLE`). Not a user setting; ``epochs_scale`` multiplies it.

        >>> Approx(sample=0.01).sample_epochs, Approx(sample=1).sample_epochs
        (100.0, 1.0)
        """
        return 1.0 / float(self.sample if self.sample is not None else DEFAULT_SAMPLE)

    def resolved(self, rows: int | None) -> Approx:
        """These settings with the sample fraction decided: the one given, else
        :func:`auto_sample` of ``rows`` (the training rows, estimated; ``None``: unknown)."""
        if self.sample is not None:
            return self
        return dataclasses.replace(self, sample=auto_sample(rows))

    def for_compiler(self, *, placement: str) -> dict[str, Any]:
        """The dict the compiler folds into fingerprints (see compile_workflow); an
        unresolved sample is :data:`DEFAULT_SAMPLE`."""
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        return {
            "sample": float(self.resolved(None).sample),  # type: ignore[arg-type]
            "seed": int(self.seed),
            "precision": self.precision,
            "epochs_scale": float(self.epochs_scale) * float(self.sample_epochs),
            "placement": placement,
            "bf16_fast": cpu_has_fast_bf16(),
        }


def auto_sample(rows: int | None) -> float:
    """The sample fraction of an approximate run over ``rows`` training rows.

    :data:`DEFAULT_SAMPLE`, or less where that would keep more than
    :data:`AUTO_SAMPLE_ROWS` rows, rounded down to one significant digit (an estimate
    that moves a little keeps the fraction, and so every fingerprint). Whatever the
    fraction, training on it takes the exact run's steps (:attr:`Approx.sample_epochs`,
    the module docs).

    >>> auto_sample(None), auto_sample(32_561), auto_sample(325_610), auto_sample(3_256_100)
    (0.1, 0.1, 0.1, 0.01)
    >>> auto_sample(1_000_000), auto_sample(10**9)
    (0.04, 4e-05)
    """
    if not rows or rows * DEFAULT_SAMPLE <= AUTO_SAMPLE_ROWS:
        return DEFAULT_SAMPLE
    fraction = AUTO_SAMPLE_ROWS / rows
    exponent = math.floor(math.log10(fraction))
    digit = math.floor(fraction / 10.0**exponent + 1e-9)
    return float(f"{digit}e{exponent}")


def training_epochs(
    epochs: int, approx: Mapping[str, Any], rows: int | None = None, batch_size: int = 1
) -> int:
    """The epochs a learner declaring ``epochs`` trains under a train node's compiled
    approximate settings ``approx`` (empty: an exact run, its own epochs).

    The epochs times ``epochs_scale`` (the exact run's steps over the sample,
    :attr:`Approx.sample_epochs`, times a user's ``--approx-epochs``), rounded, one at
    least. Given the sample's ``rows`` and the learner's ``batch_size`` (and the
    ``fraction`` in ``approx``), the steps are matched by batches, not rows: the exact
    run over the ``rows / fraction`` rows the sample stands for takes
    ``ceil(rows / fraction / batch_size)`` steps an epoch, the sample
    ``ceil(rows / batch_size)`` (a sample smaller than a batch takes one step an epoch,
    not ``1 / fraction`` times fewer).

    >>> training_epochs(5, {}), training_epochs(5, {"epochs_scale": 100.0})
    (5, 500)
    >>> training_epochs(5, {"epochs_scale": 0.01})
    1
    >>> big = {"epochs_scale": 100.0, "fraction": 0.01}
    >>> training_epochs(5, big, rows=32_101, batch_size=1024)  # 3,135 batches, not 3,210
    490
    >>> training_epochs(5, {"epochs_scale": 1000.0, "fraction": 0.001}, 32, 1024)
    160
    """
    scale = float(approx.get("epochs_scale", 1.0))
    fraction = approx.get("fraction")
    if not rows or not fraction:
        return max(1, round(int(epochs) * scale))
    exact_batches = math.ceil(rows / float(fraction) / batch_size)
    return max(
        1,
        round(int(epochs) * scale * float(fraction) * exact_batches / math.ceil(rows / batch_size)),
    )


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str, learner_kind: str, bf16_fast: bool) -> str:
    """The precision a train node uses: ``fp32``, ``bf16`` or ``fp16``.

    >>> resolve_precision("auto", "Linear", True)
    'fp32'
    >>> resolve_precision("auto", "DNN", True)
    'bf16'
    >>> resolve_precision("auto", "DNN", False)
    'fp32'
    """
    if requested != "auto":
        return requested
    if learner_kind in ("DNN", "WideDeep") and bf16_fast:
        return "bf16"
    return "fp32"
