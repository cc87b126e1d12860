"""L1/L2 penalty strengths as variables, so that a penalty edit reuses a traced trainer.

Keras' regularizers and FTRL's update read their strengths as Python floats, which a
traced train step bakes in as constants: a trainer traced for ``l2=1e-3`` could not
train ``l2=1e-2``, and every ``l1``/``l2`` edit built and traced a new model (~1 s).
Here a model's strengths are two float32 variables (:class:`Strengths`), read by its
regularizers (:func:`regularizer`) and by FTRL's update (:func:`ftrl`); a reused
trainer assigns the new values before its ``fit`` (:meth:`Strengths.assign`).

**The same ops as Keras', in the same order.** L1L2 is ``0 + l1·Σ|w| + l2·Σw²``,
each term only when its strength is not 0; L2 (a DNN's hidden layers) is ``l2·Σw²``;
FTRL's clip and quadratic are Keras' own code reading a variable instead of a float.
Which terms exist still shapes the graph, so :func:`graph_shape` (part of
:func:`helix_tf.components.trainers.graph_key`) keeps whether each strength is 0;
their values do not. A saved model's config holds the strengths as floats.

Keras is imported by the caller (:mod:`helix_tf.components.keras_models`), which
registers the classes here once (:func:`register`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Strengths", "ftrl", "graph_shape", "register", "regularizer"]

_classes: dict[str, Any] = {}


def graph_shape(learner: Any) -> list[bool]:
    """What of ``learner``'s penalties shapes its graph: whether ``l1`` and ``l2`` are 0."""
    return [float(learner.l1) != 0.0, float(learner.l2) != 0.0]


class Strengths:
    """A model's ``l1`` and ``l2`` as two float32 variables (set before each ``fit``)."""

    def __init__(self, l1: float, l2: float) -> None:
        import tensorflow as tf

        self.used = (float(l1) != 0.0, float(l2) != 0.0)
        self.l1 = tf.Variable(float(l1), dtype=tf.float32, trainable=False, name="l1")
        self.l2 = tf.Variable(float(l2), dtype=tf.float32, trainable=False, name="l2")

    @classmethod
    def of(cls, learner: Any) -> Strengths:
        return cls(learner.l1, learner.l2)

    def assign(self, l1: float, l2: float) -> None:
        """New strengths for the next ``fit``; which of them are 0 must not change."""
        if (float(l1) != 0.0, float(l2) != 0.0) != self.used:
            raise ValueError(
                f"l1={l1!r}, l2={l2!r} switch a penalty on or off, which changes the graph "
                f"(traced with l1 {'on' if self.used[0] else 'off'}, l2 "
                f"{'on' if self.used[1] else 'off'}); build a new trainer for them"
            )
        self.l1.assign(float(l1))
        self.l2.assign(float(l2))

    def values(self) -> tuple[float, float]:
        return float(self.l1.numpy()), float(self.l2.numpy())


def register(keras: Any) -> None:
    """Define and register the regularizer and optimizer classes (once per process)."""
    if not _classes:
        _classes["Penalty"] = _penalty_class(keras)
        _classes["Ftrl"] = _ftrl_class(keras)


def regularizer(learner: Any, strengths: Strengths, form: str = "l1l2") -> Any:
    """The kernel regularizer of ``learner`` reading ``strengths`` (None: no penalty).

    ``form`` "l1l2" is Keras' ``L1L2`` (linear weights), "l2" its ``L2`` (hidden layers).
    """
    if form == "l2":
        return _classes["Penalty"](form="l2", strengths=strengths) if strengths.used[1] else None
    if not any(strengths.used):
        return None
    return _classes["Penalty"](form="l1l2", strengths=strengths)


def ftrl(learning_rate: float, strengths: Strengths) -> Any:
    """Keras' FTRL optimizer with its L1/L2 strengths read from ``strengths``."""
    return _classes["Ftrl"](learning_rate, strengths=strengths)


def _penalty_class(keras: Any) -> Any:
    ops = keras.ops

    @keras.saving.register_keras_serializable(package="helix_tf", name="Penalty")
    class _Penalty(keras.regularizers.Regularizer):
        """Keras' ``L1L2`` ("l1l2") or ``L2`` ("l2") over variable strengths."""

        def __init__(
            self,
            l1: float = 0.0,
            l2: float = 0.0,
            form: str = "l1l2",
            strengths: Strengths | None = None,
        ) -> None:
            self.form = form
            self.strengths = strengths if strengths is not None else Strengths(l1, l2)

        def __call__(self, x: Any) -> Any:
            s = self.strengths
            if self.form == "l2":
                return ops.cast(s.l2, dtype=x.dtype) * ops.sum(ops.square(x))
            regularization = ops.convert_to_tensor(0.0, dtype=x.dtype)
            if s.used[0]:
                regularization += ops.cast(s.l1, dtype=x.dtype) * ops.sum(ops.absolute(x))
            if s.used[1]:
                regularization += ops.cast(s.l2, dtype=x.dtype) * ops.sum(ops.square(x))
            return regularization

        def get_config(self) -> dict[str, Any]:
            l1, l2 = self.strengths.values()
            return {"l1": l1, "l2": l2, "form": self.form}

    return _Penalty


def _ftrl_class(keras: Any) -> Any:
    @keras.saving.register_keras_serializable(package="helix_tf", name="Ftrl")
    class _Ftrl(keras.optimizers.Ftrl):  # type: ignore[misc,name-defined]
        """Keras' FTRL; its update reads ``l1``/``l2`` from variables, not floats."""

        def __init__(
            self, learning_rate: Any = 0.001, strengths: Strengths | None = None, **kwargs: Any
        ) -> None:
            strengths = (
                strengths
                if strengths is not None
                else Strengths(
                    kwargs.pop("l1_regularization_strength", 0.0),
                    kwargs.pop("l2_regularization_strength", 0.0),
                )
            )
            l1, l2 = strengths.values()
            kwargs.setdefault("name", "ftrl")  # Keras' own name (scopes, not the class')
            super().__init__(
                learning_rate,
                l1_regularization_strength=l1,
                l2_regularization_strength=l2,
                **kwargs,
            )
            self.strengths = strengths
            self.l1_regularization_strength = strengths.l1
            self.l2_regularization_strength = strengths.l2

        def get_config(self) -> dict[str, Any]:
            config: dict[str, Any] = super().get_config()
            config["l1_regularization_strength"], config["l2_regularization_strength"] = (
                self.strengths.values()
            )
            return config

    return _Ftrl
