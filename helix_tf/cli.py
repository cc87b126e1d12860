"""The ``helix-tf`` command line: run, plan, status, history, diff.

Only this module renders (progress, tables, colours); it takes its consoles
from the click context so tests can capture them. Library code logs.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import click
from rich.markup import escape

from helix_tf.agent.commands import agent
from helix_tf.cli_common import (
    SIZE,
    CommandGroup,
    Invocation,
    approx_settings,
    common,
    fail,
    no_server,
)
from helix_tf.cli_status import status
from helix_tf.cli_store import store
from helix_tf.errors import HelixError
from helix_tf.json_output import json_text, print_json
from helix_tf.server.commands import server

__all__ = ["close_deferred", "defer_closing", "main"]


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="helix_tf")
def main() -> None:
    """helix-tf: fast iteration on TensorFlow pipelines (reuse, approximation, think-time search).

    Exit status: 0 done; 1 the command failed (its error: line names the file, line, node
    or row and the fix); 2 the command line is not understood (an unknown command or
    option, a missing argument, an option value of the wrong kind or out of range);
    130 interrupted (Ctrl-C).
    """


@main.command()
@common
@click.option(
    "--runner",
    type=click.Choice(["direct", "dataflow", "portable", "flink", "spark"]),
    default="direct",
    show_default=True,
    help=(
        "Beam runner for preprocessing (direct: in this process, without Beam, unless "
        "given --beam-option; flink/spark need a job-server jar: README)."
    ),
)
@click.option("--project", default=None, help="Dataflow: GCP project.")
@click.option("--region", default=None, help="Dataflow: region.")
@click.option(
    "--beam-option",
    "beam_options",
    multiple=True,
    metavar="--KEY=VALUE",
    help="Extra Beam pipeline option, passed through (repeatable).",
)
@click.option(
    "--materialize",
    type=click.Choice(["helix", "all", "none"]),
    default="helix",
    show_default=True,
    help="Materialization policy.",
)
@click.option(
    "--budget", type=SIZE, default=None, help="Storage budget for materialized results, e.g. 2GB."
)
@click.option(
    "--approx",
    is_flag=True,
    help="Quick approximate run (sampled rows, reduced precision where it helps).",
)
@click.option(
    "--sample",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Approximate: fraction of training rows (default: 0.1, less on large data "
    "so that about 40,000 rows are kept).",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default=None,
    help="Approximate: training precision (auto: bf16 for networks on CPUs with native bf16).",
)
@click.option(
    "--approx-epochs",
    "epochs_scale",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Approximate: multiply every learner's epochs by this (0, 1].",
)
@click.option(
    "--approx-min-saving",
    "min_saving",
    type=click.FloatRange(min=0),
    default=None,
    help="Approximate: run exact instead when, by the last exact run, the sample would save "
    "less than this many seconds (default 1; 0: always approximate).",
)
@no_server
@click.option(
    "--retrain-without-zero",
    is_flag=True,
    help="Train again without the features whose weights are all zero; report the metric change.",
)
@click.option(
    "--rehash",
    is_flag=True,
    help="Re-read every data file instead of trusting the content-hash memo "
    "(for a file changed without its size, mtime or ctime changing).",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Rows per batch in the Beam pipeline.",
)
@click.option(
    "--scratch",
    envvar="HELIX_TF_SCRATCH",
    default=None,
    help="Folder for the run's scratch data, and its outputs when the store is full "
    "(default: the system's temporary folder).",
)
@click.option(
    "--save",
    is_flag=True,
    help="After a successful run, write the -p values into CONFIG (the keyword at the line "
    "that declares the node, or the PARAMS entry) and show the diff; refused where that "
    "cannot be done safely.",
)
def run(
    cmd: Invocation,
    runner: str,
    project: str | None,
    region: str | None,
    beam_options: tuple[str, ...],
    materialize: str,
    budget: str | None,
    approx: bool,
    sample: float | None,
    precision: str | None,
    epochs_scale: float | None,
    min_saving: float | None,
    no_server: bool,
    retrain_without_zero: bool,
    batch_rows: int,
    scratch: str | None,
    rehash: bool,
    save: bool,
) -> None:
    """Run CONFIG: reuse every still-valid result, compute the rest, report metrics.

    Every run is compared with the previous version of the workflow and with the best
    earlier run: each metric's change, and what changed in the workflow.
    """
    out, err = cmd.out, cmd.err
    from helix_tf import api
    from helix_tf.rendering import ProgressPrinter, run_renderables, run_summary

    pipeline_args = _pipeline_args(cmd, runner, project, region, beam_options)
    try:
        # api.run holds the store's user-run mark: the agent yields the machine meanwhile.
        result = api.run(
            cmd.config,
            **cmd.where(),
            runner=runner,
            pipeline_args=pipeline_args,
            materialize=materialize,
            budget=budget,
            approx=approx_settings(approx, sample, precision, epochs_scale, min_saving),
            batch_rows=batch_rows,
            retrain_without_zero=retrain_without_zero,
            progress=ProgressPrinter(err, not cmd.as_json),
            scratch=scratch,
            rehash=rehash,
        )
    except HelixError as exc:
        fail(err, exc)
        return
    saved = _save(cmd) if save else None
    if cmd.as_json:
        payload = result.to_dict()
        if saved is not None:
            payload["saved"] = {"config": saved.path, "keys": list(saved.saved), "diff": saved.diff}
        print_json(out, json_text(payload))
        return
    for note in result.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for renderable, plain in run_renderables(result):
        if plain:
            out.print(renderable, highlight=False, markup=False)
        else:
            out.print(renderable)
    out.print(run_summary(result), highlight=False)


def _pipeline_args(
    cmd: Invocation,
    runner: str,
    project: str | None,
    region: str | None,
    beam_options: tuple[str, ...],
) -> list[str]:
    """The Beam pipeline options of ``--project``, ``--region`` and ``--beam-option``.

    On Dataflow with a ``gs://`` store, Beam's temporary files go beside the store
    unless ``--temp_location`` is given.
    """
    pipeline_args = list(beam_options)
    if project:
        pipeline_args.append(f"--project={project}")
    if region:
        pipeline_args.append(f"--region={region}")
    if (
        runner == "dataflow"
        and cmd.store
        and cmd.store.startswith("gs://")
        and not any(a.startswith("--temp_location") for a in pipeline_args)
    ):
        pipeline_args.append(f"--temp_location={cmd.store.rstrip('/')}/beam-temp")
    return pipeline_args


def _save(cmd: Invocation) -> Any:
    """``--save``: write the -p values into the config; the diff goes to the error console."""
    from helix_tf.config_edit import save_overrides

    if not cmd.params:
        cmd.err.print("[yellow]note:[/] --save: no -p values to save", highlight=False)
        return None
    try:
        saved = save_overrides(cmd.config, cmd.params, data_dir=cmd.data_dir)
    except HelixError as exc:
        fail(cmd.err, exc, context="--save: the run succeeded, but the config was not changed")
    cmd.err.print(
        f"saved {escape(', '.join(saved.saved))} into {escape(str(saved.path))}:", highlight=False
    )
    cmd.err.print(saved.diff.rstrip("\n"), highlight=False, markup=False)
    return saved


_team = click.option(
    "--team",
    is_flag=True,
    help="Compare with the team's latest version, not your own (a shared metadata database).",
)


@main.command()
@common
@click.option("--approx", is_flag=True, help="Plan the approximate run instead.")
@_team
@click.option(
    "--rehash",
    is_flag=True,
    help="Re-read every data file instead of trusting the content-hash memo "
    "(for a file changed without its size, mtime or ctime changing).",
)
@no_server
def plan(
    cmd: Invocation,
    approx: bool,
    rehash: bool,
    team: bool,
    no_server: bool,
) -> None:
    """Show what a run of CONFIG would compute, load and prune, and why (runs nothing)."""
    out, err = cmd.out, cmd.err
    from helix_tf import api

    try:
        result = api.plan(
            cmd.config,
            **cmd.where(),
            approx=approx_settings(approx, None, None),
            rehash=rehash,
            team=team,
        )
    except HelixError as exc:
        fail(err, exc)
        return
    if cmd.as_json:
        print_json(out, json_text(result.to_dict()))
        return
    for note in result.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    from helix_tf.rendering import plan_summary, plan_table

    out.print(plan_table(result))
    out.print(plan_summary(result), highlight=False)


@main.command()
@common
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Most recent runs to show.",
)
@click.option(
    "--metrics",
    "metric_selection",
    default=None,
    metavar="NAMES",
    help="Comma-separated metrics to show (auc,accuracy); a name also selects its slices "
    "(accuracy[sex=Male]) and globs work (auc*). Default: all.",
)
@click.option("--agent", "with_agent", is_flag=True, help="Also list the agent's runs.")
@click.option("--mine", is_flag=True, help="Only your runs (HELIX_TF_USER, else your login name).")
def history(
    cmd: Invocation,
    limit: int,
    metric_selection: str | None,
    with_agent: bool,
    mine: bool,
) -> None:
    """List the runs of CONFIG's workflow: version, what changed, metrics, time, reuse.

    A version (v3) is one distinct workflow: each change of an operator, parameter or
    data file makes a new one; rerunning an unchanged config keeps it. A run is one
    execution; run numbers count every run, so a version can have several.
    """
    out, err = cmd.out, cmd.err
    from helix_tf.history import workflow_history
    from helix_tf.rendering import history_table
    from helix_tf.settings import current_user

    selection = metric_selection.split(",") if metric_selection else None
    try:
        entries = workflow_history(
            cmd.config,
            limit=limit,
            agent=with_agent,
            metrics=selection,
            user=current_user() if mine else None,
            **cmd.where(),
        )
    except HelixError as exc:
        fail(err, exc)
        return
    if cmd.as_json:
        print_json(out, json_text([e.to_dict(selection) for e in entries]))
        return
    out.print(history_table(entries, selection))


@main.command()
@common
@click.argument("old", type=int)
@click.argument("new", type=int, required=False)
@click.option("--all", "show_all", is_flag=True, help="Also list unchanged nodes.")
@_team
def diff(
    cmd: Invocation,
    old: int,
    new: int | None,
    show_all: bool,
    team: bool,
) -> None:
    """Logical diff between versions OLD and NEW of CONFIG's workflow (NEW: your latest)."""
    out, err = cmd.out, cmd.err
    from helix_tf.history import workflow_diff
    from helix_tf.settings import current_user

    try:
        found = workflow_diff(
            cmd.config, old, new, user=None if team else current_user(), **cmd.where()
        )
    except HelixError as exc:
        fail(err, exc)
        return
    if cmd.as_json:
        print_json(out, json_text(found.to_dict()))
        return
    from helix_tf.rendering import diff_lines

    for line in diff_lines(found, show_all=show_all):
        out.print(line, highlight=False)


@main.command()
@common
@click.option(
    "--html",
    "html_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Where to write the report (a self-contained HTML page); "
    "default: reports/<workflow>.html in the store.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Most recent runs to include.",
)
@click.option("--team", is_flag=True, help="Include the whole team's runs, not only yours.")
def report(
    cmd: Invocation,
    html_path: str | None,
    limit: int,
    team: bool,
) -> None:
    """Write an HTML report: DAG, model views (curves, calibration, importance, weights),
    run times, metric history, changes."""
    out, err = cmd.out, cmd.err
    from helix_tf.report import write_config_report
    from helix_tf.settings import current_user

    try:
        html_path = write_config_report(
            cmd.config,
            html_path,
            limit=limit,
            user=None if team else current_user(),
            **cmd.where(),
        )
    except HelixError as exc:
        fail(err, exc)
        return
    if cmd.as_json:
        print_json(out, json_text({"report": str(html_path)}))
    else:
        out.print(f"report written to {escape(str(html_path))}", highlight=False)


def defer_closing() -> None:
    """The metadata databases' closing waits for :func:`close_deferred` (a served run
    closes them after its client has the exit code; ``reuse.metadata.defer_closing``),
    imported here, not when this module is: the first run imports this module before
    it forks the server (``helix_tf.server._client._computes_from_scratch``)."""
    from helix_tf.reuse.metadata import defer_closing as defer

    defer()


def close_deferred() -> None:
    """Close what :func:`defer_closing` left open (``reuse.metadata.close_deferred``)."""
    from helix_tf.reuse.metadata import close_deferred as close

    close()


def run_cli(argv: list[str]) -> int:
    """Run ``helix-tf ARGV`` in this process; the exit code.

    Below ``-v``, native libraries' own log lines (TensorFlow's start-up and graph
    rewrite notices) do not reach standard error (:mod:`helix_tf.native_output`).
    ``HELIX_TF_PROFILE=FILE`` writes a cProfile of the command to FILE; with
    ``HELIX_TF_PROFILE_CLOCK=cpu`` it counts this process' CPU seconds instead of
    wall seconds (on a loaded machine, wall seconds land on whatever function was
    running when the process lost the CPU).
    """
    from helix_tf.native_output import quiet_native_stderr, verbosity

    profile = os.environ.get("HELIX_TF_PROFILE")
    with quiet_native_stderr(enabled=verbosity(argv) == 0) as outcome:
        if profile:  # where the time of one command goes, served or not (benchmarks)
            import cProfile

            cpu = os.environ.get("HELIX_TF_PROFILE_CLOCK", "wall").lower() == "cpu"
            profiler = cProfile.Profile(time.process_time) if cpu else cProfile.Profile()
            code = profiler.runcall(_run_cli, argv)
            profiler.dump_stats(profile)
        else:
            code = _run_cli(argv)
        outcome[0] = code
    return code


def _run_cli(argv: list[str]) -> int:
    try:
        # The name usage messages show: a served run's process was started as
        # `python -m helix_tf.server` ("Usage: python -m helix_tf.server.helix-tf run").
        main(argv, prog_name="helix-tf", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort as exc:
        sys.stderr.write("Aborted!\n")
        # click turns Ctrl-C into Abort; the shell convention for SIGINT is 128 + 2.
        return 130 if isinstance(exc.__context__, KeyboardInterrupt) else 1
    except KeyboardInterrupt:
        sys.stderr.write("Aborted!\n")
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def console_main() -> None:
    """``helix-tf`` from this module (``python -m helix_tf.cli``, console scripts installed
    before :mod:`helix_tf.entry`, which a served run imports instead of this module)."""
    from helix_tf.server import leave_served, served

    argv = sys.argv[1:]
    code = served(argv)
    if code is not None:
        leave_served(code)
    run_here(argv)


def run_here(argv: list[str]) -> None:
    """Run ``helix-tf ARGV`` in this process, then leave without slow teardown.

    Once TensorFlow or Beam is loaded, the interpreter's own shutdown (module
    finalisation, their thread pools and atexit hooks) took ~0.9 s here, after
    every result was written, committed and printed; with Arrow and pandas (a run
    that preprocessed without Beam, its training in the server) 0.1–0.5 s. Output
    is flushed, logging shut down, then the process ends with the command's exit code.
    """
    from helix_tf.warm import skip_library_extras

    skip_library_extras()
    code = run_cli(argv)
    heavy = any(m in sys.modules for m in ("tensorflow", "apache_beam", "pyarrow"))
    if not heavy:
        raise SystemExit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


main.add_command(server)
main.add_command(store)
main.add_command(agent)
main.add_command(status)

if __name__ == "__main__":  # pragma: no cover
    console_main()
