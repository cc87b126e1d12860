"""What a run reports while it goes: typed progress events.

``helix_tf.run(progress=callback)`` calls ``callback`` with one of these frozen
dataclasses at each step (the plan made, preprocessing started, a training epoch
done, a node finished, a retraining started). The CLI's printer
(:class:`helix_tf.rendering.ProgressPrinter`) renders them; a tool can match on
their type::

    def progress(event: ProgressEvent) -> None:
        if isinstance(event, NodeFinished):
            print(event.node, event.state, event.seconds)

Each event has a JSON form, written and read explicitly: :meth:`ProgressEvent.to_dict`
(``{"event": "node", "node": ..., ...}``) and :func:`event_from_dict`, for a tool
that sends events across a process boundary.

Examples
--------
>>> e = NodeFinished(node="learner", state="compute", seconds=1.5, rows=200)
>>> e.to_dict()["event"], event_from_dict(e.to_dict()) == e
('node', True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from helix_tf.errors import HelixError
from helix_tf.results import NodeDecision
from helix_tf.roles import state_counts

__all__ = [
    "EpochFinished",
    "NodeFinished",
    "Planned",
    "PreprocessingStarted",
    "ProgressCallback",
    "ProgressEvent",
    "RetrainingStarted",
    "SampleMoved",
    "TrainingStarted",
    "event_from_dict",
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProgressEvent:
    """One step of a run, reported as it happens (see the subclasses)."""

    #: The ``"event"`` key of the JSON form.
    EVENT: ClassVar[str] = ""
    #: For phase events: the ``"stage"`` key of the JSON form.
    STAGE: ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data: ``{"event": ..., <fields>}``."""
        out: dict[str, Any] = {"event": self.EVENT}
        if self.STAGE is not None:
            out["stage"] = self.STAGE
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Planned(ProgressEvent):
    """The plan the run is about to execute (made again if stored entries were lost)."""

    EVENT: ClassVar[str] = "plan"
    decisions: tuple[NodeDecision, ...]

    def counts(self) -> dict[str, int]:
        """How many nodes the plan computes, loads and prunes."""
        return state_counts(d.state for d in self.decisions)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessingStarted(ProgressEvent):
    """Preprocessing of ``nodes`` starts: in one Beam pipeline, or in this process."""

    EVENT: ClassVar[str] = "stage"
    STAGE: ClassVar[str | None] = "preprocess"
    nodes: tuple[str, ...]
    #: The Beam runner (``"direct"``, ``"dataflow"`` ...), or ``"in-process"`` for
    #: preprocessing without a pipeline (a local run's, without Beam options).
    runner: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TrainingStarted(ProgressEvent):
    """A train node starts training on ``rows`` rows."""

    EVENT: ClassVar[str] = "stage"
    STAGE: ClassVar[str | None] = "train"
    node: str
    rows: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EpochFinished(ProgressEvent):
    """A training epoch is done: its loss, and the seconds still expected."""

    EVENT: ClassVar[str] = "epoch"
    node: str
    epoch: int
    epochs: int
    loss: float
    eta: float | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeFinished(ProgressEvent):
    """A node is computed; ``seconds`` is the time the run's node table shows for it."""

    EVENT: ClassVar[str] = "node"
    node: str
    state: str
    seconds: float
    #: Of ``seconds``, the part outside the computation (importing TensorFlow).
    other_seconds: float = 0.0
    rows: int | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetrainingStarted(ProgressEvent):
    """``retrain_without_zero``: training again without these features, per examples node."""

    EVENT: ClassVar[str] = "retrain"
    drop: dict[str, tuple[str, ...]]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SampleMoved(ProgressEvent):
    """An approximate run's sample drawn at the source failed a data check (``reason``:
    what was found): the run starts again with the sample drawn at training."""

    EVENT: ClassVar[str] = "sample_moved"
    reason: str


#: What ``helix_tf.run(progress=...)`` calls.
ProgressCallback = Callable[[ProgressEvent], None]

_TYPES: dict[tuple[str, str | None], type[ProgressEvent]] = {
    (t.EVENT, t.STAGE): t
    for t in (
        Planned,
        PreprocessingStarted,
        TrainingStarted,
        EpochFinished,
        NodeFinished,
        RetrainingStarted,
        SampleMoved,
    )
}


def event_from_dict(data: Mapping[str, Any]) -> ProgressEvent:
    """The event whose :meth:`~ProgressEvent.to_dict` form is ``data``.

    Raises
    ------
    HelixError
        When ``data`` names no known event (the message lists those there are).
    """
    key = (str(data.get("event")), data.get("stage"))
    cls = _TYPES.get(key)
    if cls is None:
        known = ", ".join(sorted(f"{e}/{s}" if s else e for e, s in _TYPES))
        raise HelixError(f"unknown progress event {key}; the known events are: {known}")
    values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
    if cls is Planned:
        values["decisions"] = tuple(
            NodeDecision(**{**d, "changed": tuple(d.get("changed", ()))}) for d in data["decisions"]
        )
    elif cls is PreprocessingStarted:
        values["nodes"] = tuple(data["nodes"])
    elif cls is RetrainingStarted:
        values["drop"] = {k: tuple(v) for k, v in data["drop"].items()}
    return cls(**values)


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready data: tuples as lists, nested results as dicts."""
    if isinstance(value, NodeDecision):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
