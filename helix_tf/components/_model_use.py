"""Applying and inspecting a trained Keras model: save, load, score, explain, weights.

The half of :mod:`helix_tf.components.keras_models` that uses a model once trained
(that module re-exports every name here, and callers go through it). A
:class:`helix_tf.components.trainers.RemoteModel` (a served run's model, kept by the
server's trainer) is answered by the process keeping it, with the same bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from helix_tf.components._keras_layers import keras as _k
from helix_tf.components._linear_scores import linear_scorer
from helix_tf.components.learners import DNN, Learner, WideDeep

__all__ = [
    "feature_weights",
    "load_model",
    "model_importance",
    "predict_scores",
    "save_model",
    "zero_weight_features",
]


def save_model(model: Any, path: str) -> None:
    """Write ``model`` as a ``.keras`` file (a :class:`trainers.RemoteModel`: written by
    the process keeping it).

    The file holds the model, never its training state: a model still compiled (the
    one a plain process trained, not copied) is written as the plain model over the
    same layers, without its compile configuration and optimizer variables, so the
    file is what a served run, a regression's rescaled model or a kept trainer's copy
    writes (QA 24: a local run's file alone held Adam's 20 slots and its loss).
    """
    from helix_tf.components import trainers

    if isinstance(model, trainers.RemoteModel):  # asking it for Keras attributes builds it here
        model.save(path)
        return
    if getattr(model, "compiled", False) is True:
        keras = _k()
        model = keras.Model(inputs=model.input, outputs=model.output, name=model.name)
    model.save(path)


def load_model(path: str) -> Any:
    keras = _k()
    return keras.saving.load_model(path, compile=False)


def predict_scores(
    model: Any, x: Mapping[str, np.ndarray], task: str = "binary", *, traced: bool = False
) -> np.ndarray:
    """Probabilities of the positive class (binary), of every class (multiclass: shape
    (n, classes)), or predicted values on the target's scale (regression).

    ``traced`` (an approximate run's model, issue 9): score with one traced function of
    the model (:func:`_traced_call`) instead of Keras' eager call, a plain linear model
    in numpy (:mod:`._linear_scores`: no function to trace). An exact run scores a plain
    linear model without bag features in numpy too: the eager call's bits, ~10x faster.
    A
    :class:`trainers.RemoteModel` is scored by the process keeping it (the same bits)."""
    from helix_tf.components import trainers

    if isinstance(model, trainers.RemoteModel):
        return model.predict(x, task, traced=traced)
    # In large chunks: an exact run calls the model eagerly (no predict function traced).
    n = len(next(iter(x.values()))) if x else 0
    chunk = 65_536
    if traced and n:  # a linear model in numpy (_linear_scores), else one traced function
        call = linear_scorer(model) or _traced_call(model, x)
    else:  # a linear model without bags in numpy: the eager call's bits (_linear_scores)
        call = linear_scorer(model, eager_bits=True) or _eager_call(model)
    parts = [
        np.asarray(call({k: v[i : i + chunk] for k, v in x.items()})) for i in range(0, n, chunk)
    ]
    logits = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
    if task == "multiclass":
        logits = logits.reshape(n, -1) if n else np.zeros((0, int(model.outputs[0].shape[-1])))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if task == "regression":
        return logits.reshape(-1)
    return (1.0 / (1.0 + np.exp(-logits.reshape(-1)))).astype(np.float64)


def model_importance(
    model: Any,
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    features: Sequence[Mapping[str, Any]],
    *,
    task: str,
    transform: str | None = None,
    traced: bool = False,
    **params: Any,
) -> dict[str, Any]:
    """:func:`helix_tf.components.explain.permutation_importance` of a Keras model scored as the predict node scores
    it (probabilities, class probabilities, values on the label's original scale;
    ``traced`` as for :func:`predict_scores`); ``params``: its ``repeats``, ``seed``,
    ``scoring``, ``zero``.

    A :class:`helix_tf.components.trainers.RemoteModel` (a served run's) computes it in
    the process that keeps the model: one request instead of one per scoring.
    """
    from helix_tf.components import explain, trainers
    from helix_tf.components.features._label import inverse_transform

    if isinstance(model, trainers.RemoteModel):
        return model.importance(
            x, y, features, task=task, transform=transform, traced=traced, **params
        )

    def score(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        scores = predict_scores(model, inputs, task, traced=traced)
        return inverse_transform(transform, scores) if task == "regression" else scores

    return explain.permutation_importance(score, x, y, features, **params)


def _eager_call(model: Any) -> Any:
    return lambda inputs: model(inputs, training=False)


def _traced_call(model: Any, x: Mapping[str, np.ndarray]) -> Any:
    """``model``'s inference as one traced graph function, kept on the model per input
    signature (any number of rows; a bag's width as the model declares it: open).

    An eager call of a Keras model runs each layer from Python: ~15–25 ms of CPU per call
    here whatever its rows (a census linear model, 10k rows), most of a permutation
    importance (one call per feature) and of scoring a test split; the traced function
    takes ~2 ms. Its first call traces it (~0.1 s, once per model object: a served run's
    trainer reuses its models). An approximate run's predict and explain nodes score
    this way (their fingerprints say so: ``"scoring"``, :mod:`helix_tf.compiler._identity`);
    an exact run keeps the eager call, bit for bit what it computed before (Grappler may
    rewrite a traced graph, e.g. fuse a dense layer's ops, so its last bits are not
    promised to be the eager call's).
    """
    import tensorflow as tf

    from helix_tf.components._light_fit import input_shapes

    declared = input_shapes(model)

    def spec(name: str, a: np.ndarray) -> Any:
        rest = declared.get(name, a.shape)[1:]
        rest = rest if len(rest) == a.ndim - 1 else a.shape[1:]
        return tf.TensorSpec([None, *rest], tf.as_dtype(a.dtype))

    signature = {name: spec(name, np.asarray(a)) for name, a in x.items()}
    key = tuple(sorted((name, str(s)) for name, s in signature.items()))
    kept = model.__dict__.get("_helix_scorers")
    if kept is None:  # not a Keras-tracked attribute: never saved with the model
        kept = {}
        object.__setattr__(model, "_helix_scorers", kept)
    if key not in kept:
        kept[key] = tf.function(
            lambda inputs: model(inputs, training=False), input_signature=[signature]
        ).get_concrete_function()
    function = kept[key]
    return lambda inputs: function({k: tf.convert_to_tensor(v) for k, v in inputs.items()})


def zero_weight_features(
    model: Any, learner: Learner, features: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Which features contribute nothing: every weight that reads them is exactly 0.

    Only linear parts can prove it here (a linear model, the wide part of wide &
    deep); a feature that a deep part reads is never reported. With several outputs
    (multiclass), a feature is zero when its weights are zero for every class.
    Returns ``{"zero": {feature: n_weights}, "weights": total, "zero_weights": count}``.
    """
    weights = feature_weights(model, features)
    deep: set[str] = set()
    if isinstance(learner, WideDeep):
        deep = set(learner.features_for("deep", [f["name"] for f in features]))
    elif isinstance(learner, DNN):
        deep = {f["name"] for f in features}
    zero = {}
    total = zeros = 0
    for name, w in weights.items():
        total += w.size
        nz = int((w == 0).sum())
        zeros += nz
        if nz == w.size and name not in deep:
            zero[name] = int(w.size)
    return {"zero": zero, "weights": int(total), "zero_weights": int(zeros)}


def feature_weights(model: Any, features: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The linear (wide) weights of each feature, where the model has them.

    A regression model trained on the standardised target (its ``rescale`` layer) has
    its weights scaled back, so they are in the target's units (transformed, if the
    label has a transform): what one unit of the feature adds to the prediction.
    """
    from helix_tf.components import trainers

    if isinstance(model, trainers.RemoteModel):
        return model.feature_weights(features)
    out = {}
    names = {layer.name: layer for layer in model.layers}
    rescale = names.get("rescale")
    scale = float(getattr(rescale, "std", 1.0)) if rescale is not None else 1.0
    for spec in features:
        layer = names.get(f"w_{spec['name']}")
        if layer is not None and layer.weights:
            w = np.asarray(layer.weights[0].numpy())
            out[spec["name"]] = w * scale if scale != 1.0 else w
    return out
