"""Beam runners: the in-process runner locally, Dataflow at scale, portable job servers.

Local runs name the in-process ``FnApiRunner`` explicitly: the default
``DirectRunner`` of Beam 2.77 first tries to download a "Prism" binary, which
fails (slowly) without a network. Local runs use ONE worker: with
``direct_num_workers`` > 1 the DirectRunner was seen to drop rows silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from helix_tf.errors import ConfigError

__all__ = ["RUNNERS", "check_runner", "pipeline_factory"]

RUNNERS = ("direct", "dataflow", "portable")


def _has(args: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def check_runner(runner: str, args: Sequence[str], store_url: str) -> None:
    """Fail before anything runs when a runner cannot work with these options.

    A distributed runner's workers cannot read this machine's folders: Dataflow
    needs a ``gs://`` store (the portable runner with LOOPBACK runs here).
    """
    pipeline_factory(runner, args)
    if runner == "dataflow" and not store_url.startswith("gs://"):
        raise ConfigError(
            f"--runner dataflow needs a store its workers can reach, but got {store_url!r}; "
            "pass --store gs://bucket/prefix"
        )


def pipeline_factory(runner: str, args: Sequence[str] = ()) -> Callable[[], beam.Pipeline]:
    """A function that makes a fresh pipeline for ``runner`` with pass-through options.

    ``args`` are ordinary Beam pipeline options (``--project=P``, ``--region=R``,
    ``--temp_location=gs://…``, ``--job_endpoint=…``).
    """
    args = list(args)
    if runner == "direct":
        if _has(args, "--direct_num_workers"):
            raise ConfigError(
                "--direct_num_workers is fixed to 1: the DirectRunner with several workers was "
                "seen to lose rows (Beam 2.77). Use --runner portable or dataflow for parallelism"
            )

        def make() -> beam.Pipeline:
            from apache_beam.runners.portability.fn_api_runner import FnApiRunner

            opts = PipelineOptions([*args, "--direct_num_workers=1"])
            return beam.Pipeline(runner=FnApiRunner(), options=opts)

        return make
    if runner == "portable":
        extra = []
        if not _has(args, "--job_endpoint"):
            extra.append("--job_endpoint=embed")
        if not _has(args, "--environment_type"):
            extra.append("--environment_type=LOOPBACK")

        def make_portable() -> beam.Pipeline:
            return beam.Pipeline(runner="PortableRunner", options=PipelineOptions([*args, *extra]))

        return make_portable
    if runner == "dataflow":
        missing = [f for f in ("--project", "--region", "--temp_location") if not _has(args, f)]
        if missing:
            raise ConfigError(
                f"--runner dataflow needs {', '.join(missing)}: pass them as "
                "--project P --region R and a gs:// --store (temp_location defaults to it)"
            )

        def make_dataflow() -> beam.Pipeline:
            return beam.Pipeline(runner="DataflowRunner", options=PipelineOptions(args))

        return make_dataflow
    raise ConfigError(f"unknown runner {runner!r}; expected one of {', '.join(RUNNERS)}")
