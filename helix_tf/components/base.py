"""The base of every operator spec: frozen parameters, validation, overrides.

An operator *spec* is pure data (a frozen dataclass): the compiler reads its
parameters, fingerprints them and checks them without importing TensorFlow or
Beam. The code that runs an operator (its executor) lives beside it and imports
heavy libraries lazily, inside functions.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, ClassVar

from helix_tf.errors import ConfigError

__all__ = ["Operator", "did_you_mean"]


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest candidate, or ''."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Operator:
    """Base class of operator specs.

    Subclasses are frozen dataclasses whose fields are the operator's
    parameters. ``VERSION`` is the implementation version: bump it whenever the
    executor's output for the same parameters changes, so stored results of the
    old implementation are never reused.
    """

    KIND: ClassVar[str] = "operator"
    VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        problems = self.validate()
        if problems:
            raise ConfigError([f"{type(self).__name__}: {p}" for p in problems])

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        return []

    @property
    def op_name(self) -> str:
        """The operator's type name as users write it, e.g. ``Vocabulary``."""
        return type(self).__name__

    def params(self) -> dict[str, Any]:
        """The parameters as a plain dict, in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def with_params(self, **overrides: Any) -> Operator:
        """Return a copy with some parameters replaced; unknown names are errors."""
        known = set(self.params())
        unknown = [k for k in overrides if k not in known]
        if unknown:
            raise ConfigError(
                [
                    f"{self.op_name} has no parameter {k!r}{did_you_mean(k, known)}; "
                    f"its parameters are: {', '.join(sorted(known))}"
                    for k in unknown
                ]
            )
        return dataclasses.replace(self, **overrides)
