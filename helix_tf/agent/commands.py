"""``helix-tf agent ...``: start, watch, stop the think-time agent; review and apply proposals."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from helix_tf.activity import local_store_folder
from helix_tf.agent._starting import await_start, check_start_options
from helix_tf.cli_common import SIZE, consoles, fail, json_stdout, one_value_per_key
from helix_tf.errors import HelixError
from helix_tf.json_output import json_text

__all__ = ["agent", "status_of"]


def _echo_error(exc: BaseException) -> NoReturn:
    """``error: MESSAGE`` and exit status 1 (with ``--json`` also the error object)."""
    fail(consoles(click.get_current_context())[1], exc)


_data_dir = click.option(
    "--data-dir", envvar="HELIX_TF_DATA", default=None, help="Folder holding the shared data."
)
_store = click.option("--store", default=None, help="The store's local folder (default .helix/).")
_json = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
# The metadata database, found as every helix-tf command finds it (helix_tf.settings):
# --metadata, else HELIX_TF_METADATA, else helix_tf.toml above CONFIG, else SQLite beside
# the store. A server's database also holds the agent's Optuna study (schema helix_optuna).
_metadata = click.option(
    "--metadata",
    default=None,
    help="Metadata database URL for the agent's runs and its Optuna study, e.g. "
    "postgresql://user@host/db (default: HELIX_TF_METADATA, else helix_tf.toml above "
    "CONFIG, else sqlite beside the store).",
)


@click.group()
def agent() -> None:
    """The think-time agent: Optuna search over the config's space, reviewed from here."""


@agent.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    callback=one_value_per_key,
    help="Override a parameter as `helix-tf run -p` does; a derived space centres on it.",
)
@_data_dir
@_json
def space(config: str, params: tuple[str, ...], data_dir: str | None, as_json: bool) -> None:
    """Print the space the agent searches for CONFIG (its SEARCH, or one derived from it)."""
    from helix_tf.search import search_space

    try:
        with json_stdout(as_json):
            found = search_space(config, params=list(params), data_dir=data_dir)
    except HelixError as exc:
        _echo_error(exc)
        return
    if as_json:
        click.echo(json_text(found.to_dict(), sort_keys=True, default=str))
        return
    origin = "declared in SEARCH" if found.declared else "derived from the workflow"
    click.echo(f"search space of {config} ({origin}):")
    for line in found.lines():
        click.echo(f"  {line}")


#: A count of one or more (cores, trials).
_ONE_OR_MORE = click.IntRange(min=1)


@agent.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@_data_dir
@_store
@click.option(
    "--cores", type=_ONE_OR_MORE, default=1, show_default=True, help="CPU cores it may use."
)
@click.option("--seed", type=int, default=0, show_default=True, help="The sampler's seed.")
@click.option("--trials", type=_ONE_OR_MORE, default=None, help="Stop after this many trials.")
@click.option(
    "--resume-after",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Seconds after a user run ends before the agent resumes.",
)
@click.option(
    "--budget",
    type=SIZE,
    default=None,
    help="The store's budget the agent's runs honour, e.g. 2GB (default: the disk's size).",
)
@click.option(
    "--share",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.25,
    show_default=True,
    help="Share of the budget the agent's store entries may hold (evicted first).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Trials asked at a time, run in reuse-aware order (1: the sampler's order).",
)
@click.option(
    "--verify-share",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.25,
    show_default=True,
    help="Share of the agent's time verification (test runs, ablations) may take.",
)
@click.option(
    "--verify-min-gain",
    type=click.FloatRange(min=0),
    default=0.1,
    show_default=True,
    help="Verify a new leader during the search only when its validation gain over your "
    "version exceeds the best verified one's by this share of it.",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0, min_open=True),
    default=60,
    show_default=True,
    help="Seconds to wait for the agent to start before giving up (its log says why).",
)
@_metadata
def start(
    config: str,
    data_dir: str | None,
    store: str | None,
    metadata: str | None,
    cores: int,
    seed: int,
    trials: int | None,
    resume_after: float,
    budget: str | None,
    share: float,
    batch: int,
    verify_share: float,
    verify_min_gain: float,
    wait_s: float,
) -> None:
    """Search for better variants of CONFIG in the background, at the lowest priority."""
    from helix_tf.agent._study import AgentPaths, check_study_storage
    from helix_tf.config import find_data_dir
    from helix_tf.search import search_space

    path = Path(config).resolve()
    paths = AgentPaths.of(path, store, metadata)
    check_start_options(cores, trials, resume_after, verify_min_gain, wait_s)
    try:
        data = find_data_dir(data_dir, path)
        # Refused here with the config's own error; once started, the agent waits
        # while the config does not compile (an edit saved halfway).
        search_space(path, data_dir=data)
        check_study_storage(paths)  # a damaged study database: said here, not in the log
    except HelixError as exc:
        _echo_error(exc)
        return
    cmd = [sys.executable, "-m", "helix_tf.agent", str(path), "--cores", str(cores)]
    cmd += ["--seed", str(seed), "--resume-after", str(resume_after)]
    cmd += ["--share", str(share), "--batch", str(batch), "--verify-share", str(verify_share)]
    cmd += ["--verify-min-gain", str(verify_min_gain)]
    if budget is not None:
        cmd += ["--budget", budget]
    if data is not None:
        cmd += ["--data-dir", str(data)]
    if store:
        folder = local_store_folder(store)  # ~ expanded as the run's store is (qa22)
        cmd += ["--store", str(folder.resolve()) if folder is not None else store]
    if trials is not None:
        cmd += ["--trials", str(trials)]
    paths.folder.mkdir(parents=True, exist_ok=True)
    previous = _checked_status(paths.home) or {}  # a killed agent's status is cleaned up
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=_agent_env(metadata),
        )
    await_start(proc, paths, previous, cores, wait_s)


def _agent_env(metadata: str | None) -> dict[str, str]:
    """The agent process's environment: ``--metadata`` passed on as ``HELIX_TF_METADATA``.

    The variable ranks right below the option, so inside the agent process its runs
    (:func:`helix_tf.run`) and its study (:meth:`AgentPaths.of`) find the same database
    as this command, without an option of their own.
    """
    from helix_tf.settings import METADATA_ENV

    env = dict(os.environ)
    if metadata:
        env[METADATA_ENV] = metadata
    return env


def _homes(config: str | None, store: str | None) -> list[Path]:
    from helix_tf.activity import home_of
    from helix_tf.agent._registry import running_homes

    if config is not None:
        return [home_of(config, store)]
    return running_homes()


#: The states an agent leaves when it ends by itself (any other: it was killed).
_ENDED = ("done", "stopped", "failed", "dead")


def _checked_status(home: Path) -> dict[str, Any] | None:
    """The status of ``home``'s agent, with ``running``; a killed agent's is cleaned up.

    An agent killed with SIGKILL (or a crash of the machine) leaves its status at
    "running" and its registry entry behind, and its pid may by now be another
    process's. It is running only while a process with its pid *and start time*
    exists; otherwise its status is rewritten "dead" (with why) and its entry
    removed, so ``status``, ``stop`` and ``start`` never take a stranger for it.
    """
    from helix_tf.agent._registry import is_running, unregister
    from helix_tf.agent._study import AgentPaths

    paths = AgentPaths(home=home)
    st = paths.read_status()
    if st is None:
        return _unreadable_status(paths) if paths.status.exists() else None
    pid = int(st.get("pid") or 0)
    alive = is_running(pid, st.get("pid_start"))
    if not alive and st.get("state") not in _ENDED:
        unregister(pid)
        st = {
            **st,
            "state": "dead",
            "reason": f"the agent process (pid {pid}) ended without stopping (killed or "
            f"crashed) while {st.get('state', '?')}; `helix-tf agent start` resumes its study",
        }
        with contextlib.suppress(OSError):
            paths.write_status(st)
    st["running"] = alive and st.get("state") not in _ENDED
    return st


def _unreadable_status(paths: Any) -> dict[str, Any]:
    """What is known of an agent whose status file exists but cannot be read (damaged,
    or not ours to read): its process, from the registry, so ``stop`` still reaches it."""
    from helix_tf.agent._registry import running_pid_of

    found = running_pid_of(paths.home)
    pid, start = found if found is not None else (0, None)
    then = (
        f"its process (pid {pid}) runs: `helix-tf agent stop` stops it"
        if found
        else "no agent process of this store runs: move the file aside"
    )
    return {
        "home": str(paths.home),
        "state": "unknown",
        "pid": pid,
        "pid_start": start,
        "running": found is not None,
        "reason": f"its status file {paths.status} cannot be read; {then}",
    }


@agent.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_store
@_json
@_data_dir
@_metadata
def status(
    config: str | None,
    store: str | None,
    as_json: bool,
    data_dir: str | None,
    metadata: str | None,
) -> None:
    """Trials, current rung, best so far and why paused (CONFIG's agent, or every running one).

    With CONFIG and no agent of this store, the study in a shared metadata database (a
    colleague's agent, or one that stopped) is summarised instead.
    """
    found = []
    with json_stdout(as_json):  # (status_of loads the config, to tell a stale agent)
        for home in _homes(config, store):
            st = status_of(home, config, data_dir)
            if st is not None:
                found.append(st)
        shared = _shared_study(config, store, data_dir, metadata) if config and not found else None
    if as_json:
        click.echo(json_text(found + ([shared] if shared else []), sort_keys=True, default=str))
        return
    if not found:
        click.echo(_none_running(config, store))
    for st in found:
        click.echo(_status_line(st))
    if shared:
        click.echo(_shared_line(shared))


def status_of(home: Path, config: str | None, data_dir: str | None) -> dict[str, Any] | None:
    """The status of ``home``'s agent (None: none ever ran there), with ``running`` and
    whether its study is stale (:func:`_staleness`); ``config`` and ``data_dir``: as the
    command was given them (else the agent's own)."""
    st = _checked_status(home)
    return None if st is None else {**st, **_staleness(st, config, data_dir)}


def _staleness(st: dict[str, Any], config: str | None, data_dir: str | None) -> dict[str, Any]:
    """``stale`` (and ``study_now``): whether the study an agent's status is of is not the
    version of its config as it is now (edited, or its data changed, since).

    Its best and proposals are then of the version before (``agent report`` marks them
    STALE). The config is compiled as the agent compiles it (its data folder, the
    validation workflow); one that does not compile now cannot be matched: ``stale`` is
    None and ``stale_unknown`` says why.
    """
    from helix_tf import history
    from helix_tf.agent._study import study_name
    from helix_tf.search import declared_space
    from helix_tf.validation import Validation

    path = config or st.get("config")
    if not st.get("study") or not path or not Path(path).is_file():
        return {}
    try:
        view = history.describe(
            path, data_dir=data_dir or st.get("data_dir"), validation=Validation()
        )
    except HelixError as exc:
        return {"stale": None, "stale_unknown": str(exc).splitlines()[0]}
    now = study_name(view.name, view.digest, declared_space(path, data_dir or st.get("data_dir")))
    return {"stale": now != st["study"], "study_now": now}


def _shared_study(
    config: str, store: str | None, data_dir: str | None, metadata: str | None
) -> dict[str, Any] | None:
    """CONFIG's study in a server metadata database (None: SQLite, or no study there)."""
    from helix_tf.agent._proposals import NoStudyError, load_report
    from helix_tf.agent._study import AgentPaths

    if not Path(config).is_file() or AgentPaths.of(config, store, metadata).metadata is None:
        return None  # a SQLite study belongs to this store's agent: its status says it all
    try:
        found = load_report(config, store=store, data_dir=data_dir, metadata=metadata)
    except NoStudyError:
        return None
    except HelixError as exc:
        _echo_error(exc)
        return None
    best = found.proposals[0] if found.proposals else None
    return {
        "config": config,
        "running": False,
        "state": "not running here",
        "study": found.study,
        "storage": found.storage,
        "stale": found.stale,
        "metric": found.metric,
        "trials": found.trials,
        "best": {"trial": best.trial, **best.validation} if best else None,
    }


def _shared_line(st: dict[str, Any]) -> str:
    trials = ", ".join(f"{n} {s}" for s, n in sorted(st["trials"].items()))
    best = st["best"]
    best_text = (
        f"best {best['metric']} {best['value']:.4f} (trial {best['trial']})"
        if best
        else "no best yet"
    )
    stale = " (stale: the config changed since)" if st["stale"] else ""
    return (
        f"{st['config']}: study {st['study']}{stale} in {st['storage']}: "
        f"trials: {trials or 'none'}; {best_text}"
    )


def _status_line(st: dict[str, Any]) -> str:
    trials = ", ".join(f"{n} {s}" for s, n in sorted((st.get("trials") or {}).items()))
    best = st.get("best")
    best_text = (
        f"best {st.get('metric')} {best['value']:.4f} (trial {best['trial']})"
        if best
        else "no best yet"
    )
    state = st.get("state", "?") if st.get("running") or st.get("state") != "running" else "dead"
    why = f" — {st['reason']}" if st.get("reason") else ""
    rung = f", rung {st['rung']}" if st.get("rung") else ""
    y = st.get("yields") or {}
    lat = y.get("latencies_ms") or []
    yields = f"; yielded {y.get('count', 0)}x" + (f" (last {lat[-1]:.0f} ms)" if lat else "")
    return (
        f"{st.get('config') or st.get('home')}: {state}{why}; pid {st.get('pid')}; trial {st.get('trial', '-')}{rung}; "
        f"trials: {trials or 'none'}; {best_text}{yields}; study {st.get('storage')}"
        + _stale_text(st)
    )


def _stale_text(st: dict[str, Any]) -> str:
    """What an agent's status line says about a study of an earlier version of its config."""
    if st.get("stale_unknown"):
        return f"\n  (cannot tell whether its study is of the config now: {st['stale_unknown']})"
    if not st.get("stale"):
        return ""
    then = (
        "the running agent starts a new study from its best trials"
        if st.get("running")
        else f"`helix-tf agent start {st.get('config')}` searches the config as it is now"
    )
    return (
        f"\n  STALE: the config or its data changed since study {st.get('study')} ran: its "
        f"best and proposals are of the version before (`helix-tf agent report` lists what "
        f"each would change now); {then}"
    )


@agent.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_store
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0, min_open=True),
    default=60,
    show_default=True,
    help="Seconds to wait for the agent to stop by itself before it is killed.",
)
def stop(config: str | None, store: str | None, wait_s: float) -> None:
    """Stop CONFIG's agent (or every running one): the trial in progress is queued again."""
    from helix_tf.agent._registry import is_running

    stopped = 0
    for home in _homes(config, store):
        st = _checked_status(home) or {}
        pid, start = int(st.get("pid") or 0), st.get("pid_start")
        if not pid or not is_running(pid, start):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while is_running(pid, start) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_running(pid, start):
            os.kill(pid, signal.SIGKILL)
        stopped += 1
        click.echo(f"agent stopped (pid {pid})")
    if not stopped:
        click.echo(_none_running(config, store))


def _none_running(config: str | None, store: str | None) -> str:
    """ "no agent is running [for CONFIG]"; a CONFIG that is no file (and no --store) may be
    a mistyped path (one deleted while its agent ran is still found: by its store folder)."""
    if not config:
        return "no agent is running"
    if store is None and not Path(config).is_file():
        return f"no agent is running for {config} (there is no file {config}: check the path)"
    return f"no agent is running for {config}"


@agent.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@_data_dir
@_store
@_json
@click.option(
    "--html",
    "html_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the report as an HTML page to this file.",
)
@_metadata
def report(
    config: str,
    data_dir: str | None,
    store: str | None,
    as_json: bool,
    html_path: str | None,
    metadata: str | None,
) -> None:
    """Ranked proposals: changes, validation metric, verified test difference with interval."""
    from helix_tf.agent._proposals import load_report, render_html, render_text

    try:
        with json_stdout(as_json):
            found = load_report(config, store=store, data_dir=data_dir, metadata=metadata)
    except HelixError as exc:
        _echo_error(exc)
        return
    if html_path:  # as `helix-tf report --html` writes (~ expanded, folders made, atomic)
        from helix_tf.report import write_report

        try:
            html_path = write_report(html_path, render_html(found))
        except HelixError as exc:
            _echo_error(exc)
    if as_json:
        click.echo(json_text(found.to_dict(), sort_keys=True, default=str))
        return
    for line in render_text(found):
        click.echo(line)
    if html_path:
        click.echo(f"report written to {html_path}")


@agent.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.argument("number", type=int)
@_data_dir
@_store
@click.option("--print", "print_only", is_flag=True, help="Print the -p overrides instead.")
@_metadata
def apply(
    config: str,
    number: int,
    data_dir: str | None,
    store: str | None,
    print_only: bool,
    metadata: str | None,
) -> None:
    """Take proposal NUMBER into CONFIG: show the diff of the config and write it."""
    from helix_tf import history
    from helix_tf.agent._apply import apply_proposal
    from helix_tf.agent._proposals import load_report, overrides_args

    try:
        found = load_report(config, store=store, data_dir=data_dir, metadata=metadata)
        chosen = [p for p in found.proposals if p.rank == number]
        if not chosen:
            raise HelixError(
                f"no proposal {number}; the report has {len(found.proposals)} "
                "(see `helix-tf agent report`)"
            )
        proposal = chosen[0]
        if print_only:
            click.echo(" ".join(overrides_args(proposal.overrides)))
            return
        declared = set(history.describe(config, data_dir=data_dir).params)
        applied = apply_proposal(
            config,
            proposal.overrides,
            label=f"agent{number}",
            declared=declared,
            data_dir=data_dir,
        )
    except HelixError as exc:
        _echo_error(exc)
        return
    if found.stale:
        click.echo(
            f"note: study {found.study} ran on an earlier version of {config} or its data; "
            "the proposal is written against the config now, and its run computes its own "
            "metrics (those in the report are of that earlier version)"
        )
    click.echo(applied.diff, nl=False)
    if applied.new_file:
        for reason in applied.reasons:
            click.echo(f"not written in place: {reason}")
        click.echo(f"written to a new config beside the original: {applied.path}")
    else:
        click.echo(f"written to {applied.path}")
