"""What every ``helix-tf`` command shares: its options, consoles, logging and errors.

:func:`common` adds the options every command takes (CONFIG, ``-p``, ``--data-dir``,
``--store``, ``--metadata``, ``--json``, ``-v``) and hands the command one
:class:`Invocation`; the consoles come from the click context so tests capture them.

Errors: a command ends through :func:`fail` (its own errors) and the group
:class:`CommandGroup` (click's: a usage error, an unknown option). Both write the
one-line message to standard error; where ``--json`` was asked for they also print
:func:`error_object` on standard output, and nothing else is printed there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

__all__ = [
    "SIZE",
    "one_value_per_key",
    "CommandGroup",
    "Invocation",
    "approx_settings",
    "common",
    "consoles",
    "error_object",
    "fail",
    "json_stdout",
    "no_server",
]


class _Size(click.ParamType):
    """A storage size (``500MB``, ``2GB``, bytes), checked as the command line is read: a
    bad one is a usage error (exit 2) like any option value out of its type or range."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from helix_tf.errors import ConfigError
        from helix_tf.reuse.materialize import parse_budget

        try:
            parse_budget(value)
        except ConfigError as exc:
            self.fail(str(exc).removeprefix(f"{param.opts[0]} " if param else ""), param, ctx)
        return value


#: The type of a size option (``--budget``).
SIZE = _Size()


def one_value_per_key(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """The ``-p`` callback: a key given twice with different values is a usage error
    (exit 2) naming both, read before anything runs (the last one was kept silently)."""
    keys = [item.partition("=")[0].strip() for item in value]
    if len(set(keys)) == len(keys):  # the config module (numpy) only when one repeats:
        return value  # the first run reads its store with this parser before its fork
    from helix_tf.config import repeated_overrides

    problems = repeated_overrides(value)
    if problems:
        raise click.BadParameter("; ".join(problems), ctx, param)
    return value


def consoles(ctx: click.Context) -> tuple[Console, Console]:
    """The command's output and error consoles, made once per command line (so that the
    output console stays on standard output while ``--json`` sends prints elsewhere)."""
    obj = ctx.ensure_object(dict)
    if obj.get("out") is None:
        obj["out"] = Console(file=sys.stdout, soft_wrap=True)
    if obj.get("err") is None:
        obj["err"] = Console(file=sys.stderr, soft_wrap=True)
    return obj["out"], obj["err"]


@contextlib.contextmanager
def json_stdout(as_json: bool) -> Iterator[None]:
    """With ``--json``, standard output holds the one JSON value: what the config, its
    UDFs or a library print meanwhile goes to standard error. (A ``print`` in a config
    came first on standard output, and a script's ``json.loads`` of it failed.)

    The command's consoles are made first, so they stay on the real standard output.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        consoles(ctx)
    if not as_json:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def setup_logging(verbose: int, err: Console) -> None:
    from rich.logging import RichHandler

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    root.addHandler(handler)
    # Other libraries' warnings (e.g. Beam's "apitools not found" at import) are noise here.
    root.setLevel(logging.ERROR)
    logging.getLogger("helix_tf").setLevel(level)
    for noisy in ("absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # A remote store's client logs each retry with a traceback: those are debug detail;
    # the store's own error says what failed, once.
    for remote in ("gcsfs", "fsspec", "google", "aiohttp"):
        logging.getLogger(remote).setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)
    # Beam logs an operator's failure with a traceback before re-raising it; the CLI
    # reports the error itself, once, without the traceback.
    logging.getLogger("apache_beam").setLevel(logging.CRITICAL)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """The options every command shares, and the consoles it writes to."""

    config: str
    params: list[str]
    data_dir: str | None
    store: str | None
    metadata: str | None
    as_json: bool
    out: Console
    err: Console

    def where(self) -> dict[str, Any]:
        """The config's ``-p`` values and where its data, store and metadata are: the
        keyword arguments of ``helix_tf.run``, ``plan`` and the history functions."""
        return {
            "params": self.params,
            "data_dir": self.data_dir,
            "store": self.store,
            "metadata": self.metadata,
        }


def error_object(exc: BaseException | str, exit_code: int, *, context: str = "") -> dict[str, Any]:
    """What ``--json`` prints for a failed command: ``{"error": {...}}`` with the message
    standard error shows, the exit code, the error's kind, and where the error knows
    them the config file (``path``), each of its problems and the failing node.

    >>> error_object(ValueError("bad"), 1)
    {'error': {'type': 'ValueError', 'message': 'bad', 'exit_code': 1}}
    """
    message = str(exc) if not isinstance(exc, click.ClickException) else exc.format_message()
    found: dict[str, Any] = {
        "type": type(exc).__name__ if isinstance(exc, BaseException) else "Error",
        "message": f"{context}: {message}" if context else message,
        "exit_code": exit_code,
    }
    for field in ("path", "problems", "node"):
        value = getattr(exc, field, None)
        if value is not None:
            found[field] = list(value) if isinstance(value, list | tuple) else value
    return {"error": found}


def json_requested(ctx: click.Context | None = None) -> bool:
    """Whether the command being run was given ``--json`` (its own or a parent's option)."""
    ctx = ctx if ctx is not None else click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.params.get("as_json"):
            return True
        ctx = ctx.parent
    return False


def print_error_json(
    out: Console, exc: BaseException | str, exit_code: int, context: str = ""
) -> None:
    from helix_tf.json_output import json_text, print_json

    print_json(out, json_text(error_object(exc, exit_code, context=context), default=str))


def fail(err: Console, exc: BaseException | str, *, context: str = "", code: int = 1) -> NoReturn:
    """End the command with ``exc``: ``error: MESSAGE`` on ``err`` and exit status ``code``;
    with ``--json`` also :func:`error_object` on the command's output console."""
    message = f"{context}: {exc}" if context else str(exc)
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and json_requested(ctx):
        print_error_json(consoles(ctx)[0], exc, code, context)
    raise SystemExit(code)


def _asks_for_json(args: Sequence[str]) -> bool:
    """Whether a command line not yet parsed asks for ``--json`` (before any ``--``)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


class CommandGroup(click.Group):
    """The ``helix-tf`` group: a click error (usage, unknown option or command, a bad
    value) of a command line with ``--json`` also prints :func:`error_object` on
    standard output, like a command's own errors (:func:`fail`), and so does an
    unexpected exception (its traceback still goes to standard error)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["helix_tf.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if not _asks_for_json(ctx.meta.get("helix_tf.argv", ())):
                raise
            exc.show()
            print_error_json(consoles(ctx)[0], exc, exc.exit_code)
            raise SystemExit(exc.exit_code) from exc
        except click.exceptions.Abort:  # Ctrl-C: no result and no error, exit 130
            raise
        except Exception as exc:
            # A failure no command expected (a bug): its traceback still shows on standard
            # error, and a script reading --json gets an error, not an empty output.
            if _asks_for_json(ctx.meta.get("helix_tf.argv", ())):
                print_error_json(consoles(ctx)[0], exc, 1)
            raise


_common = [
    click.argument("config", type=click.Path(dir_okay=False)),
    click.option(
        "-p",
        "--param",
        "params",
        multiple=True,
        metavar="KEY=VALUE",
        callback=one_value_per_key,
        help="Override a parameter: a config PARAMS key (scale=10) or node.param "
        "(learner.l1=0.001); once per key.",
    ),
    click.option(
        "--data-dir",
        envvar="HELIX_TF_DATA",
        default=None,
        help="Folder holding census/, sms_spam/ and diamonds/ (default: ../shared/data if "
        "present; the example configs generate look-alike data where it is absent).",
    ),
    click.option(
        "--store",
        default=None,
        help="Artifact store URL: a folder or gs://bucket/prefix (default: .helix/ next to the config).",
    ),
    click.option(
        "--metadata",
        default=None,
        help="SQLAlchemy URL of the metadata database, e.g. postgresql://user@host/db for a "
        "team (default: HELIX_TF_METADATA, else helix_tf.toml above the config, else sqlite "
        "in the store folder).",
    ),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON instead of tables: one object (history: one list, an object per "
        "run, newest first).",
    ),
    click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug)."),
]


def common(fn: Any) -> Any:
    """Add the shared options; the command gets them as one :class:`Invocation`.

    Consoles come from the click context (tests capture them there) and logging is
    set up from ``-v`` before the command runs.
    """

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        out, err = consoles(click.get_current_context())
        setup_logging(kwargs.pop("verbose"), err)
        shared = {name: kwargs.pop(name) for name in ("config", "data_dir", "store", "metadata")}
        cmd = Invocation(
            **shared,
            params=list(kwargs.pop("params")),
            as_json=kwargs.pop("as_json"),
            out=out,
            err=err,
        )
        with json_stdout(cmd.as_json):
            return fn(cmd, **kwargs)

    for deco in reversed(_common):
        command = deco(command)
    return command


#: Handled by :func:`console_main` before the command runs (here for ``--help`` and parsing).
no_server = click.option(
    "--no-server",
    is_flag=True,
    help="Run in this process: do not use (or start) the warm helix-tf server.",
)


def approx_settings(
    approx: bool,
    sample: float | None,
    precision: str | None,
    epochs_scale: float | None = None,
    min_saving: float | None = None,
) -> Any:
    given = (sample, precision, epochs_scale, min_saving)
    if not (approx or any(v is not None for v in given)):
        return None
    from helix_tf.approx.settings import Approx

    defaults = Approx()
    return Approx(
        sample=sample if sample is not None else defaults.sample,
        precision=precision or defaults.precision,
        epochs_scale=epochs_scale if epochs_scale is not None else defaults.epochs_scale,
        min_saving_seconds=min_saving if min_saving is not None else defaults.min_saving_seconds,
    )
