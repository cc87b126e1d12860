"""Evaluation reducers: binary classifiers (accuracy, AUC, precision, recall and friends),
multiclass classifiers (``_multiclass``) and regressions (``_regression``).

Each metric declares the label tasks it fits (``TASKS``); the compiler rejects a
metric that does not fit the workflow's label (:func:`metric_problem`), and the
engine evaluates non-binary predictions through :func:`evaluate_task`.

A metric is a frozen spec (an :class:`~helix_tf.components.base.Operator`) whose
``compute`` reduces labels and predicted probabilities to named numbers, and whose
``bootstrap`` puts a percentile interval around each of them. Everything is plain
numpy: metrics run in the Python reducer stage of a plan, never in TensorFlow or Beam.

Conventions shared by every metric:

- ``y_true`` holds 0/1 labels (bools and 0.0/1.0 floats are accepted); ``y_score``
  holds the predicted probability of the positive class, in [0, 1]. A column
  vector of shape ``(n, 1)``, as Keras ``predict`` returns, is flattened.
- A score ``>= threshold`` predicts the positive class (compared in the scores' own
  precision, so a float32 score written as the threshold counts as positive).
- ``slice_by`` names a raw column; the metric is then computed over all rows and
  over the rows of every value of that column, under keys such as
  ``"accuracy[sex=Female]"`` (missing values become ``"<missing>"``). Result keys
  are sorted as strings.
- A quotient with a zero denominator follows scikit-learn's default: precision
  with no predicted positives and recall with no actual positives are 0.0.
  Accuracy and log loss of zero rows, and AUC when only one class is present, are
  nan.

Bootstrap intervals resample rows with replacement. Every built-in metric
depends on the rows only through counts per category (a confusion-matrix cell; a
distinct score and label; a distinct per-row loss), so a resample is drawn as a
multinomial vector of those counts, which is exactly the distribution of counts
that resampling rows gives, in a few vectorised numpy calls. Each slice is
resampled on its own (a stratified bootstrap: the slice's size is held fixed).
:class:`Custom` metrics are resampled row by row, calling their function once per
sample.
"""

from typing import NoReturn

# MISSING_LABEL and _draw_counts (tests) are importable from here too, outside __all__.
from helix_tf.components.metrics._base import MISSING_LABEL as MISSING_LABEL, Metric
from helix_tf.components.metrics._bootstrap import _draw_counts as _draw_counts
from helix_tf.components.metrics._classification import (
    AUC,
    Accuracy,
    ConfusionMatrix,
    LogLoss,
    Precision,
    PrecisionRecall,
    Recall,
)
from helix_tf.components.metrics._combined import (
    bootstrap_metrics,
    compute_metrics,
    metric_key_problems as metric_key_problems,
)
from helix_tf.components.metrics._custom import Custom
from helix_tf.components.metrics._multiclass import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassLogLoss,
    MulticlassPrecisionRecallF1,
    OneVsRestAUC,
    TopKAccuracy,
)
from helix_tf.components.metrics._regression import MAE, MAPE, R2, RMSE, Residuals

# evaluate_task and metric_problem (engine and compiler) are importable from here too.
from helix_tf.components.metrics._tasks import (
    evaluate_task as evaluate_task,
    metric_problem as metric_problem,
)
from helix_tf.errors import missing_name

__all__ = [
    "AUC",
    "Accuracy",
    "ConfusionMatrix",
    "Custom",
    "LogLoss",
    "MAE",
    "MAPE",
    "Metric",
    "MulticlassAccuracy",
    "MulticlassConfusionMatrix",
    "MulticlassLogLoss",
    "MulticlassPrecisionRecallF1",
    "OneVsRestAUC",
    "Precision",
    "PrecisionRecall",
    "R2",
    "RMSE",
    "Recall",
    "Residuals",
    "TopKAccuracy",
    "bootstrap_metrics",
    "compute_metrics",
]


def __getattr__(name: str) -> NoReturn:
    raise missing_name(__name__, name, __all__)
