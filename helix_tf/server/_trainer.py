"""The server's trainer: one long-lived process that trains for the served runs.

Every served run is a fresh fork (:mod:`helix_tf.server._daemon`), so whatever a
run builds dies with it — including the compiled Keras model and its traced train
step, ~1–1.5 s of every training. The trainer is a process forked from the server
once, right after its imports; it keeps
:data:`helix_tf.components.trainers.TRAINERS` across runs. A served run hands a
training (the learner, the examples as arrays, the head, the epochs and the dtype
policy) to it over a Unix socket beside the server's and gets back the trained
weights and the losses, with a progress message per epoch. It computes what the
run would compute itself (``TRAINERS`` gives a fresh process' bits).

The trainer also keeps the trained model (built from the weights as the run would
build it, :func:`helix_tf.components.keras_models.plain_model`; the last
:data:`KEPT_MODELS`), and the run holds a
:class:`helix_tf.components.trainers.RemoteModel`: its predictions, permutation
importance and the ``.keras`` file are computed here, where TensorFlow is warm, so
the run's fork never builds a model or runs a TensorFlow op (a fresh fork's first
op, model build and call cost 0.2–1.4 s). Requests, one per connection: a training
(``{"training", "recipe", "progress"}``), ``{"op": "predict", "model", "x", "task"}``,
``{"op": "importance", "model", "x", "y", "features", "params"}`` (permutation
importance, one request for all its scorings), ``{"op": "save", "model", "path"}``,
``{"op": "stats"}``.

The next training of a kept model's graph (``keras_models.plain_key``) takes that model
object with its own weights, instead of a build (~0.2 s) and, in an approximate run,
the trace of its inference (~0.15 s): one whose run has ended (its process gone:
nobody can ask for it), or a spare the idle trainer builds after preparing a graph
where none is free (:func:`_keep_spare`, which traces a free one's inference too), else
the older of two kept ones.

Once idle (below :data:`~helix_tf.server._starting.SPARE_CPUS`, after the run that
started the server has ended), the trainer warms TensorFlow up with a tiny training
(:func:`helix_tf.components.keras_models.warm_up`): the first served training no
longer waits for TensorFlow's first-use costs. The run that started the
server leaves what it trained (:class:`HintFile`, a few rows of it) and the idle
trainer prepares that graph first (:func:`helix_tf.components.keras_models.prepare`:
built, its light step traced and instantiated, kept; a run that comes before the
warm-up that follows is served first): the next run, most often an edit of that one,
skips build and tracing (~0.5–1 s). So with the first training it serves, and with
every one once it has served an approximate run's, once the run that asked for it has
ended (:class:`_AfterRun`): a trainer an exact run's ``fit`` left gets its light step, and
one whose step an exact training's seeding left uninstantiated runs it again; an
approximate edit after exact runs traces nothing.

One request at a time: a run that finds the trainer busy (its lock held by another
run) trains, scores or saves by itself, as does one whose trainer cannot be reached,
fails, or no longer keeps its model. The trainer exits with the server (and when the
server dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import select
import signal
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

from helix_tf.server._memory import trim_heap
from helix_tf.server._run_state import of_this_process, taken_on

__all__ = ["HintFile", "RemoteTrainer", "hint_path", "start_trainer", "trainer_path"]

log = logging.getLogger(__name__)


def trainer_path(server_socket: Path) -> Path:
    """The trainer's socket, beside the server's."""
    return server_socket.with_suffix(".trainer")


def hint_path(server_socket: Path) -> Path:
    """Where the run that started the server leaves what it trained (:class:`HintFile`)."""
    return server_socket.with_suffix(".prepare")


class HintFile:
    """A hint sink (``components.trainers.use_hint_sink``) of the process that started the
    server: its latest training (a few rows of it) pickled beside the server's socket,
    for the idle trainer to prepare (:func:`_prepare`). The folder is the user's own
    (``_starting.check_folder``), as the socket is."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, training: dict[str, Any]) -> None:
        import pickle

        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            pickle.dump(training, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, self.path)


def start_trainer(server_socket: Path, close_fds: tuple[int, ...] = ()) -> int:
    """Fork the trainer process (after the server's imports, before any TensorFlow op).

    ``close_fds``: the server's own (its lock, its listening socket), closed in the trainer.
    """
    path = trainer_path(server_socket)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(4)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for fd in close_fds:
                os.close(fd)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            _serve(listener, parent, hint_path(server_socket))
        except BaseException:
            log.exception("the trainer failed")
            code = 1
        finally:
            os._exit(code)
    listener.close()
    return pid


#: Trained models the trainer keeps for their runs to score and save (most recent).
KEPT_MODELS = 4

#: The owner of a spare model (:func:`_keep_spare`): no run's (never a process id).
SPARE = 0


class Kept(NamedTuple):
    """A model the trainer keeps: its ``keras_models.plain_key``, the model, and the run
    it was trained for (its process id; None when unknown; :data:`SPARE`: nobody's)."""

    key: str
    model: Any
    owner: int | None


#: Below :data:`~helix_tf.server._starting.SPARE_CPUS`, the longest the trainer waits for
#: the run that started the server to end before it warms up (seconds without a request).
WARM_UP_WAIT = 30.0


def _serve(listener: socket.socket, parent: int, hints: Path) -> None:
    from helix_tf.components.trainers import TRAINERS

    TRAINERS.keep(4)  # this process lives as long as the server: trainers pay off
    kept: OrderedDict[str, Kept] = OrderedDict()  # by token
    warm_up_due = _warm_up_due(parent)
    warm = False
    trimmed = True  # nothing freed since the last trim_heap
    after: _AfterRun | None = None
    spare: dict[str, Any] | None = None  # a prepared graph whose model comes next
    trainings = light = 0  # served so far; of them, approximate runs' (light) ones
    while os.getppid() == parent:  # the server is gone: so is its trainer
        poll = 1.0 if after is None and spare is None else AFTER_RUN_POLL
        ready, _, _ = select.select([listener], [], [], poll)
        if not ready:
            if after is not None:  # the graph just trained, once its run has ended
                if after.due():
                    _prepare_training(after.training, "the graph it trained")
                    after, spare = None, after.training
                continue
            if spare is not None:  # still idle after a preparation: a model for its graph
                _keep_spare(kept, spare)
                spare = None
                continue
            # The hinted graph first (the next run's most likely); then, still idle, the
            # tiny warm-up (Keras' fit's first use: exact runs'). A run that comes
            # between them is served first.
            due = warm_up_due()
            spare = _prepare(hints) if due else None
            if due and spare is None and not warm:
                _warm_up()
                warm = True
            elif not trimmed:  # idle after a training: its freed memory back to the system
                trim_heap()
                trimmed = True
            continue
        sock, _ = listener.accept()
        peer = _peer_pid(sock)
        conn = Connection(sock.detach())
        try:
            trained = _profiled(_handle, conn, kept, peer)
            if trained is not None:
                warm, trimmed = True, False
                trainings, light = trainings + 1, light + bool(trained.get("light"))
                after = _AfterRun(trained, peer) if _prepares(trainings, light) else None
            elif after is not None:
                after.seen()
        except (EOFError, OSError):  # the run went away (Ctrl-C): the next one is served
            log.info("a run left during its training")
        except Exception:
            log.exception("a training failed")
        finally:
            conn.close()


def _prepares(trainings: int, light: int) -> bool:
    """Whether the trainer prepares the graph of its latest training (:class:`_AfterRun`),
    having served ``trainings`` trainings, ``light`` of them approximate runs': the first
    (the starting run's, most often: its edit comes next), and every one once an
    approximate run has been served. A user who runs only exact ones pays one idle
    preparation (a light step traced), not one per training."""
    return trainings == 1 or light > 0


#: While a training's run may still ask for its model, how often the idle trainer looks
#: whether that run has ended (seconds).
AFTER_RUN_POLL = 0.05

#: Where a run's process cannot be watched: how long without a request counts as its end.
AFTER_RUN_IDLE = 1.0


class _AfterRun:
    """The last training the trainer served (a few rows of it), to prepare for a light
    training of its graph (``keras_models.prepare``) once the run that asked for it has
    ended: until then that run may still ask for predictions, importance or a save, which
    must not wait for the preparation. Where the run's process is unknown (no
    ``SO_PEERCRED``), after :data:`AFTER_RUN_IDLE` seconds without a request."""

    def __init__(self, training: dict[str, Any], pid: int | None) -> None:
        from helix_tf.components._idle_trainer import hint_of

        self.training = hint_of(training)
        self.pid = pid
        self.last = time.monotonic()

    def seen(self) -> None:
        """A request came (from any run): the idle time starts again."""
        self.last = time.monotonic()

    def due(self) -> bool:
        if self.pid is not None:
            return _ended(self.pid)
        return time.monotonic() - self.last > AFTER_RUN_IDLE


def _peer_pid(sock: socket.socket) -> int | None:
    """The process at the other end of a Unix socket (Linux ``SO_PEERCRED``), or ``None``."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    except (OSError, struct.error):
        return None
    return pid or None


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except (OSError, IndexError):  # no /proc: alive until a signal cannot reach it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False


def _profiled(handle: Callable[..., Any], *args: Any) -> Any:
    """``handle(*args)``; with ``HELIX_TF_TRAINER_PROFILE=DIR``, a cProfile of it (wall
    seconds) written to ``DIR/<time>-<pid>.prof`` (benchmarks: where a served run's
    trainer requests spend their time)."""
    folder = os.environ.get("HELIX_TF_TRAINER_PROFILE")
    if not folder:
        return handle(*args)
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(handle, *args)
    finally:
        with contextlib.suppress(OSError):
            profiler.dump_stats(os.path.join(folder, f"{time.time():.6f}-{os.getpid()}.prof"))


def _warm_up_due(server: int) -> Callable[[], bool]:
    """When the idle trainer should pay TensorFlow's first-use costs (:func:`_warm_up`).

    At once with CPUs to spare; below :data:`~helix_tf.server._starting.SPARE_CPUS`, once
    the run that started the server (the server's parent, when a run forked it) has
    ended, or after :data:`WARM_UP_WAIT` seconds: warming up beside that run would slow
    it down.
    """
    from helix_tf.server._starting import SPARE_CPUS

    starter = _parent_of(server) if (os.cpu_count() or 1) < SPARE_CPUS else None
    started = time.monotonic()

    def due() -> bool:
        if starter is None or starter <= 1 or time.monotonic() - started > WARM_UP_WAIT:
            return True
        return _parent_of(server) != starter  # reparented: the run that started it ended

    return due


def _parent_of(pid: int) -> int | None:
    """``pid``'s parent (Linux ``/proc``), or ``None`` when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _warm_up() -> None:
    """TensorFlow's first-use costs, paid while no run waits (see ``keras_models.warm_up``)."""
    from helix_tf.components import keras_models

    t0 = time.perf_counter()
    try:
        keras_models.warm_up()
    except Exception:  # only a head start: a failure here is the next training's to show
        log.exception("the trainer's warm-up failed")
        return
    log.info("the trainer warmed up in %.2fs", time.perf_counter() - t0)


def _prepare(hints: Path) -> dict[str, Any] | None:
    """Prepare the graph the run that started the server trained (its :class:`HintFile`),
    as a later training of it would find it: built, its light step traced and
    instantiated (``keras_models.prepare``). The hinted training (None: no hint), whose
    spare model (:func:`_keep_spare`) the idle trainer builds next."""
    import pickle

    try:
        with open(hints, "rb") as f:
            training = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception:  # a hint from other code (an older server's): only a head start
        log.info("the trainer could not read %s", hints, exc_info=True)
        training = None
    finally:
        with contextlib.suppress(OSError):
            hints.unlink()
    if training is None:
        return None
    _prepare_training(training, "the hinted graph")
    return training  # type: ignore[no-any-return]


def _prepare_training(training: dict[str, Any], what: str) -> bool:
    """``keras_models.prepare(training)``, logged; whether it did anything (a failure is
    only a lost head start: logged)."""
    from helix_tf.components import keras_models

    t0 = time.perf_counter()
    try:
        made = keras_models.prepare(training)
    except Exception:
        log.exception("the trainer could not prepare %s", what)
        return False
    if made:
        log.info("the trainer prepared %s in %.2fs", what, time.perf_counter() - t0)
    return made


def _handle(
    conn: Connection, kept: OrderedDict[str, Kept], peer: int | None = None
) -> dict[str, Any] | None:
    """One request: a training (kept for ``peer``, the run's process: None when unknown),
    or a kept model's scoring or save. The training, when it trained one."""
    from helix_tf.components import keras_models, trainers

    request = conn.recv()
    with taken_on(request.pop("run_state", {})):  # as if the run answered it itself
        op = request.get("op", "train")
        if op == "stats":
            conn.send({"stats": {**trainers.TRAINERS.stats(), "models": len(kept)}})
            return None
        if op in ("predict", "importance", "save"):
            entry = kept.get(request["model"])
            if entry is None:  # evicted, or another trainer's: the run builds its own
                conn.send({"error": f"no kept model {request['model']!r}"})
                return None
            model = entry.model
            kept.move_to_end(request["model"])
            try:
                if op == "predict":
                    x, task, traced = request["x"], request["task"], bool(request.get("traced"))
                    scores = keras_models.predict_scores(model, x, task, traced=traced)
                    conn.send({"scores": scores})
                elif op == "importance":
                    found = keras_models.model_importance(
                        model, request["x"], request["y"], request["features"], **request["params"]
                    )
                    conn.send({"importance": found})
                else:
                    keras_models.save_model(model, request["path"])
                    conn.send({"saved": request["path"]})
            except Exception as exc:
                conn.send({"error": repr(exc)})
            return None

        def progress(epoch: int, epochs: int, loss: float, seconds: float) -> None:
            conn.send({"epoch": (epoch, epochs, loss, seconds)})

        on_epoch = progress if request.get("progress") else None
        recipe = request["recipe"]
        key = keras_models.plain_key(recipe)
        try:
            weights, losses = keras_models.train_weights(request["training"], on_epoch)
            model = keras_models.plain_model(recipe, weights, reuse=_recycled(kept, key))
            linear = keras_models.feature_weights(model, recipe["features"])
        except Exception as exc:
            conn.send({"error": repr(exc)})
            return None
        token = f"{os.getpid()}-{secrets.token_hex(8)}"
        kept[token] = Kept(key, model, peer)
        while len(kept) > KEPT_MODELS:
            kept.popitem(last=False)
        conn.send({"weights": weights, "losses": losses, "model": token, "linear": linear})
        return request["training"]  # type: ignore[no-any-return]


def _recycled(kept: OrderedDict[str, Kept], key: str) -> Any:
    """A kept model of ``key`` to hold the next training's weights, or ``None`` (build one).

    Free first: a spare (:func:`_keep_spare`), or one whose run has ended (its process is
    gone, so nobody can ask for it any more). Else the two latest models of a key stay
    kept (a run may still score its model while the next run trains); the older one's
    token is forgotten (a run that still asks for it builds its own from the weights)
    and its model takes the new weights.
    """
    same = [token for token, entry in kept.items() if entry.key == key]
    free = [token for token in same if _free(kept[token])]
    if free:
        return kept.pop(free[0]).model
    if len(same) < 2:
        return None
    return kept.pop(same[0]).model


def _free(entry: Kept) -> bool:
    """Whether nobody can ask for a kept model any more: a spare, or its run has ended
    (a reused pid reads as alive: kept)."""
    return entry.owner == SPARE or (entry.owner is not None and _ended(entry.owner))


def _keep_spare(kept: OrderedDict[str, Kept], training: dict[str, Any]) -> bool:
    """Make ready a model for a later training of ``training``'s graph: a free one
    (:func:`_free`) if one is kept, else a spare, built and kept; either way its
    inference traced over the training's rows (``keras_models.spare_model``), so that
    training's model takes its weights instead of a build and a trace (~0.2–0.4 s).
    Whether a spare was built."""
    from helix_tf.components import keras_models

    t0 = time.perf_counter()
    try:
        found = keras_models.spare_model(training, free=lambda key: _free_model(kept, key))
    except Exception:  # only a head start
        log.exception("the trainer could not make a model ready")
        return False
    if found is None:
        return False
    kept[f"spare-{secrets.token_hex(8)}"] = Kept(found[0], found[1], SPARE)
    while len(kept) > KEPT_MODELS:
        kept.popitem(last=False)
    log.info("the trainer built a spare model in %.2fs", time.perf_counter() - t0)
    return True


def _free_model(kept: OrderedDict[str, Kept], key: str) -> Any:
    """A kept model of ``key`` that nobody can ask for (:func:`_free`), or None."""
    return next((e.model for e in kept.values() if e.key == key and _free(e)), None)


class RemoteTrainer:
    """A served run's handle on the server's trainer (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def ready(self) -> bool:
        """A served run's trainer is there from the start (``components.trainers.Remote``);
        one busy or gone is found out per request, and the run then trains itself."""
        return True

    @contextlib.contextmanager
    def _turn(self) -> Iterator[Connection | None]:
        """A connection while this run holds the trainer; ``None`` when busy or absent."""
        lock_path = self.path.with_suffix(".trainer-lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another run is training there
                yield None
                return
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.path))
            except OSError:
                sock.close()
                yield None
                return
            conn = Connection(sock.detach())
            try:
                yield conn
            finally:
                conn.close()
        finally:
            os.close(fd)

    def train(
        self,
        training: dict[str, Any],
        on_epoch: Callable[[int, int, float, float], None] | None,
        recipe: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Train there and keep the model (``components.trainers.Remote.train``): the
        weights, losses, the model's token and linear weights; ``None``: train here."""
        t0 = time.perf_counter()
        request = {"training": training, "recipe": recipe, "progress": on_epoch is not None}
        request["run_state"] = of_this_process()  # trained as this process would
        with self._turn() as conn:
            if conn is None:
                return None
            try:
                conn.send(request)
            except Exception as exc:  # gone, or a training it cannot take (e.g. unpicklable)
                log.info("the server's trainer did not take the training (%r)", exc)
                return None
            try:
                while True:
                    reply = conn.recv()
                    if "epoch" in reply:
                        if on_epoch is not None:
                            on_epoch(*reply["epoch"])
                        continue
                    break
            except Exception as exc:  # the trainer went away mid-training
                log.info("the server's trainer did not answer (%r): training here", exc)
                return None
        if "error" in reply:
            log.info("the server's trainer failed (%s): training here", reply["error"])
            return None
        log.debug("trained by the server's trainer in %.2fs", time.perf_counter() - t0)
        return reply  # type: ignore[no-any-return]

    def call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """One request on a kept model (``components.trainers.Remote.call``); ``None``
        when the trainer is busy, gone, or cannot: the caller does it itself."""
        with self._turn() as conn:
            if conn is None:
                return None
            try:
                conn.send({**request, "run_state": of_this_process()})
                reply = conn.recv()
            except Exception as exc:
                log.info("the server's trainer did not answer a %s (%r)", request["op"], exc)
                return None
        if "error" in reply:
            log.info("the server's trainer could not %s (%s)", request["op"], reply["error"])
            return None
        return reply  # type: ignore[no-any-return]

    def stats(self, timeout: float = 2.0) -> dict[str, int] | None:
        """The trainer's builds and reuses; ``None`` when it is busy or absent."""
        with self._turn() as conn:
            if conn is None:
                return None
            conn.send({"op": "stats"})
            if not conn.poll(timeout):
                return None
            reply = conn.recv()
            return reply.get("stats")
