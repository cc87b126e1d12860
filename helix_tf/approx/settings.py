"""What an approximate run changes: sample fraction, precision, epochs — and where.

An approximate run (``--approx``) is the same workflow made cheaper so a person
sees the *trend* of a change fast. Its settings become part of the fingerprints
of the nodes they affect, so approximate and exact results never mix.

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
from typing import Any

from helix_tf.errors import ConfigError
from helix_tf.roles import Role

__all__ = [
    "AUTO_SAMPLE_ROWS",
    "DEFAULT_SAMPLE",
    "PRECISIONS",
    "Approx",
    "auto_sample",
    "cpu_has_fast_bf16",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: The sample of an approximate run that names none: this share of the training rows...
DEFAULT_SAMPLE = 0.1
#: ... or fewer, so that about this many rows are kept at most (large data: ×100 census
#: keeps 1%, as many rows as ×10 keeps with 10%).
AUTO_SAMPLE_ROWS = 40_000
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
    #: Set by :meth:`resolved` (not a user setting): the epochs multiplier that gives a
    #: sample sized below :data:`DEFAULT_SAMPLE` the optimizer steps of a
    #: :data:`DEFAULT_SAMPLE` sample (``DEFAULT_SAMPLE / sample``; 1 otherwise).
    sample_epochs: float = dataclasses.field(default=1.0, init=False, repr=False)

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
            or self.min_saving_seconds < 0
        ):
            problems.append(f"min_saving_seconds must be >= 0, but got {self.min_saving_seconds!r}")
        if problems:
            raise ConfigError(problems)

    def resolved(self, rows: int | None) -> Approx:
        """These settings with the sample fraction decided: the one given, else
        :func:`auto_sample` of ``rows`` (the training rows, estimated; ``None``: unknown)."""
        if self.sample is not None:
            return self
        sample = auto_sample(rows)
        out = dataclasses.replace(self, sample=sample)
        object.__setattr__(out, "sample_epochs", DEFAULT_SAMPLE / sample)  # frozen: set once
        return out

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
    that moves a little keeps the fraction, and so every fingerprint). A smaller
    sample samples the rows, not the optimisation: :meth:`Approx.resolved` trains it
    for more epochs, as many optimizer steps as a :data:`DEFAULT_SAMPLE` sample takes
    (the rows of large data repeat what a smaller share holds; a learner whose result
    depends on how many steps it takes, FTRL at a low learning rate, would be biased
    further low by fewer steps).

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
