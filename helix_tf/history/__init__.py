"""A workflow's past as typed public functions: runs, versions, diffs, comparisons.

The one home of what the CLI (``history``, ``diff``, the comparison under ``run``),
the HTML report and the think-time agent know about earlier runs; each reads the
metadata database through these functions, never on its own.

Runs (:mod:`._runs`)
    :func:`runs` (a config's runs, oldest first), :func:`recorded_runs` (a workflow's
    runs in a metadata database, newest first), :func:`history_entries` (``helix-tf
    history``), :func:`compare_with_history` (a run against the previous version and
    the best so far), :func:`record_killed_runs` (runs whose process is gone, recorded
    as killed); tagged runs (:data:`TAG_KEY`, the agent's) only when asked.
Versions (:mod:`._versions`)
    :func:`describe` (a config compiled under ``-p`` overrides), :func:`logical_diff`
    (a config against a variant), :func:`version_diff` (two recorded versions),
    :func:`workflow_changes` (a diff as one line per change).
Metrics (:mod:`._metrics`)
    :func:`metric_direction`, :func:`select_metrics`, :func:`compare_metrics`.
A config's past, by config path (:mod:`._workflow`: what a tool calls)
    :func:`workflow_history`, :func:`workflow_versions`, :func:`workflow_diff`,
    :func:`compare_runs` (two runs' metrics side by side, and what changed).
Predictions (:mod:`._predictions`)
    :func:`stored_predictions`, :func:`compare_predictions` (paired bootstrap).

Terms: a **version** is one distinct compiled workflow (``v3``); every change of an
operator, parameter or data file makes a new one, and an unchanged rerun keeps the
number. A **run** is one execution (``run 17``); run ids count every run of every
version (and of every workflow in the same metadata database).
"""

from __future__ import annotations

from helix_tf.history._metrics import (
    LOWER_IS_BETTER,
    MetricChange,
    compare_metrics,
    metric_base,
    metric_direction,
    select_metrics,
)
from helix_tf.history._predictions import (
    MetricDifference,
    Predictions,
    compare_predictions,
    stored_predictions,
)
from helix_tf.history._runs import (
    TAG_KEY,
    HistoryEntry,
    RunComparison,
    RunSummary,
    compare_with_history,
    history_entries,
    record_killed_runs,
    recorded_runs,
    runs,
    summarize_run,
    tag_of,
)
from helix_tf.history._versions import (
    NodeChange,
    NodeView,
    VersionDiff,
    WorkflowView,
    describe,
    diff_records,
    logical_diff,
    version_diff,
    workflow_changes,
)
from helix_tf.history._workflow import (
    MetricDelta,
    RunsComparison,
    VersionSummary,
    check_metric_selection,
    compare_runs,
    recorded_versions,
    recorded_workflow,
    workflow_diff,
    workflow_history,
    workflow_versions,
)

__all__ = [
    # runs
    "TAG_KEY",
    "RunSummary",
    "HistoryEntry",
    "RunComparison",
    "tag_of",
    "recorded_runs",
    "runs",
    "history_entries",
    "compare_with_history",
    "summarize_run",
    # a config's past, by config path
    "workflow_history",
    "workflow_versions",
    "workflow_diff",
    "compare_runs",
    "recorded_workflow",
    "VersionSummary",
    "RunsComparison",
    "MetricDelta",
    "check_metric_selection",
    "recorded_versions",
    "record_killed_runs",
    # versions
    "NodeChange",
    "NodeView",
    "WorkflowView",
    "VersionDiff",
    "describe",
    "logical_diff",
    "version_diff",
    "diff_records",
    "workflow_changes",
    # metrics
    "LOWER_IS_BETTER",
    "MetricChange",
    "metric_base",
    "metric_direction",
    "select_metrics",
    "compare_metrics",
    # predictions
    "Predictions",
    "MetricDifference",
    "stored_predictions",
    "compare_predictions",
]
