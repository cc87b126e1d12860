"""Scoring a linear model in numpy: no traced function to build, no eager layer calls.

An approximate run scores its model with one traced function of it
(:func:`helix_tf.components._model_use.predict_scores`, ``traced=True``): ~2 ms a call,
but its first call on a model traces and instantiates it (~0.05–0.1 s), paid by every new
graph's predict node and again by the explanation's scorer. A plain linear model
(:func:`helix_tf.components._model_build.build_model` for ``Linear``: a layer of weights a
feature, ``SumLogits``, and a regression's ``Rescale``) is a sum of lookups: here it is
computed from the layers' weights in float32 numpy, the parts added in the order
``SumLogits`` adds them, then the bias and the rescaling, so its last bits may differ from the traced
function's (the approximate scoring's fingerprint says which: ``APPROX_SCORING`` in
:mod:`helix_tf.compiler._identity`). The same model and inputs give the same bits in
any process. Any other model (a network, another dtype policy, a layer this module does
not know) is scored as before. An exact run's scores are Keras' eager call's to the bit:
numpy scores those only where it computes the same float32 operations in the same order
(``eager_bits``: no bag features), ~10x faster than the eager call's layer by layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["checked", "linear_scorer"]


def linear_scorer(
    model: Any, *, eager_bits: bool = False
) -> Callable[[Mapping[str, Any]], np.ndarray] | None:
    """``score(inputs) -> logits`` (float32 ``[rows, units]``; a regression's on the
    target's scale) of a plain linear ``model`` over ``inputs`` as its named inputs take
    them, or None where the model is not one (see the module).

    ``eager_bits`` (an exact run's scoring): only where the scores are Keras' eager
    call's to the bit, a model without bag features. Its parts are a product of one
    weight (a ``[rows, 1] @ [1, units]`` matmul is one rounded product) or a row of a
    table, added one after the other in the order ``SumLogits`` adds them,
    then the bias and the rescaling: the same float32 operations in the same order
    (tested). A bag's sum over its words is not: TensorFlow reduces a row of one unit in
    vector-wide packets, numpy pairwise, so the eager call scores those."""
    from helix_tf.components import _keras_layers as kl

    keras = kl.keras()
    names = {getattr(tensor, "name", None) for tensor in getattr(model, "inputs", None) or []}
    parts: list[tuple[str, str, Any]] = []
    logit = rescale = None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if getattr(getattr(layer, "dtype_policy", None), "name", None) != "float32":
            return None
        feature = layer.name[2:] if layer.name.startswith("w_") else None
        if isinstance(layer, kl.SumLogits) and logit is None:
            logit = layer
        elif isinstance(layer, kl.Rescale) and rescale is None:
            rescale = layer
        elif feature and isinstance(layer, kl.IndexedWeights):
            kind = "bag" if f"{feature}__idx" in names else "categorical"
            if kind == "bag" and eager_bits:
                return None
            parts.append((kind, feature, layer))
        elif (
            feature
            and type(layer) is keras.layers.Dense
            and not layer.use_bias
            and layer.activation is keras.activations.linear
        ):
            parts.append(("numeric", feature, layer))
        else:
            return None
    if logit is None or not parts:
        return None
    parts = _in_sum_order(logit, parts)
    if parts is None:
        return None

    def score(inputs: Mapping[str, Any]) -> np.ndarray:
        total: np.ndarray | None = None
        for kind, feature, layer in parts:
            part = _part(kind, feature, layer, inputs)
            total = part if total is None else total + part
        assert total is not None
        total = total + np.asarray(logit.bias.numpy(), np.float32)
        if rescale is not None:
            total = total * np.float32(rescale.std) + np.float32(rescale.mean)
        return total

    return score


def _in_sum_order(
    logit: Any, parts: list[tuple[str, str, Any]]
) -> list[tuple[str, str, Any]] | None:
    """``parts`` in the order ``SumLogits`` adds its inputs (its call's arguments), or
    None where that order cannot be read or is not one part each."""
    try:
        tensors = logit._inbound_nodes[0].arguments.keras_tensors
        order = [tensor._keras_history.operation for tensor in tensors]
    except (AttributeError, IndexError):
        return None
    by_layer = {id(layer): part for part in parts for layer in [part[2]]}
    ordered = [by_layer.get(id(layer)) for layer in order]
    if len(ordered) != len(parts) or any(part is None for part in ordered):
        return None
    return [part for part in ordered if part is not None]


def _part(kind: str, feature: str, layer: Any, inputs: Mapping[str, Any]) -> np.ndarray:
    """One feature's logits ``[rows, units]`` (float32)."""
    if kind == "numeric":
        kernel = np.asarray(layer.kernel.numpy(), np.float32)  # [1, units]
        values = np.asarray(inputs[feature], np.float32)
        return values.reshape(len(values), 1) * kernel
    table = np.asarray(layer.table.numpy(), np.float32)  # [size, units]
    if kind == "categorical":
        idx = np.asarray(inputs[feature]).reshape(-1)
        return table[checked(feature, idx, len(table))]
    idx = np.asarray(inputs[f"{feature}__idx"])
    values = np.asarray(inputs[f"{feature}__val"], np.float32)
    picked = table[checked(feature, idx, len(table))] * values[..., np.newaxis]
    return picked.sum(axis=1, dtype=np.float32)


def checked(feature: str, idx: np.ndarray, size: int) -> np.ndarray:
    """``idx`` as indices into a table of ``size`` rows; an index outside it is an error
    naming the feature (Keras' lookup fails on it; numpy would wrap a negative one, and
    one table of every feature's weights would read another feature's)."""
    idx = idx.astype(np.intp, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx[(idx < 0) | (idx >= size)][0]
        raise ValueError(
            f"feature {feature!r}: index {int(bad)} is outside its {size} weights "
            "(the examples do not match the model's features)"
        )
    return idx
