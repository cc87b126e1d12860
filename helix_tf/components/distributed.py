"""Training beyond one process: a custom training loop under a ``tf.distribute`` strategy.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585), so a learner with a ``strategy`` trains with this loop
instead. It is synchronous data parallelism: every step takes one *global*
batch (``batch_size`` rows, the same rows in the same order on every worker,
from a seeded permutation), splits it into one slice per replica, and each
replica's loss is its slice's summed loss divided by the global batch's rows,
so the all-reduced (summed) gradient is the gradient of the mean loss over the
global batch: the same step as one process takes, up to the order of
floating-point sums. ``ParameterServerStrategy`` (asynchronous) is not offered:
its weights differ from run to run, which fingerprinted results cannot allow.

Strategies (the learner's ``strategy`` parameter):

``one-device``
    This loop on one device (a GPU when there is one).
``mirrored``
    Every local GPU (or the CPU when there is none), one replica each.
``multi-worker``
    Every worker named by the ``TF_CONFIG`` environment variable (Vertex AI and
    Kubeflow's TFJob set it); run the same training on every worker.

Inputs come as global batches from a :class:`Batches` source: arrays in memory,
or, for examples larger than :data:`STREAM_BYTES`, Parquet batches streamed from
the stored examples (:class:`ParquetBatches`), one file at a time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from helix_tf._env import env_seconds
from helix_tf.components._scaling import power_of_two
from helix_tf.components.learners import STRATEGIES
from helix_tf.errors import ConfigError, ExecutionError

log = logging.getLogger(__name__)

__all__ = [
    "STRATEGIES",
    "STREAM_BYTES",
    "ArrayBatches",
    "Batches",
    "ClusterTask",
    "ParquetBatches",
    "WORKER_TIMEOUT",
    "WORKER_TIMEOUT_ENV",
    "cluster_task",
    "make_strategy",
    "target_scale",
    "train_loop",
    "worker_timeout",
]

#: Examples whose training Parquet files exceed this many bytes stream from disk instead
#: of being read into one array. Measured on census x10 examples (325,610 rows, 8
#: features): 1.4 MB of Parquet (3.3 MB before session 11's encoding, which is why this
#: was 256 MiB: ``compiler._identity.STREAMING_RULE``) become 13.7 MB as an Arrow table
#: plus 11.7 MB of model arrays, ~18x; 100 MiB of Parquet (the x1000 census, 32M rows,
#: is ~140 MB) would hold ~1.8 GB at once in one process before Keras copies it.
STREAM_BYTES = 100 * 2**20  # $HELIX_TF_STREAM_BYTES overrides it (learners.training_setting)

Batch = tuple[dict[str, np.ndarray], np.ndarray]


#: Seconds a multi-worker training waits to connect to the other workers of
#: ``TF_CONFIG`` (and a run's workers wait for each other's plan: :mod:`helix_tf._workers`).
WORKER_TIMEOUT_ENV = "HELIX_TF_WORKER_TIMEOUT"
#: The default of :data:`WORKER_TIMEOUT_ENV`.
WORKER_TIMEOUT = 600.0
#: The task types that train (TensorFlow's own rule: ``chief`` and ``worker``).
TRAINING_TASKS = ("chief", "worker")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClusterTask:
    """This process's task in a ``TF_CONFIG`` cluster description."""

    #: ``"chief"`` or ``"worker"``.
    task_type: str
    index: int
    #: Task type → addresses, as ``TF_CONFIG`` names them (training tasks only).
    cluster: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def name(self) -> str:
        """``"worker 1"``: how messages name this task."""
        return f"{self.task_type} {self.index}"

    @property
    def tasks(self) -> tuple[str, ...]:
        """Every training task of the cluster by name, the chief first."""
        jobs = dict(self.cluster)
        return tuple(f"{t} {i}" for t in TRAINING_TASKS for i in range(len(jobs.get(t, ()))))

    @property
    def chief_name(self) -> str:
        """TensorFlow's chief: the ``chief`` task if there is one, else ``worker 0``."""
        return self.tasks[0]

    @property
    def is_chief(self) -> bool:
        return self.name == self.chief_name


def cluster_task(raw: str | None = None) -> ClusterTask:
    """This process's task from ``TF_CONFIG`` (``raw``, default the environment variable).

    Raises :class:`ConfigError` naming what is wrong: unset, not JSON, no workers, a task
    that is not one of the cluster's training tasks.
    """
    raw = os.environ.get("TF_CONFIG") if raw is None else raw
    if not raw:
        raise ConfigError(
            "strategy='multi-worker' needs the TF_CONFIG environment variable naming the "
            'workers, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}} (Vertex AI and Kubeflow set it)'
        )
    try:
        spec = json.loads(raw)
        jobs = {
            t: tuple(str(a) for a in spec["cluster"][t])
            for t in TRAINING_TASKS
            if t in spec["cluster"]
        }
        task_type, index = str(spec["task"]["type"]), int(spec["task"]["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"TF_CONFIG is not a cluster description with workers and this task ({exc!r}): "
            f"{raw[:200]!r}"
        ) from None
    if not jobs.get("worker") and not jobs.get("chief"):
        raise ConfigError(f"TF_CONFIG names no chief or worker tasks: {raw[:200]!r}")
    if task_type not in TRAINING_TASKS or not 0 <= index < len(jobs.get(task_type, ())):
        raise ConfigError(
            f"TF_CONFIG's task {task_type} {index} is not a training task of its cluster "
            f"({', '.join(f'{t} x{len(a)}' for t, a in jobs.items())}): helix_tf trains on "
            "chief and worker tasks only (no parameter servers, no evaluator)"
        )
    return ClusterTask(task_type=task_type, index=index, cluster=tuple(sorted(jobs.items())))


def worker_timeout() -> float:
    """:data:`WORKER_TIMEOUT_ENV` in seconds (default :data:`WORKER_TIMEOUT`)."""
    return env_seconds(WORKER_TIMEOUT_ENV, WORKER_TIMEOUT)


def make_strategy(name: str) -> Any:
    """The ``tf.distribute`` strategy named ``name`` (one of :data:`STRATEGIES`)."""
    import tensorflow as tf

    if name == "one-device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return _connect(cluster_task(), worker_timeout())
    raise ConfigError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def _connect(task: ClusterTask, timeout: float) -> Any:
    """``MultiWorkerMirroredStrategy`` over ``task``'s cluster, connected within ``timeout``.

    TensorFlow waits for every worker without end by itself, holding the interpreter
    (no Python thread or signal handler runs; SIGTERM is not answered). Bounded twice:
    the coordination service's registration timeout (a task whose chief never comes
    fails with DeadlineExceeded after ``timeout``), and a sentinel process for the chief,
    which TensorFlow keeps waiting regardless: past ``timeout`` + 30 s, if this process
    is still its parent and still waiting, it writes what was waited for to stderr and
    kills this process (SIGKILL: nothing else ends that wait).
    """
    import tensorflow as tf

    _bound_registration(task, timeout)
    waited = ", ".join(t for t in task.tasks if t != task.name)
    message = (
        f"{task.name} of TF_CONFIG waited {timeout:.0f}s for {waited} to connect for "
        f"multi-worker training and gave up: start the same `helix-tf run` (same config, "
        f"parameters and --store) on every worker of TF_CONFIG ({WORKER_TIMEOUT_ENV} sets "
        "the wait)"
    )
    sentinel = subprocess.Popen(
        [sys.executable, "-c", _SENTINEL, str(timeout + 30.0), str(os.getpid()), message],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.DeadlineExceededError as exc:
        raise ExecutionError(message) from exc
    finally:
        sentinel.kill()
        sentinel.wait()


#: The sentinel of :func:`_connect`: sleeps, then ends its parent if it is still there.
_SENTINEL = """\
import os, signal, sys, time
time.sleep(float(sys.argv[1]))
if os.getppid() == int(sys.argv[2]):
    sys.stderr.write("ERROR helix_tf: " + sys.argv[3] + "; ending the process\\n")
    sys.stderr.flush()
    os.kill(int(sys.argv[2]), signal.SIGKILL)
"""


def _bound_registration(task: ClusterTask, timeout: float) -> None:
    """Configure TensorFlow's coordination service as ``MultiWorkerMirroredStrategy``
    would, with a registration timeout (its own default is to wait an hour or more)."""
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.eager import context
    except ImportError:  # another TensorFlow layout: its defaults apply
        return
    ctx = context.context()
    if ctx.coordination_service is not None:
        return
    jobs = dict(task.cluster)
    leader = "chief" if jobs.get("chief") else "worker"
    ctx.configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{leader}/replica:0/task:0",
        cluster_register_timeout_in_ms=int(timeout * 1000),
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=t, num_tasks=len(a))
            for t, a in task.cluster
        ],
    )


class Batches:
    """Global batches for one epoch, the same on every worker."""

    rows: int

    def epoch(self, epoch: int) -> Iterator[Batch]:
        raise NotImplementedError


class ArrayBatches(Batches):
    """Global batches from arrays in memory: a seeded permutation of the rows per epoch."""

    def __init__(
        self, x: Mapping[str, np.ndarray], y: np.ndarray, *, batch_size: int, seed: int
    ) -> None:
        self.x, self.y, self.batch_size, self.seed = dict(x), np.asarray(y), batch_size, seed
        self.rows = len(self.y)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
        for start in range(0, self.rows, self.batch_size):
            idx = order[start : start + self.batch_size]
            yield {k: v[idx] for k, v in self.x.items()}, self.y[idx]


class ParquetBatches(Batches):
    """Global batches streamed from Parquet files: never more than one file and one
    batch in memory.

    Per epoch the files come in a seeded order and each file's rows in a seeded
    order; batches run across file boundaries. ``convert(table)`` turns a table
    into (inputs, labels).
    """

    def __init__(
        self,
        files: Sequence[str],
        convert: Callable[[Any], Batch],
        *,
        rows: int,
        batch_size: int,
        seed: int,
        scale: tuple[float, float] | None = None,
    ) -> None:
        self.files, self.convert, self.rows = list(files), convert, rows
        self.batch_size, self.seed = batch_size, seed
        #: A regression's (mean, std) of the target over all rows; ``convert`` gives
        #: the target standardised with them.
        self.scale = scale

    def epoch(self, epoch: int) -> Iterator[Batch]:
        import pyarrow.parquet as pq

        rng = np.random.default_rng([self.seed, epoch])
        pending: list[Batch] = []
        count = 0
        for i in rng.permutation(len(self.files)):
            x, y = self.convert(pq.read_table(self.files[i]))
            order = rng.permutation(len(y))
            pending.append(({k: v[order] for k, v in x.items()}, y[order]))
            count += len(y)
            while count >= self.batch_size:
                batch, pending = _take(pending, self.batch_size)
                count -= self.batch_size
                yield batch
        if count:
            yield _take(pending, count)[0]


def target_scale(
    files: Sequence[str], target: Callable[[Any], np.ndarray], columns: Sequence[str]
) -> tuple[float, float]:
    """Mean and standard deviation of a regression target over every row of ``files``.

    One file at a time (only ``columns`` read; ``target(table)`` gives the target),
    merged in float64 by Chan et al.'s pairwise update, so memory holds one file's
    target, never the split's. A constant target has std 1 (as in memory). Past 2**500
    the sums are kept in units of a power of two (as ``_scaling.target_spread`` does).
    """
    import pyarrow.parquet as pq

    n, mean, m2, scale = 0, 0.0, 0.0, 1.0
    for path in files:
        values = np.asarray(target(pq.read_table(path, columns=list(columns))), np.float64)
        k = len(values)
        if not k:
            continue
        wider = power_of_two(values)
        if wider > scale:  # rescale what is summed so far (powers of two: exact)
            mean, m2, scale = mean * (scale / wider), m2 * (scale / wider) ** 2, wider
        values = values / scale if scale != 1.0 else values
        k_mean = float(values.mean())
        k_m2 = float(((values - k_mean) ** 2).sum())
        delta = k_mean - mean
        total = n + k
        mean += delta * k / total
        m2 += k_m2 + delta * delta * n * k / total
        n = total
    std = float(np.sqrt(m2 / n)) * scale if n else 1.0
    return (mean * scale if n else 0.0), (std if std > 0 else 1.0)


def _take(parts: list[Batch], n: int) -> tuple[Batch, list[Batch]]:
    """The first ``n`` rows of ``parts`` as one batch, and the rest."""
    keys = list(parts[0][0])
    xs: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    ys: list[np.ndarray] = []
    need = n
    while need:
        x, y = parts[0]
        take = min(need, len(y))
        for k in keys:
            xs[k].append(x[k][:take])
        ys.append(y[:take])
        if take == len(y):
            parts = parts[1:]
        else:
            parts = [({k: v[take:] for k, v in x.items()}, y[take:]), *parts[1:]]
        need -= take
    return ({k: _concat(v) for k, v in xs.items()}, np.concatenate(ys)), parts


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate rows; a bag's arrays, padded per file to its widest row, are zero-padded
    to the widest (index 0 with value 0 adds nothing, as :func:`helix_tf.components._model_inputs._padded`)."""
    if arrays[0].ndim == 2 and len({a.shape[1] for a in arrays}) > 1:
        width = max(a.shape[1] for a in arrays)
        arrays = [np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in arrays]
    return np.concatenate(arrays)


def train_loop(
    strategy_name: str,
    *,
    build: Callable[[], tuple[Any, Any]],
    per_example_loss: Callable[[Any, Any], Any],
    batches: Batches,
    epochs: int,
    on_epoch: Callable[[int, int, float, float], None] | None = None,
) -> tuple[Any, list[float]]:
    """Train under the strategy; returns the model and each epoch's mean training loss.

    ``build()`` makes ``(model, optimizer)`` (called inside the strategy's scope);
    ``per_example_loss(y, outputs)`` gives one loss per row.
    """
    import tensorflow as tf

    strategy = make_strategy(strategy_name)
    replicas = int(strategy.num_replicas_in_sync)
    with strategy.scope():
        model, optimizer = build()
        optimizer.build(model.trainable_variables)

    @tf.function(reduce_retracing=True)
    def step(x: Any, y: Any, n_global: Any) -> Any:
        def replica_step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                out = model(x, training=True)
                per_row = tf.cast(per_example_loss(y, out), tf.float32)
                loss = tf.reduce_sum(per_row) / n_global
                if model.losses:  # regularization: added once over all replicas
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        losses = strategy.run(replica_step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    history: list[float] = []
    started = time.perf_counter()
    for epoch in range(epochs):
        total, rows = 0.0, 0
        for x, y in batches.epoch(epoch):
            n = len(y)
            cuts = np.array_split(np.arange(n), replicas)

            def value(ctx: Any, arr: np.ndarray, cuts: list[np.ndarray] = cuts) -> Any:
                return tf.constant(arr[cuts[ctx.replica_id_in_sync_group]])

            xd = {
                k: strategy.experimental_distribute_values_from_function(
                    lambda ctx, v=v: value(ctx, v)
                )
                for k, v in x.items()
            }
            yd = strategy.experimental_distribute_values_from_function(
                lambda ctx, y=y: value(ctx, y)
            )
            loss = float(step(xd, yd, tf.constant(float(n))))
            total += loss * n
            rows += n
        history.append(total / max(rows, 1))
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, history[-1], time.perf_counter() - started)
    return model, history
