"""``helix-tf status CONFIG``: where a workflow stands, in a few lines, running nothing.

What a person asks before the next run: what did the last run give, what has changed
since (in the config, its code or its data), what would a run recompute and how long
would it take, and are the warm server and the think-time agent there. It reads the
metadata database, compiles and plans (``helix-tf plan``'s work: no TensorFlow, no
Beam) and asks the server and the agent for their state; it writes nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from helix_tf.cli_common import Invocation, common, fail
from helix_tf.errors import HelixError
from helix_tf.json_output import json_text, print_json
from helix_tf.results import NodeDecision
from helix_tf.roles import state_counts

__all__ = ["changes_since", "status", "status_lines"]


def changes_since(nodes: Sequence[NodeDecision]) -> dict[str, list[str]]:
    """Per node whose own definition (operator, parameters, code, data) differs from the
    last recorded version, what differs (``NodeDecision.changed``), whatever the node's
    state: a config back at an earlier version loads or prunes the nodes it changed.
    Nodes that changed only through an input, and unchanged ones, are left out.

    >>> from helix_tf.results import NodeDecision
    >>> def node(name, state, changed=()):
    ...     return NodeDecision(name=name, kind="k", state=state, compute_cost=1.0,
    ...                         load_cost=None, reason="r", fingerprint="f", changed=changed)
    >>> changes_since([node("learner", "prune", ("learner.l1 0.003 → 0.0",)),
    ...                node("evaluation", "load"),
    ...                node("cross", "compute", ("new node",))])
    {'learner': ['learner.l1 0.003 → 0.0'], 'cross': ['new node']}
    """
    return {n.name: list(n.changed) for n in nodes if n.changed}


def _last_run(entry: Any) -> dict[str, Any] | None:
    if entry is None:
        return None
    r = entry.run
    return {
        "run": r.id,
        "version": r.version,
        "status": r.status,
        "approx": r.approx,
        "started": r.started,
        "wall_seconds": r.wall_seconds,
        "metrics": dict(r.metrics),
    }


def _server_state() -> dict[str, Any]:
    """The warm server's state as ``helix-tf server status --json`` gives its core."""
    from helix_tf.server._client import autostart_refusal, request
    from helix_tf.server._protocol import stale_reasons, stamp_parts

    reply = request("status")
    if reply is None:
        return {"running": False, "autostart_refusal": autostart_refusal()}
    keys = ("pid", "started", "runs", "user_run_in_progress")
    return {
        "running": True,
        **{k: reply[k] for k in keys if k in reply},
        "stale_reasons": stale_reasons(reply.get("parts") or {}, stamp_parts()),
    }


def _agent_state(cmd: Invocation) -> dict[str, Any] | None:
    """CONFIG's think-time agent (this store's), or None when it never ran here."""
    from helix_tf.activity import home_of
    from helix_tf.agent.commands import status_of

    return status_of(home_of(cmd.config, cmd.store), cmd.config, cmd.data_dir)


def workflow_status(cmd: Invocation) -> dict[str, Any]:
    """Everything ``status`` shows, as one JSON-able dict (``--json`` prints it)."""
    from helix_tf import api
    from helix_tf._session import NothingRecordedError
    from helix_tf.history import workflow_history

    where = {"config": cmd.config, "server": _server_state(), "agent": _agent_state(cmd)}
    missing = _missing_store(cmd)
    if missing is not None:  # planning would create it: say what the first run does
        from helix_tf.config import load_config

        name = load_config(cmd.config, cmd.params, data_dir=cmd.data_dir).workflow.name
        return {"workflow": name, "store": missing, "last_run": None, "changes": {},
                "plan": None, "notes": [], **where}  # fmt: skip
    try:
        entries = workflow_history(cmd.config, limit=1, **cmd.where())
    except NothingRecordedError:  # a store folder, but no run recorded yet
        entries = []
    last = _last_run(entries[0] if entries else None)
    # What changed is said against the last run's version (the plan's default baseline,
    # the latest *other* version, is another one when the config is back at an earlier
    # version); an approximate run's version is compared with approximate ones.
    baseline = last["version"] if last is not None and not last["approx"] else None
    plan = api.plan(cmd.config, **cmd.where(), baseline=baseline)
    return {
        "workflow": plan.workflow,
        "store": cmd.store or str(_default_store(cmd)),
        "last_run": last,
        "changes": changes_since(plan.nodes),
        "plan": {
            **{str(k): v for k, v in state_counts(n.state for n in plan.nodes).items()},
            "nodes": len(plan.nodes),
            "estimated_seconds": round(plan.estimated_seconds, 4),
        },
        "notes": list(plan.notes),
        **where,
    }


def _default_store(cmd: Invocation) -> Path:
    from helix_tf._session import default_home

    return default_home(Path(cmd.config))


def _missing_store(cmd: Invocation) -> str | None:
    """The local store folder CONFIG's runs would use, when no run has made it yet: no
    folder, or one without the store's marker (``.helix/`` holding only the example
    configs' generated data: planning there would create the store and its database)."""
    from helix_tf.activity import local_store_folder
    from helix_tf.reuse.store import holds_a_store

    url = cmd.store or str(_default_store(cmd))
    folder = local_store_folder(url)
    return None if folder is None or holds_a_store(folder) else url


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def _run_line(last: dict[str, Any] | None) -> str:
    if last is None:
        return "last run: none yet (this store has no run of this workflow)"
    approx = "≈" if last["approx"] else ""
    metrics = ", ".join(f"{k} {approx}{v:.4f}" for k, v in sorted(last["metrics"].items())[:4])
    more = len(last["metrics"]) - 4
    metrics += f" (+{more} more: helix-tf history)" if more > 0 else ""
    took = f", {last['wall_seconds']:.1f}s" if last["wall_seconds"] is not None else ""
    state = "" if last["status"] == "ok" else f" [{last['status']}]"
    return (
        f"last run: run {last['run']} (v{last['version']}{', approximate' if last['approx'] else ''})"
        f" {_when(last['started'])}{took}{state}" + (f": {metrics}" if metrics else "")
    )


def _change_lines(state: dict[str, Any]) -> list[str]:
    plan, changes, last = state["plan"], state["changes"], state["last_run"]
    if plan is None:
        return [
            f"no store at {state['store']} yet: the first run computes every node "
            "(helix-tf plan CONFIG lists them)"
        ]
    would = (
        f"a run would compute {plan['compute']}, load {plan['load']} and prune "
        f"{plan['prune']} of {plan['nodes']} nodes (estimated {plan['estimated_seconds']:.2f}s)"
    )
    if last is None:
        return [would]
    if not changes:
        return [f"unchanged since v{last['version']}: {would}"]
    lines = [f"changed since v{last['version']} ({len(changes)} node(s)):"]
    lines += [f"  {name}: {'; '.join(parts)}" for name, parts in changes.items()]
    return [*lines, would]


def _server_line(server: dict[str, Any]) -> str:
    if not server["running"]:
        refusal = server.get("autostart_refusal")
        why = f"not started here: {refusal}" if refusal else "the next run starts one"
        return f"server: not running ({why})"
    up = ""
    if "started" in server:
        up = f", up since {_when(server['started'])}"
    served = f", {server['runs']} runs served" if "runs" in server else ""
    busy = ", a run in progress" if server.get("user_run_in_progress") else ""
    stale = server.get("stale_reasons") or []
    restarts = f"; restarts at the next run: {stale[0]}" if stale else ""
    return (
        f"server: running (pid {server.get('pid', '?')}{up}{served}{busy}{restarts}): "
        "helix-tf server status"
    )


def _agent_line(agent: dict[str, Any] | None) -> str:
    if agent is None:
        return "agent: never started for this store (helix-tf agent start CONFIG)"
    state = agent.get("state", "?") if agent.get("running") else "not running"
    best = agent.get("best")
    found = f", best {agent.get('metric')} {best['value']:.4f}" if best else ""
    stale = (
        ", STALE: its study is of an earlier version of the config" if agent.get("stale") else ""
    )
    return f"agent: {state}{found}{stale} (helix-tf agent report CONFIG)"


def status_lines(state: dict[str, Any]) -> list[str]:
    """The lines ``helix-tf status`` prints for ``state`` (:func:`workflow_status`)."""
    return [
        f"{state['workflow']} ({state['config']}; store {state['store']})",
        _run_line(state["last_run"]),
        *_change_lines(state),
        *(f"note: {n}" for n in state["notes"]),
        _server_line(state["server"]),
        _agent_line(state["agent"]),
    ]


@click.command()
@common
def status(cmd: Invocation) -> None:
    """Where CONFIG's workflow stands: the last run and its metrics, what changed since
    (config, code, data), what a run would compute and its estimated time, and the warm
    server and agent. Runs nothing, writes nothing."""
    try:
        state = workflow_status(cmd)
    except HelixError as exc:
        fail(cmd.err, exc)
        return
    if cmd.as_json:
        print_json(cmd.out, json_text(state))
        return
    for line in status_lines(state):
        cmd.out.print(escape(line), highlight=False)
