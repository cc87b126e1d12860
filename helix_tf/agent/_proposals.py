"""Proposals: the study's trials, ranked, as changes to the user's version.

A proposal is a trial's ``-p`` overrides that differ from the config as
written, with its validation metric (at the rung it reached), its verified
test metrics when the agent verified it, and the paired-bootstrap interval on
the test difference against the user's version. It is **better** only when it
was verified and that interval excludes 0 on the good side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import json
import os
import shlex
from typing import Any

from helix_tf import history
from helix_tf.agent._study import AgentPaths, open_study, study_name
from helix_tf.errors import ConfigError
from helix_tf.rendering import number
from helix_tf.search import declared_space
from helix_tf.validation import Validation

__all__ = [
    "NoStudyError",
    "Proposal",
    "Report",
    "load_report",
    "render_text",
    "render_html",
    "overrides_args",
]


class NoStudyError(ConfigError):
    """The config has no agent study in the storage its metadata setting names."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    rank: int
    trial: int
    overrides: dict[str, Any]
    validation: dict[str, Any]
    test: dict[str, Any] | None
    difference: dict[str, Any] | None
    better: bool
    changes: list[dict[str, Any]]
    cost_seconds: float
    #: For a better proposal with several changes: per changed key, the validation
    #: metric with that change alone reverted, and whether reverting it hurts.
    ablation: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "args": overrides_args(self.overrides)}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    config: str
    study: str
    storage: str
    stale: bool
    metric: str | None
    direction: str
    baseline_validation: dict[str, Any] | None
    baseline_test: dict[str, Any] | None
    trials: dict[str, int]
    proposals: tuple[Proposal, ...]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["proposals"] = [p.to_dict() for p in self.proposals]
        return out


def overrides_args(overrides: dict[str, Any]) -> list[str]:
    """``-p`` arguments that reproduce ``overrides`` (shell-quoted where needed).

    A text value keeps its quotes (``-p`` reads ``25,40`` as numbers), so the argument
    goes in double quotes where the shell leaves them alone, not ``'"'"'`` escapes:

    >>> print(*overrides_args({"add:fnlwgt": "numeric", "learner.l1": 0.01}))
    -p "add:fnlwgt='numeric'" -p learner.l1=0.01
    """
    return [f"-p {_shell_word(f'{k}={v!r}')}" for k, v in sorted(overrides.items())]


def _shell_word(text: str) -> str:
    """``text`` as one shell word: as it is, in double quotes, else ``shlex.quote``d."""
    if shlex.quote(text) == text:
        return text
    if not set(text) & set('"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


def _find_study(paths: AgentPaths, name: str, workflow: str) -> tuple[Any, bool]:
    """The study of the current version, else the newest of the workflow (stale)."""
    study = open_study(paths, name, create=False)
    if study is not None:
        return study, False
    if not paths.has_storage:
        return None, False
    import optuna

    names = [
        s.study_name
        for s in optuna.get_all_study_summaries(paths.storage_url)
        if s.study_name.startswith(f"{workflow}@")
    ]
    if not names:
        return None, False
    return open_study(paths, names[-1], create=False), True


def load_report(
    config: str | os.PathLike[str],
    *,
    store: str | None = None,
    data_dir: str | None = None,
    metadata: str | None = None,
) -> Report:
    """The ranked proposals for ``config`` from its agent's study.

    ``metadata``: the metadata database holding the study when it is a server (else
    ``HELIX_TF_METADATA``, else ``helix_tf.toml``; SQLite beside the store otherwise).
    """
    paths = AgentPaths.of(config, store, metadata)
    view = history.describe(config, data_dir=data_dir, validation=Validation())
    name = study_name(view.name, view.digest, declared_space(config, data_dir))
    study, stale = _find_study(paths, name, view.name)
    if study is None:
        raise NoStudyError(
            f"no agent study for {config} in {paths.storage_label}; start one with "
            f"`helix-tf agent start {config}`"
        )
    attrs = study.user_attrs
    metric = attrs.get("metric")
    current = _current_values(config, attrs, stale, data_dir)
    sign = 1 if study.direction.name == "MAXIMIZE" else -1
    counts, candidates = _best_per_change(study, metric, current, sign)
    proposals = []
    for rank, row in enumerate(_ranked(candidates, attrs, sign), start=1):
        t, validation, test, difference, better, cost, verified = row
        overrides = {k: v for k, v in t.params.items() if current.get(k, object()) != v}
        proposals.append(
            Proposal(
                rank=rank,
                trial=t.number,
                overrides=overrides,
                validation=validation,
                test=test,
                difference=difference,
                better=better,
                changes=history.logical_diff(config, overrides, data_dir=data_dir),
                cost_seconds=round(cost, 3),
                ablation=verified.get("ablation") or {},
            )
        )
    return Report(
        config=str(config),
        study=study.study_name,
        storage=paths.storage_label,
        stale=stale,
        metric=metric,
        direction=study.direction.name.lower(),
        baseline_validation=attrs.get("baseline_validation"),
        baseline_test=attrs.get("baseline_test"),
        trials=counts,
        proposals=tuple(proposals),
    )


def _current_values(
    config: str | os.PathLike[str], attrs: dict[str, Any], stale: bool, data_dir: str | None
) -> dict[str, Any]:
    """Each searched key's value in the config as the proposals are applied to it.

    The study's own record (the config when it started) while it is current; for a
    stale study, the config as it is now: a trial's value that was the config's then
    but is not now (the user changed it since) is part of what the trial ran with,
    so it must be in the proposal, or applying it would run another variant.
    """
    from helix_tf.search import search_space

    dims = (attrs.get("space") or {}).get("dimensions", {})
    if stale:
        with contextlib.suppress(ConfigError):  # a space that no longer derives: as recorded
            now = search_space(config, data_dir=data_dir).current
            return {k: now.get(k, _MISSING) for k in dims}
    return {k: d.get("current") for k, d in dims.items()}


#: A searched key the config no longer has: every trial's value differs from it.
_MISSING = object()


def _best_per_change(
    study: Any, metric: str | None, current: dict[str, Any], sign: int
) -> tuple[dict[str, int], list[tuple[Any, dict[str, Any]]]]:
    """Trials counted by state, and the best trial (with its validation) per distinct change."""
    from optuna.trial import TrialState

    counts: dict[str, int] = {}
    candidates: dict[str, tuple[Any, dict[str, Any]]] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or not metric:
            continue
        overrides = {k: v for k, v in t.params.items() if current.get(k, object()) != v}
        if not overrides:
            continue
        key = json.dumps(overrides, sort_keys=True, default=str)
        value = _validation(t, metric)
        if value is None:
            continue
        best = candidates.get(key)
        if best is None or sign * value["value"] > sign * best[1]["value"]:
            candidates[key] = (t, value)
    return counts, list(candidates.values())


def _ranked(
    candidates: list[tuple[Any, dict[str, Any]]], attrs: dict[str, Any], sign: int
) -> list[tuple[Any, ...]]:
    """The candidates with their verification, best first: significantly better on the
    test split, then verified, then by validation (exact before approximate)."""
    rows = []
    for t, validation in candidates:
        verified = attrs.get(f"verified:{t.number}")
        test = (verified or {}).get("test")
        difference = (verified or {}).get("difference")
        better = bool(
            difference
            and difference.get("significant")
            and sign * float(difference["difference"]) > 0
        )
        cost = sum(
            float((t.user_attrs.get(k) or {}).get("seconds", 0.0))
            for k in ("rung_approx", "rung_exact")
        )
        rows.append((t, validation, test, difference, better, cost, verified or {}))
    rows.sort(
        key=lambda r: (
            0 if r[4] else 1 if r[2] is not None else 2,
            -sign * float(r[3]["difference"]) if r[3] else 0.0,
            -sign * r[1]["value"] if r[1]["exact"] else float("inf"),
        )
    )
    return rows


def _validation(t: Any, metric: str) -> dict[str, Any] | None:
    for key, exact in (("rung_exact", True), ("rung_approx", False)):
        rung = t.user_attrs.get(key)
        if rung and metric in rung.get("metrics", {}):
            interval = (rung.get("intervals") or {}).get(metric)
            return {
                "metric": metric,
                "value": float(rung["metrics"][metric]),
                "exact": exact,
                "interval": interval,
            }
    return None


def _fmt_validation(v: dict[str, Any]) -> str:
    if v["exact"]:
        return f"{v['metric']} {number(v['value'])} (exact)"
    iv = v.get("interval")
    tail = f" [{number(iv[0])}, {number(iv[1])}]" if iv else ""
    return f"{v['metric']} ≈{number(v['value'])}{tail} (approximate rung)"


def _fmt_difference(d: dict[str, Any] | None) -> str:
    if not d:
        return "not verified"
    return (
        f"test {d['metric']} {number(d['new'])} vs {number(d['old'])}: {number(d['difference'], '+.4f')} "
        f"[{number(d['low'], '+.4f')}, {number(d['high'], '+.4f')}] over {d['rows']} rows"
    )


def render_text(report: Report) -> list[str]:
    """The report as lines for the terminal."""
    lines = [
        f"study {report.study} ({report.storage})"
        + (
            "  STALE: the config or its data changed since this study ran: its metrics are "
            "of that version, and each proposal lists what differs from the config now"
            if report.stale
            else ""
        ),
        "trials: " + ", ".join(f"{n} {s}" for s, n in sorted(report.trials.items())),
    ]
    bv, bt = report.baseline_validation, report.baseline_test
    if bv and report.metric:
        lines.append(
            f"your version: validation {report.metric} {number(bv['metrics'][report.metric])}"
            + (f", test {report.metric} {number(bt['metrics'][report.metric])}" if bt else "")
        )
    if not report.proposals:
        lines.append("no proposals yet")
    for p in report.proposals:
        mark = "better" if p.better else "verified, not better" if p.test else "unverified"
        lines.append(
            f"#{p.rank} [{mark}] trial {p.trial}: validation {_fmt_validation(p.validation)}; "
            f"{_fmt_difference(p.difference)}; cost {p.cost_seconds:.1f}s"
        )
        for c in p.changes:
            lines.append(f"    {c['change']} {c['name']}: " + "; ".join(c["details"]))
        for key, a in sorted(p.ablation.items()):
            if "effect" in a:
                verdict = "matters" if a["matters"] else "does not matter"
                lines.append(
                    f"    ablation: {key} {verdict} (reverted alone: validation "
                    f"{number(a['without'])}, {number(-a['effect'], '+.4f')})"
                )
        lines.append("    " + " ".join(overrides_args(p.overrides)))
    return lines


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    rows = []
    for p in report.proposals:
        changes = "<br>".join(
            e(f"{c['change']} {c['name']}: " + "; ".join(c["details"])) for c in p.changes
        )
        rows.append(
            "<tr>"
            f"<td>{p.rank}</td><td>{'better' if p.better else 'verified' if p.test else '—'}</td>"
            f"<td>{e(_fmt_validation(p.validation))}</td>"
            f"<td>{e(_fmt_difference(p.difference))}</td>"
            f"<td>{changes}</td><td><code>{e(' '.join(overrides_args(p.overrides)))}</code></td>"
            f"<td>{p.cost_seconds:.1f}s</td></tr>"
        )
    stale = (
        "<p><b>Stale:</b> the config or its data changed since this study ran: its metrics "
        "are of that version.</p>"
        if report.stale
        else ""
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>helix-tf agent report: {e(report.study)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}</style></head><body>"
        f"<h1>Agent proposals for {e(report.config)}</h1>"
        f"<p>study {e(report.study)} — {e(report.storage)}</p>{stale}"
        "<table><tr><th>#</th><th>status</th><th>validation</th><th>test difference</th>"
        "<th>changes</th><th>-p</th><th>cost</th></tr>" + "".join(rows) + "</table></body></html>"
    )
