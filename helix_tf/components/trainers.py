"""Built and traced Keras trainers, kept per process and reused by later trainings.

Building a model, compiling it and tracing its train step costs ~1–1.5 s, five or
more times an epoch over census ×1. A long-lived process (the warm server, agent
trials) trains the same architecture again and again with another learning rate or
number of epochs; :data:`TRAINERS` keeps each compiled model with its traced
``train_function`` so the next such training skips build and tracing.

**A reused trainer gives the same bits as a fresh process.** The cache key
(:func:`graph_key`) holds everything that shapes the graph: the learner's class and
every parameter except those fed at run time (:data:`RUN_TIME_PARAMS`: the
learning rate, a variable of the optimizer; ``l1`` and ``l2``, variables the
regularizers and FTRL read (:mod:`helix_tf.components.penalties`), of which only
whether each is 0 shapes the graph; epochs and batch size, arguments of ``fit``),
the features (names, kinds, sizes), the head (task, classes, loss), the
dtype policy and eager or traced. The seed is part of the key, and at build time the
trainer records its initial state: every model and optimizer variable and the state
of the random generators (Python's, numpy's, TensorFlow's eager op seeds) right
before the first ``fit``. A reuse puts all of it back and sets the learning rate and
the penalty strengths, so the ``fit`` that follows
starts from exactly where a fresh build would have started.

**A trainer never escapes.** The model a training returns is a copy (a plain model
of the same architecture holding the trained weights, ~0.1 s); the trainer goes
back to the cache, so a later training cannot change a model a run or a user holds.
A trainer is taken out while it trains: two trainings at once with one key each get
their own.

API for long-lived callers (agent trials in one process, notebooks): call
``TRAINERS.keep(4)`` once; every
:func:`helix_tf.components.keras_models.train_model` in the process then shares
:data:`TRAINERS`. A plain process keeps none (it would pay the copy, ~0.1–0.5 s, for
nothing) and returns the trained model itself. ``TRAINERS.clear()`` drops every
trainer (memory), ``TRAINERS.stats()`` counts builds and reuses, and
``HELIX_TF_TRAINERS=N`` overrides how many are kept (least recently used go first; 0
turns reuse off). Served runs train in the server's trainer process
(:mod:`helix_tf.server._trainer`), which keeps 4, and keeps the trained model too: the
run gets a :class:`RemoteModel` (scored and saved there; built in the run's process
only if the trainer cannot answer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = [
    "RUN_TIME_PARAMS",
    "TRAINERS",
    "Remote",
    "RemoteModel",
    "Trainer",
    "TrainerCache",
    "clear_kernels",
    "graph_key",
    "hint",
    "kernel_generation",
    "random_state_kept",
    "remote",
    "seed_generators",
    "use_hint_sink",
    "use_remote",
]

log = logging.getLogger(__name__)

#: Learner parameters that do not shape the graph: fed to a reused trainer at run time
#: (of ``l1`` and ``l2`` only their values: whether each is 0 is in the key).
RUN_TIME_PARAMS = frozenset({"learning_rate", "epochs", "batch_size", "l1", "l2"})


def graph_key(
    learner: Any,
    features: Sequence[Mapping[str, Any]],
    head: Any,
    *,
    policy: str,
    run_eagerly: bool,
) -> str:
    """What a trainer's graph and initial state depend on, as one deterministic string.

    Every learner field but :data:`RUN_TIME_PARAMS` (so the seed, the optimizer, the
    architecture), whether ``l1`` and ``l2`` are 0 (which penalty terms the graph
    has), the learner's class, the features, the head, the dtype policy and whether
    the step runs eagerly.
    """
    from helix_tf.components import penalties

    params = {
        f.name: getattr(learner, f.name)
        for f in dataclasses.fields(learner)
        if f.name not in RUN_TIME_PARAMS
    }
    return json.dumps(
        {
            "learner": f"{type(learner).__module__}.{type(learner).__qualname__}",
            "params": params,
            "penalties": penalties.graph_shape(learner),
            "features": [dict(f) for f in features],
            "head": dataclasses.asdict(head),
            "policy": policy,
            "eager": run_eagerly,
        },
        sort_keys=True,
        default=repr,
    )


def _random_state() -> tuple[Any, Any, Any]:
    """Python's, numpy's and TensorFlow's eager op-seed generator states (TensorFlow's
    ``None`` while no global seed is set: it has no generator then)."""
    tf_ops = _tf_op_seeds()
    return random.getstate(), np.random.get_state(), tf_ops and tf_ops.getstate()


@contextlib.contextmanager
def random_state_kept() -> Iterator[None]:
    """Run the body without moving the random generators (a copy's build draws seeds)."""
    state = _random_state()
    try:
        yield
    finally:
        _set_random_state(state)


def seed_generators(seed: int, *, keep_kernels: bool = False) -> None:
    """Seed Python's, numpy's, TensorFlow's and Keras' generators: ``keras.utils.set_random_seed``.

    ``keep_kernels``: the same seeds, but TensorFlow's cached kernels and instantiated
    functions are kept (``tf.random.set_seed`` clears them: a traced step is
    instantiated again at its first call, ~0.15 s of every training on a reused
    trainer, more than its five epochs over a census ×10 sample). Only where nothing
    run keeps a random state in a kernel: Keras 3's random ops are stateless (their
    seeds are variables, part of a trainer's reset state); a stateful op's kernel would
    go on where the last training left its stream. Approximate runs' light loop on a
    reused trainer (:func:`helix_tf.components.keras_models.train_weights`).
    """
    import tensorflow as tf
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    seed = int(seed)
    if not keep_kernels:
        _count_clear()  # tf.random.set_seed clears the kernel cache (eagerly)
        rng_utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    from tensorflow.python.eager import context

    if not context.executing_eagerly():  # no cache to keep in a graph's scope
        tf.random.set_seed(seed)
        return
    ctx = context.context()
    ctx._seed = seed  # what Context._set_global_seed sets, but for its cache clear
    ctx._rng = random.Random(seed)


_kernel_clears = 0


def _count_clear() -> None:
    global _kernel_clears
    _kernel_clears += 1


def clear_kernels() -> None:
    """Clear TensorFlow's kernel cache (a new trainer starts as after ``set_random_seed``)."""
    from tensorflow.python.eager import context

    _count_clear()
    context.context().clear_kernel_cache()


def kernel_generation() -> int:
    """How many times this process' trainings cleared TensorFlow's kernel cache
    (:func:`seed_generators` without ``keep_kernels``, :func:`clear_kernels`): a light
    step run in an earlier generation is instantiated again at its next call."""
    return _kernel_clears


def _set_random_state(state: tuple[Any, Any, Any]) -> None:
    py, npy, tf_ops = state
    random.setstate(py)
    np.random.set_state(npy)
    generator = _tf_op_seeds()
    if tf_ops is not None and generator is not None:
        generator.setstate(tf_ops)


def _tf_op_seeds() -> random.Random | None:
    """The generator TensorFlow draws eager ops' seeds from (made by ``tf.random.set_seed``;
    ``None`` before any)."""
    from tensorflow.python.eager import context

    return getattr(context.context(), "_rng", None)


@dataclasses.dataclass(slots=True)
class Trainer:
    """A compiled model with its optimizer, and its state right before its first ``fit``."""

    model: Any
    initial: list[np.ndarray]
    random_state: tuple[Any, Any, Any]
    #: The model's penalty strengths (:class:`helix_tf.components.penalties.Strengths`).
    strengths: Any = None
    #: The traced train step of approximate runs' light loop, once one has used it
    #: (:mod:`helix_tf.components._light_fit`): traced once per trainer.
    light_step: Any = None
    #: The :func:`kernel_generation` in which the light step last ran (instantiated).
    light_generation: int = -1

    @classmethod
    def start(cls, model: Any, strengths: Any = None) -> Trainer:
        """Record a freshly built and compiled model's initial state (call before ``fit``)."""
        return cls(
            model=model,
            initial=[np.array(v.numpy()) for v in _state_variables(model)],
            random_state=_random_state(),
            strengths=strengths,
        )

    def reset(self, learner: Any) -> None:
        """Back to the initial state, with ``learner``'s learning rate and penalty
        strengths (after ``set_random_seed``)."""
        for var, value in zip(_state_variables(self.model), self.initial, strict=True):
            var.assign(value)
        self.model.optimizer.learning_rate = float(learner.learning_rate)
        if self.strengths is not None:
            self.strengths.assign(learner.l1, learner.l2)
        _set_random_state(self.random_state)


def _state_variables(model: Any) -> list[Any]:
    """Every variable training reads or changes: the model's and the optimizer's."""
    seen: set[int] = set()
    out = []
    for var in [*model.variables, *model.optimizer.variables]:
        if id(var) not in seen:
            seen.add(id(var))
            out.append(var)
    return out


class TrainerCache:
    """Trainers by :func:`graph_key`, least recently used dropped beyond ``capacity``."""

    def __init__(self, capacity: int | None = None) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._free: OrderedDict[str, list[Trainer]] = OrderedDict()
        self.builds = 0
        self.reuses = 0

    @property
    def capacity(self) -> int:
        """How many trainers are kept: ``HELIX_TF_TRAINERS`` when set, else what
        :meth:`keep` said (0 by default: a process that trains once gains nothing)."""
        env = os.environ.get("HELIX_TF_TRAINERS")
        if env is not None:
            return max(0, int(env))
        return self._capacity or 0

    def keep(self, capacity: int = 4) -> None:
        """Keep up to ``capacity`` trainers from now on (a long-lived process: the
        server's trainer, agent trials in one process)."""
        self._capacity = max(0, int(capacity))

    def take(self, key: str, *, reuse: bool = True) -> Trainer | None:
        """A free trainer for ``key``, taken out of the cache (None: build one).
        ``reuse=False``: not for a training (an idle preparation), not counted."""
        with self._lock:
            pool = self._free.get(key)
            if not pool:
                return None
            trainer = pool.pop()
            if not pool:
                del self._free[key]
            self.reuses += reuse
            return trainer

    def give_back(self, key: str, trainer: Trainer) -> bool:
        """Keep a trainer after its ``fit`` (reset before its next use); whether it is kept
        (not when the cache keeps none: the trainer's model is then the caller's)."""
        if self.capacity == 0:
            return False
        with self._lock:
            self._free.setdefault(key, []).append(trainer)
            self._free.move_to_end(key)
            while sum(len(p) for p in self._free.values()) > self.capacity:
                oldest = next(iter(self._free))
                self._free[oldest].pop(0)
                if not self._free[oldest]:
                    del self._free[oldest]
        return True

    def trainer(self, key: str, build: Callable[[], tuple[Any, Any]], learner: Any) -> Trainer:
        """A trainer ready to ``fit`` ``learner``: a reused one reset to its initial
        state with the learner's run-time parameters, or a new one.

        ``build()`` makes and compiles the model (with its optimizer built) and returns
        it with its penalty strengths; it runs right after the caller has seeded the
        random generators, as a fresh process does.
        """
        trainer = self.take(key) if self.capacity else None
        if trainer is not None:
            trainer.reset(learner)
            return trainer
        with self._lock:
            self.builds += 1
        return Trainer.start(*build())

    def holds(self, key: str) -> bool:
        """Whether a free trainer for ``key`` is kept."""
        with self._lock:
            return bool(self._free.get(key))

    def clear(self) -> None:
        with self._lock:
            self._free.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            kept = sum(len(p) for p in self._free.values())
            return {"builds": self.builds, "reuses": self.reuses, "kept": kept}


#: The process' trainers (see the module docstring).
TRAINERS = TrainerCache()


class Remote(Protocol):
    """Another process that trains and keeps the trained models (the warm server's
    trainer, :class:`helix_tf.server._trainer.RemoteTrainer`).

    ``train`` trains as :func:`helix_tf.components.keras_models.train_weights` would and
    keeps the model :func:`~helix_tf.components.keras_models.plain_model` builds from
    ``recipe`` and the weights: it returns ``{"weights", "losses", "model": a token,
    "linear": the model's feature weights}``, or ``None`` to train here. ``call`` runs
    one request on a kept model (``{"op": "predict" | "importance" | "save", "model":
    token, ...}``)
    and returns the reply, or ``None`` (then this process does it itself). ``ready``
    says whether trainings go there now (it may wait, bounded, for a trainer that is
    starting): when not, this process imports Keras and trains itself.
    """

    def ready(self) -> bool: ...

    def train(
        self,
        training: dict[str, Any],
        on_epoch: Callable[[int, int, float, float], None] | None,
        recipe: dict[str, Any],
    ) -> dict[str, Any] | None: ...

    def call(self, request: dict[str, Any]) -> dict[str, Any] | None: ...


@dataclasses.dataclass(slots=True, eq=False, kw_only=True)
class RemoteModel:
    """A trained model that another process keeps (:class:`Remote`): a served run's.

    It scores (:meth:`predict`, :meth:`importance`) and saves (:meth:`save`) there, where
    TensorFlow is
    warm, and answers the linear weights from the training's reply, so the run's own
    process never builds a Keras model. Same bits as the model built here: the kept
    model is built by the same code from the same weights. When the other process
    cannot answer (restarted, busy with another run's training, failing), the model is
    built here from :attr:`trained_weights` (:meth:`local`) and used from then on; anything
    else asked of it (a Keras attribute) goes to that local model too.
    """

    remote: Remote
    #: The other process' name for the model.
    token: str
    #: What builds it: learner, features, head, dtype policy, regression rescale.
    recipe: dict[str, Any]
    #: The trained weights (``model.get_weights()``).
    trained_weights: list[np.ndarray]
    #: The linear (wide) weights by feature, as ``keras_models.feature_weights`` gives.
    linear: dict[str, np.ndarray]
    _local: Any = None

    def local(self) -> Any:
        """The model built in this process from the weights (once)."""
        if self._local is None:
            from helix_tf.components import keras_models

            self._local = keras_models.plain_model(self.recipe, self.trained_weights)
        return self._local

    def _call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if self._local is not None:
            return None
        return self.remote.call({**request, "model": self.token})

    def predict(
        self, x: Mapping[str, np.ndarray], task: str, *, traced: bool = False
    ) -> np.ndarray:
        """``keras_models.predict_scores`` of the model on ``x``."""
        reply = self._call({"op": "predict", "x": dict(x), "task": task, "traced": traced})
        if reply is not None:
            return np.asarray(reply["scores"])
        from helix_tf.components import keras_models

        return keras_models.predict_scores(self.local(), x, task, traced=traced)

    def importance(
        self,
        x: Mapping[str, np.ndarray],
        y: np.ndarray,
        features: Sequence[Mapping[str, Any]],
        **params: Any,
    ) -> dict[str, Any]:
        """``keras_models.model_importance`` of the model (``params``: task, transform, ...)."""
        request = {"op": "importance", "x": dict(x), "y": y, "features": list(features)}
        reply = self._call({**request, "params": params})
        if reply is not None:
            return reply["importance"]  # type: ignore[no-any-return]
        from helix_tf.components import keras_models

        return keras_models.model_importance(self.local(), x, y, features, **params)

    def save(self, path: str) -> None:
        """Write the model as a ``.keras`` file at ``path``."""
        path = os.path.abspath(path)
        if self._call({"op": "save", "path": path}) is None:
            self.local().save(path)

    def feature_weights(self, features: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """``keras_models.feature_weights`` of the model over ``features``."""
        return {f["name"]: self.linear[f["name"]] for f in features if f["name"] in self.linear}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not a Keras attribute (copying, pickling, slots unset)
            raise AttributeError(name)
        return getattr(self.local(), name)


_remote: Remote | None = None

_hint_sink: Callable[[dict[str, Any]], None] | None = None


def use_hint_sink(sink: Callable[[dict[str, Any]], None] | None) -> None:
    """From now on, this process' own trainings tell ``sink`` what they trained (the
    process that started the warm server: its trainer prepares the graph while idle,
    :func:`helix_tf.components.keras_models.prepare`); None: nobody."""
    global _hint_sink
    _hint_sink = sink


def hint(training: Callable[[], dict[str, Any]]) -> None:
    """Tell the hint sink (:func:`use_hint_sink`), if any, what this process has trained
    (``training()``: ``keras_models.prepare``'s argument, made only when there is a
    sink). Only a head start for another process: a failure is logged, never raised."""
    if _hint_sink is None:
        return
    try:
        _hint_sink(training())
    except Exception:
        log.debug("the training's hint was not left", exc_info=True)


def use_remote(remote: Remote | None) -> None:
    """Train through ``remote`` from now on in this process (None: here)."""
    global _remote
    _remote = remote


def remote() -> Remote | None:
    """Where this process' trainings go (set by a served run), or ``None``."""
    return _remote
