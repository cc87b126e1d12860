"""Beam runners: regression tests for the Beam 2.77 hazards.

(a) The local runner is the in-process FnApiRunner: Beam's default DirectRunner first tries
    to download a "Prism" binary (slow, fails offline). Several local workers were seen to
    drop rows, so ``--direct_num_workers`` is refused.
(c) The portable runner path (embedded job server, LOOPBACK workers) works offline.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.runners.portability import prism_runner
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from helix_tf import api
from helix_tf.engine import runners, tables
from helix_tf.engine.runners import pipeline_factory
from helix_tf.errors import ConfigError
from helix_tf.reuse.store import ArtifactStore


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any attempt to reach the network (loopback stays allowed) or to start Prism.

    Every attempt is also recorded and the test fails at its end if there was one, even
    when the code under test swallowed the error (a retry loop would wait minutes
    offline: counting attempts tells that apart on any machine, a stopwatch does not).
    """
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo
    attempts: list[str] = []

    def remote(host: Any) -> bool:
        if not isinstance(host, str):
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host != "localhost"

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if remote(host):
            attempts.append(f"connect {address!r}")
            raise AssertionError(f"a test tried to reach the network: {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if remote(host):
            attempts.append(f"resolve {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"offline test: {host!r} not resolved")
        return real_getaddrinfo(host, *args, **kwargs)

    def no_prism(*args: Any, **kwargs: Any) -> Any:
        attempts.append("start Prism")
        raise AssertionError("the Prism runner was started")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(prism_runner.PrismRunner, "default_job_server", no_prism)
    monkeypatch.setattr(prism_runner, "urlopen", no_prism)
    yield
    assert not attempts, f"the test tried to reach the network: {attempts}"


def test_local_runner_is_the_in_process_fn_api_runner(offline: None) -> None:
    pipeline = pipeline_factory("direct")()
    assert isinstance(pipeline.runner, FnApiRunner)
    assert (
        pipeline.options.view_as(beam.options.pipeline_options.DirectOptions).direct_num_workers
        == 1
    )
    with pipeline as p:
        assert_that(p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2), equal_to([2, 4, 6]))


def test_each_call_makes_a_fresh_pipeline() -> None:
    make = pipeline_factory("direct", ["--job_name=helix"])
    assert make() is not make()


@pytest.mark.parametrize(
    "args", [["--direct_num_workers=2"], ["--direct_num_workers", "2"]], ids=["eq", "space"]
)
def test_several_local_workers_are_refused(args: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"--direct_num_workers is fixed to 1"):
        pipeline_factory("direct", args)


def test_several_local_workers_are_refused_by_a_run(tiny_census_config: Path, store: str) -> None:
    with pytest.raises(ConfigError, match="direct_num_workers"):
        api.run(tiny_census_config, store=store, pipeline_args=["--direct_num_workers=2"])
    assert ArtifactStore(store).entries() == []


def test_unknown_runner_and_incomplete_dataflow_options() -> None:
    with pytest.raises(ConfigError, match=r"unknown runner 'dask'; expected one of direct"):
        pipeline_factory("dask")
    with pytest.raises(ConfigError, match=r"--runner dataflow needs --project, --region"):
        pipeline_factory("dataflow", ["--temp_location=gs://b/t"])


def test_portable_runner_defaults_to_an_embedded_loopback_job_server() -> None:
    from apache_beam.options.pipeline_options import PortableOptions

    pipeline = pipeline_factory("portable")()
    options = pipeline.options.view_as(PortableOptions)
    assert options.job_endpoint == "embed"
    assert options.environment_type == "LOOPBACK"
    explicit = pipeline_factory("portable", ["--job_endpoint=localhost:8099"])()
    assert explicit.options.view_as(PortableOptions).job_endpoint == "localhost:8099"


def test_runner_module_names_every_runner() -> None:
    assert runners.RUNNERS == ("direct", "dataflow", "portable", "flink", "spark")


@pytest.mark.slow
@pytest.mark.ci
def test_portable_runner_runs_a_workflow_offline_as_the_local_runner_does(
    tiny_census_config: Path, store: str, offline: None
) -> None:
    """Same workflow, fresh stores, two runners: the same fingerprints, rows, examples
    and metrics, to the bit (the runner is not part of any result)."""
    portable = api.run(
        tiny_census_config, store=store + "-portable", runner="portable", materialize="all"
    )
    local = api.run(tiny_census_config, store=store + "-local", runner="direct", materialize="all")
    for result in (portable, local):
        assert {n.state for n in result.nodes} == {"compute"}
    rows = {n.name: n.rows for n in portable.nodes}
    assert rows["rows"] == rows["examples"] == 900
    assert rows["learner"] == 600 and rows["predictions"] == 300
    assert rows == {n.name: n.rows for n in local.nodes}
    fingerprints = {n.name: n.fingerprint for n in portable.nodes}
    assert fingerprints == {n.name: n.fingerprint for n in local.nodes}
    assert _examples(store + "-portable", fingerprints["examples"]) == _examples(
        store + "-local", fingerprints["examples"]
    )
    assert set(portable.metrics) == {"accuracy", "auc"}
    assert portable.metrics == local.metrics


def _examples(store: str, fingerprint: str) -> dict[str, Any]:
    """Both splits of a stored examples artifact, as Python lists per column."""
    artifacts = ArtifactStore(store)
    manifest = artifacts.lookup(fingerprint)
    assert manifest is not None, "the examples were not kept"
    local = artifacts.open_local(manifest)
    assert local is not None
    found = {split: tables.read_split(local, split) for split in ("train", "test")}
    return {split: t.to_pydict() for split, t in found.items() if t is not None}


# ---------------------------------------------------------------------------- issue 14

_GOOD = ["--project=my-project", "--region=us-central1", "--temp_location=gs://my-bucket/tmp"]


@pytest.mark.parametrize(
    ("args", "store", "message"),
    [
        (
            [*_GOOD[:2], "--temp_location=/tmp/beam"],
            "gs://b-ok/s",
            r"--temp_location must be a gs://",
        ),
        (
            [*_GOOD[:2], "--temp_location=gs://My_Bucket/t"],
            "gs://b-ok/s",
            r"invalid bucket 'My_Bucket'",
        ),
        ([*_GOOD[:2], "--temp_location=gs://ab/t"], "gs://b-ok/s", r"invalid bucket 'ab'"),
        ([*_GOOD[:2], "--temp_location=gs://google-x/t"], "gs://b-ok/s", r"contain 'google'"),
        ([*_GOOD, "--staging_location=C:/stage"], "gs://b-ok/s", r"--staging_location must be"),
        (_GOOD, "gs://-bad/s", r"--store 'gs://-bad/s' names an invalid bucket"),
        (_GOOD, "/tmp/store", r"--store must be a gs://"),
        (
            ["--region=us-central1", "--temp_location=gs://b-ok/t"],
            "gs://b-ok/s",
            r"needs --project",
        ),
        (["--project=My Project", *_GOOD[1:]], "gs://b-ok/s", r"not a Google Cloud project id"),
        ([_GOOD[0], "--region=central", _GOOD[2]], "gs://b-ok/s", r"not a Google Cloud region"),
        (
            [*_GOOD, "--sdk_container_image=apache/beam_python3.11_sdk:2.60.0"],
            "gs://b-ok/s",
            r"has Beam 2\.60\.0, but this Beam is",
        ),
        (
            [*_GOOD, "--sdk_container_image=apache/beam_python3.9_sdk:" + beam.__version__],
            "gs://b-ok/s",
            r"runs Python 3\.9",
        ),
        (
            [*_GOOD, "--setup_file=/nowhere/setup.py"],
            "gs://b-ok/s",
            r"--setup_file .* does not exist",
        ),
    ],
    ids=[
        "local-temp",
        "uppercase-bucket",
        "short-bucket",
        "google-bucket",
        "local-staging",
        "bad-store-bucket",
        "local-store",
        "no-project",
        "project-name",
        "bad-region",
        "image-beam-version",
        "image-python-version",
        "missing-setup-file",
    ],
)
def test_dataflow_options_are_refused_offline_before_beam_tries_the_network(
    args: list[str], store: str, message: str, offline: None
) -> None:
    """Beam itself hangs ~120 s offline on a non-gs:// or invalid temp location (it tries
    to create a default bucket); helix_tf refuses such options before Beam sees them."""
    with pytest.raises(ConfigError, match=message):
        runners.check_runner("dataflow", args, store)


def test_dataflow_problems_are_reported_together() -> None:
    problems = runners.dataflow_problems(
        ["--project=X", "--region=us-central1", "--temp_location=/t"], "/s"
    )
    assert len(problems) == 3, problems


def test_valid_dataflow_options_pass_and_ship_helix_tf(offline: None) -> None:
    runners.check_runner("dataflow", _GOOD, "gs://my-bucket.example-1/store")
    image = runners.worker_image()
    runners.check_runner("dataflow", [*_GOOD, f"--sdk_container_image={image}"], "gs://b-ok/s")
    # --dry_run: building the Pipeline otherwise asks GCS for the temp bucket's
    # soft-delete policy (Beam's own check), which offline retries for ~100 s.
    dry = [*_GOOD, "--dry_run=True"]
    pipeline = pipeline_factory("dataflow", dry)()
    from apache_beam.options.pipeline_options import SetupOptions

    # No image named: helix_tf's own package ships the code (the fallback).
    (package,) = pipeline.options.view_as(SetupOptions).extra_packages
    assert package.endswith(".tar.gz") and Path(package).is_file()
    imaged = pipeline_factory("dataflow", [*dry, f"--sdk_container_image={image}"])()
    assert not imaged.options.view_as(SetupOptions).extra_packages


def _tree(root: Path) -> dict[str, int]:
    """The entries beside setup.py (where setup.py sdist wrote helix_tf.egg-info) and the
    package's files, by modification time (not bytecode)."""
    paths = [*root.iterdir(), *(root / "helix_tf").rglob("*")]
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in paths
        if "__pycache__" not in p.parts and not p.name.endswith(".pyc")
    }


def test_shipping_helix_tf_to_dataflow_leaves_the_project_and_the_next_plan_unchanged(
    offline: None, tmp_path: Path, tiny_census_config: Path
) -> None:
    """Beam's --setup_file ran setup.py sdist in the source tree, which wrote
    helix_tf.egg-info there: on the import path, a change of what is installed, so the
    next run read helix_tf's identity anew and recomputed once. The package is built in a
    copy now; Beam's staging of the job's resources (what a submission does) reads it."""
    from apache_beam.portability.api import beam_runner_api_pb2
    from apache_beam.runners.portability.stager import Stager

    from helix_tf._installed import path_state

    def plan() -> dict[str, tuple[str, str]]:
        nodes = api.plan(tiny_census_config, store=str(tmp_path / "store")).nodes
        return {d.name: (d.fingerprint, d.state) for d in nodes}

    root = Path(runners.__file__).resolve().parents[2]
    planned = plan()  # (puts the config's folder on the path)
    before, state = _tree(root), path_state()
    pipeline = pipeline_factory("dataflow", [*_GOOD, "--dry_run=True"])()
    staged = tmp_path / "staged"
    staged.mkdir()
    resources = Stager.create_job_resources(pipeline.options, str(staged))
    role = beam_runner_api_pb2.ArtifactStagingToRolePayload
    names = [role.FromString(r.role_payload).staged_name for r in resources]
    assert any(n.endswith(".tar.gz") for n in names), names
    assert _tree(root) == before and path_state() == state
    assert plan() == planned


def test_the_worker_dockerfile_builds_on_the_matching_beam_image() -> None:
    """deploy/Dockerfile's base image is this Beam on this Python (a Beam upgrade must
    update it: the SDK harness must match the SDK that built the job)."""
    text = runners.DOCKERFILE.read_text(encoding="utf-8")
    bases = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert runners.worker_image() in bases, bases
    assert "pip install" in text and ".[" not in text.split("pip install", 1)[1].split("\n")[0]


@pytest.mark.parametrize(
    ("runner", "flag"),
    [("flink", "--flink_job_server_jar"), ("spark", "--spark_job_server_jar")],
)
def test_flink_and_spark_without_a_job_server_jar_fail_at_once(
    runner: str, flag: str, tmp_path: Path, offline: None
) -> None:
    """Without a jar Beam would download one from Maven (no network here: a hang)."""
    with pytest.raises(
        ConfigError, match=rf"needs Beam's .* job server: pass --beam-option={flag}"
    ):
        runners.check_runner(runner, [], "")
    with pytest.raises(ConfigError, match=rf"{flag} '/no/such.jar' does not exist"):
        runners.check_runner(runner, [f"{flag}=/no/such.jar"], "")
    jar = tmp_path / "job-server.jar"
    jar.write_bytes(b"")
    runners.check_runner(runner, [f"{flag}={jar}"], "")  # a jar given: accepted
    runners.check_runner(runner, ["--job_endpoint=localhost:8099"], "")  # a running server
