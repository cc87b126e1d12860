"""A Dataflow job built offline (issue 14): the dry run's pipeline proto, every pickled
DoFn loaded where helix_tf comes only from the staged package, and the full job
description with staging redirected to a local folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

from helix_tf import api
from helix_tf.engine import runners
from tests.scaleout.conftest import GCS_BUCKET

_ARGS = [
    "--project=helix-project",
    "--region=europe-west4",
    f"--temp_location=gs://{GCS_BUCKET}/beam-temp",
    "--dry_run=True",
]


def _built(config: Path, tmp_path: Path, extra: list[str] = ()) -> Any:  # type: ignore[assignment]
    with pytest.raises(runners.JobBuilt, match="not submitted") as caught:
        api.run(
            config,
            store=f"gs://{GCS_BUCKET}/dry",
            metadata=str(tmp_path / "meta.db"),
            runner="dataflow",
            pipeline_args=[*_ARGS, *extra],
        )
    return caught.value.job


def _payloads(proto: beam_runner_api_pb2.Pipeline) -> dict[str, bytes]:
    """Every pickled user function of the pipeline: ParDo DoFns and CombineFns."""
    found = {}
    for tid, t in proto.components.transforms.items():
        urn = t.spec.urn
        if urn == common_urns.primitives.PAR_DO.urn:
            fn = beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload).do_fn
        elif urn in (
            common_urns.composites.COMBINE_PER_KEY.urn,
            common_urns.composites.COMBINE_GLOBALLY.urn,
        ):
            fn = beam_runner_api_pb2.CombinePayload.FromString(t.spec.payload).combine_fn
        else:
            continue
        if fn.urn == "beam:dofn:pickled_python_info:v1" or fn.urn.endswith("pickled_python"):
            found[t.unique_name or tid] = fn.payload
    return found


def _staged_sdist(proto: beam_runner_api_pb2.Pipeline) -> Path:
    for env in proto.components.environments.values():
        for dep in env.dependencies:
            path = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
            if path.endswith(".tar.gz"):
                return Path(path)
    raise AssertionError("no sdist is staged for the workers")


_LOADER = """
import json, pathlib, sys
import helix_tf
assert helix_tf.__file__.startswith(sys.argv[1]), helix_tf.__file__
from apache_beam.internal import pickler
folder = pathlib.Path(sys.argv[2])
failed = {}
for f in sorted(folder.iterdir()):
    try:
        pickler.loads(f.read_bytes())
    except Exception as exc:
        failed[f.name] = repr(exc)
print(json.dumps({"loaded": len(list(folder.iterdir())) - len(failed), "failed": failed}))
"""


@pytest.mark.slow
@pytest.mark.ci
def test_dry_run_builds_a_job_whose_every_dofn_loads_from_the_staged_package(
    udf_census_config: Path, gcs_emulator: str, tmp_path: Path
) -> None:
    job = _built(udf_census_config, tmp_path)
    proto = job.proto_pipeline
    names = {t.unique_name for t in proto.components.transforms.values()}
    for step in ("Read[rows]", "Stats0[rows]", "Compute[rows]", "Spread[rows]", "States[rows]"):
        assert any(n == step or n.startswith(step + "/") for n in names), (step, sorted(names))
    (env,) = [e for e in proto.components.environments.values() if e.urn]
    assert env.urn == common_urns.environments.DOCKER.urn
    image = beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
    assert image.endswith(f"beam_python3.{sys.version_info[1]}_sdk:{beam.__version__}"), image

    payloads = _payloads(proto)
    assert len(payloads) >= 8, sorted(payloads)
    folder = tmp_path / "payloads"
    folder.mkdir()
    for i, blob in enumerate(payloads.values()):
        (folder / f"{i:03d}").write_bytes(blob)
    # helix_tf only from the package the workers get (no config module, no source tree).
    sdist = _staged_sdist(proto)
    with tarfile.open(sdist) as tar:
        assert any(m.name.endswith("helix_tf/engine/beam_pipeline.py") for m in tar.getmembers())
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(sdist),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    env_vars = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env_vars["PYTHONPATH"] = str(target)
    done = subprocess.run(
        [sys.executable, "-c", _LOADER, str(target), str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env_vars,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"loaded": len(payloads), "failed": {}}


@pytest.mark.slow
def test_the_full_job_description_is_written_offline(
    tiny_census_config: Path, gcs_emulator: str, tmp_path: Path
) -> None:
    """Staging redirected to a local folder: the sdist and the pipeline are staged there and
    the job names the worker image, the packages and the options."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    from apache_beam.runners.dataflow.internal import apiclient

    image = f"europe-west4-docker.pkg.dev/helix-project/helix/helix-tf:{beam.__version__}"
    job = _built(
        tiny_census_config,
        tmp_path,
        [f"--sdk_container_image={image}", "--no_auth", "--job_name=helix-census"],
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    options = job.options.view_as(GoogleCloudOptions)
    options.staging_location = str(staging)
    job.google_cloud_options.staging_location = str(staging)
    client = apiclient.DataflowApplicationClient(job.options, str(staging))
    client.create_job_description(job)
    (tmp_path / "job.json").write_text(job.json(), encoding="utf-8")
    described = json.loads((tmp_path / "job.json").read_text())
    text = json.dumps(described)
    assert image in text
    staged = sorted(p.name for p in staging.iterdir())
    assert "pipeline.pb" in staged, staged
    # The image carries helix_tf: nothing else is staged for the workers to install.
    assert not [n for n in staged if n.endswith(".tar.gz")], staged
    env = described["environment"]
    opts = env["sdkPipelineOptions"]["options"]
    assert opts["project"] == "helix-project" and opts["region"] == "europe-west4"
    assert opts["sdk_container_image"] == image
    assert opts["temp_location"].startswith(f"gs://{GCS_BUCKET}/beam-temp")
    assert described["name"] == "helix-census"
