"""What of the running environment joins a fingerprint: the libraries that compute a role.

A result computed by TensorFlow 2.16 is not what TensorFlow 2.20 computes from the same
inputs (kernels, initialisers and float rounding change between releases), and the
same holds, more rarely, for pandas, pyarrow and numpy in preprocessing. A reused
result must equal what a fresh run computes, so the versions of the libraries a
node's stage computes with, and the settings read when they load (Keras' backend and
float type, oneDNN's switch) or when a learner trains (helix_tf's own
``learners.TRAINING_SETTINGS``, when set), join its fingerprint: upgrading one
recomputes what it computes and nothing else. Versions are read from the installed distributions'
metadata, never by importing TensorFlow or Keras.
"""

from __future__ import annotations

import functools
import glob
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helix_tf._env import intra_op_threads
from helix_tf._installed import import_providers, path_state
from helix_tf.components.learners import TRAINING_SETTINGS
from helix_tf.roles import Stage

__all__ = [
    "LIBRARIES",
    "cluster_shape",
    "device_identity",
    "process_settings",
    "runtime_identity",
]

_PREPROCESSING = ("numpy", "pandas", "pyarrow")
_LEARNING = ("numpy", "tensorflow", "keras")
#: The distributions whose version can change a stage's results.
LIBRARIES: dict[str, tuple[str, ...]] = {
    Stage.SOURCE: _PREPROCESSING,
    Stage.PREPROCESS: _PREPROCESSING,
    Stage.TRAIN: _LEARNING,
    Stage.PREDICT: _LEARNING,
    Stage.EXPLAIN: _LEARNING,
    Stage.EVALUATE: ("numpy", "pandas"),
}
#: Environment variables TensorFlow and Keras read when they load that change numbers.
_LEARNING_ENV = ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS")
#: Environment variables that choose which GPUs TensorFlow sees and which of their kernels
#: it runs (deterministic or fastest): part of the device when there are GPUs.
_GPU_ENV = ("CUDA_VISIBLE_DEVICES", "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC")
#: The processor architectures whose results fingerprints made before the device was
#: hashed were computed on (this project's machines): they keep those fingerprints.
_DEFAULT_MACHINES = frozenset({"x86_64", "amd64"})
#: Where the NVIDIA driver lists the machine's GPUs (one folder each, by PCI address).
NVIDIA_GPUS = "/proc/driver/nvidia/gpus"


def _version(package: str, state: tuple[tuple[str, str], ...] | None = None) -> str:
    """The version of the distribution that installs import package ``package`` (see
    :func:`_installed_version`), and the version loaded in this process when it is
    another: an install after the library was imported leaves the old code running, and
    what it computes must not be stored under the new version's fingerprint."""
    installed = _installed_version(package, path_state() if state is None else state)
    loaded = getattr(sys.modules.get(package), "__version__", None)
    if not isinstance(loaded, str) or any(
        _same_release(loaded, part.rpartition(" ")[2]) for part in installed.split(", ")
    ):
        return installed
    return f"{installed} (loaded {loaded})"


def _same_release(a: str, b: str) -> bool:
    """Whether two version texts name one release (``2.22.0-dev1`` is ``2.22.0.dev1``)."""
    if a == b:
        return True
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging comes with pip's and TF's installs
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


@functools.lru_cache(maxsize=256)
def _installed_version(package: str, state: tuple[tuple[str, str], ...]) -> str:
    """The version of the distribution that installs import package ``package``, as the
    metadata on the import path ``state`` (:func:`helix_tf._installed.path_state`) says:
    the one named so, else the one that provides it under another name
    (``tensorflow-cpu``, ``tensorflow-macos``, ``tf-nightly``, ``keras-nightly`` install
    ``tensorflow`` or ``keras``), named with its version, so upgrading it recomputes as
    upgrading ``tensorflow`` does. Before, such an install read "absent" whatever its
    version. Cached under the path's state: an install read again (it was once cached
    for the process, so a long-lived one kept fingerprinting with the old version)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        pass
    found = []
    for dist in sorted(set(import_providers(state).get(package, ()))):
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found) or "absent"


def read_versions() -> None:
    """Look up every distribution of :data:`LIBRARIES` (cached under what is installed).

    Called by the warm server before it forks its runs (``helix_tf.warm.WARM_CALLS``):
    reading packages' metadata took ~5–20 ms of every served run. A server whose
    packages changed is stale and replaced (``helix_tf.server``); a run forked before it
    is, or any long-lived process, reads the versions again when what is installed on
    its import path changes.
    """
    state = path_state()
    for names in LIBRARIES.values():
        for name in names:
            _version(name, state)


def _keras_settings() -> dict[str, Any]:
    """Keras' float type and backend: from Keras when it is loaded (a config may have set
    them), else as Keras will read them when it loads (``$KERAS_BACKEND``, then its
    ``keras.json``, then its defaults), so both give the same answer."""
    keras = sys.modules.get("keras")
    config = getattr(keras, "config", None)
    if config is not None and hasattr(config, "floatx") and hasattr(config, "backend"):
        return {"floatx": str(config.floatx()), "backend": str(config.backend())}
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        saved = json.loads((Path(home) / "keras.json").read_text())
    except (OSError, ValueError):
        saved = {}
    saved = saved if isinstance(saved, dict) else {}
    return {
        "floatx": str(saved.get("floatx") or "float32"),
        "backend": os.environ.get("KERAS_BACKEND") or str(saved.get("backend") or "tensorflow"),
    }


def _gpu_models(root: str) -> list[str]:
    """The models of the NVIDIA GPUs the driver lists (sorted by PCI address)."""
    models = []
    for info in sorted(glob.glob(os.path.join(root, "*", "information"))):
        try:
            lines = Path(info).read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Model:")), "")
        models.append(model or "unknown")
    return models


def device_identity(
    environ: Mapping[str, str] | None = None, gpus_root: str | None = None
) -> dict[str, Any]:
    """What a learning stage computes on besides an x86-64 CPU used whole: the processor
    architecture when it is another, the GPUs TensorFlow can see (their models, one entry
    each, and the variables that choose them and their kernels), and the threads one op
    is split over when they are not the machine's CPU count. Float results differ between
    a GPU and a CPU, between GPU models, with the number of replicas a ``mirrored``
    strategy spreads a batch over (one per GPU), and with the threads a matrix product's
    sums are split over (measured: a census DNN(128, 64) reaches test AUC 0.9065376045 on
    1 thread and 0.9065375836 on 2, each bit-stable). Empty on an x86-64 machine without
    GPUs that trains on all its CPUs, so fingerprints computed there before the device was
    hashed hold. Read without importing TensorFlow (the driver's listing), so a GPU that
    TensorFlow cannot use still counts: a recompute, never a stale result.

    >>> "gpus" in device_identity({"CUDA_VISIBLE_DEVICES": "-1"}, gpus_root="/nonexistent")
    False
    """
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    machine = platform.machine().lower()
    if machine not in _DEFAULT_MACHINES:
        out["machine"] = machine
    models = _gpu_models(NVIDIA_GPUS if gpus_root is None else gpus_root)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        if not wanted or wanted[0].startswith("-"):
            models = []  # "" or "-1": TensorFlow sees no GPU
        elif all(v.isdigit() for v in wanted):
            models = [models[int(v)] for v in wanted if int(v) < len(models)]
    if models:
        out["gpus"] = models
        out["gpu_env"] = {k: environ.get(k) for k in _GPU_ENV}
    threads = intra_op_threads(environ)
    if threads != (os.cpu_count() or 1):
        out["threads"] = threads
    return out


def cluster_shape(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The number of tasks of each job in ``TF_CONFIG``'s cluster (``{"chief": 1,
    "worker": 3}``): how many replicas a ``multi-worker`` strategy splits each global
    batch over, which changes the order of the floating-point sums of its gradients.
    Addresses and this process's own task are left out: every task of one training
    computes the same model and must plan with the same fingerprints.

    >>> cluster_shape({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {}}'})
    {'worker': 2}
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    try:
        cluster = json.loads(raw).get("cluster") if raw.strip() else None
    except (ValueError, AttributeError):
        cluster = None
    if not isinstance(cluster, dict):
        return {"unreadable": raw}  # training refuses it; never the same as a readable one
    return {
        str(job): len(tasks) if isinstance(tasks, list | tuple) else 1
        for job, tasks in sorted(cluster.items())
    }


#: decimal's context as Python starts it (``decimal.Context()`` copies ``DefaultContext``,
#: which a config may have changed).
_DECIMAL_DEFAULTS: dict[str, Any] = {
    "prec": 28,
    "rounding": "ROUND_HALF_EVEN",
    "Emin": -999999,
    "Emax": 999999,
    "capitals": 1,
    "clamp": 0,
    "traps": ["DivisionByZero", "InvalidOperation", "Overflow"],
}
#: numpy's print options as it starts (those that change the text of numbers).
_NUMPY_PRINT_DEFAULTS: dict[str, Any] = {
    "precision": 8,
    "threshold": 1000,
    "edgeitems": 3,
    "linewidth": 75,
    "suppress": False,
    "nanstr": "nan",
    "infstr": "inf",
    "sign": "-",
    "floatmode": "maxprec",
}


#: numpy's floating-point error handling as it starts (``np.geterr()``).
_NUMPY_ERROR_DEFAULTS = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}


def _decimal_form(context: Any) -> dict[str, Any]:
    return {
        "prec": context.prec,
        "rounding": context.rounding,
        "Emin": context.Emin,
        "Emax": context.Emax,
        "capitals": context.capitals,
        "clamp": context.clamp,
        "traps": sorted(k.__name__ for k, on in context.traps.items() if on),
    }


def process_settings() -> dict[str, Any]:
    """Process-wide settings of libraries already imported that a config may set when it is
    imported and that change what code computes: decimal's context (this thread's, and the
    default new threads copy: ``Decimal`` arithmetic), numpy's print options (the text of
    arrays), pandas' options (the text of frames, ``future.*`` behaviour, the compute
    engines; QA pass 17) and the C locale's categories Python leaves at ``"C"``
    (``locale.atof``, ``strxfrm``, ``strftime``; QA pass 17); only what differs from the
    library's own defaults, so a process that sets nothing fingerprints as before. An edit
    of ``decimal.getcontext().prec = 6`` at the top of a config reused results of the old
    precision (QA pass 14), one of ``pd.set_option("display.precision", 2)`` or
    ``locale.setlocale(locale.LC_NUMERIC, ...)`` likewise (QA pass 17)."""
    out: dict[str, Any] = _pandas_options() | _locale_settings() | _library_extensions()
    decimal = sys.modules.get("decimal")
    if decimal is not None:
        for name, context in (
            ("decimal", decimal.getcontext()),
            ("decimal threads", decimal.DefaultContext),
        ):
            form = _decimal_form(context)
            changed = {k: v for k, v in form.items() if _DECIMAL_DEFAULTS.get(k) != v}
            if changed:
                out[name] = changed
    numpy = sys.modules.get("numpy")
    get = getattr(numpy, "get_printoptions", None)
    if callable(get):
        options = get()
        changed = {
            k: options[k]
            for k, v in _NUMPY_PRINT_DEFAULTS.items()
            if k in options and options[k] != v
        }
        if options.get("formatter") is not None:
            changed["formatter"] = sorted(options["formatter"])
        if changed:
            out["numpy print"] = changed
    errors = getattr(numpy, "geterr", None)
    if callable(errors):  # np.seterr(divide="raise"): a value, or the run fails
        changed = {k: v for k, v in errors().items() if _NUMPY_ERROR_DEFAULTS.get(k) != v}
        if changed:
            out["numpy errors"] = changed
    return out


def _pandas_options() -> dict[str, Any]:
    """pandas' options that differ from their registered defaults (none when pandas is not
    imported): a callable (``display.float_format``) by its code fingerprint."""
    pandas = sys.modules.get("pandas")
    registry = getattr(sys.modules.get("pandas._config.config"), "_registered_options", None)
    if pandas is None or not isinstance(registry, dict):
        return {}
    deprecated = getattr(sys.modules["pandas._config.config"], "_deprecated_options", {})
    changed: dict[str, Any] = {}
    for key, option in sorted(registry.items()):
        if key in deprecated:
            continue
        try:
            value = pandas.get_option(key)
        except Exception:  # an option its own getter refuses: not set by the config
            continue
        if value is option.defval or _same_option(value, option.defval):
            continue
        if callable(value):
            from helix_tf.compiler.hashing import code_fingerprint

            value = {"code": code_fingerprint(value).digest}
        changed[key] = value
    return {"pandas options": changed} if changed else {}


#: Library classes whose objects UDFs are handed (a batch, its columns) and that code of
#: one's own extends: pandas' accessors (``register_series_accessor``) and methods set on
#: them (``pd.Series.scaled = fn``).
_EXTENDED = {"pandas": ("Series", "DataFrame", "Index")}


#: Where a library's own attributes come from (skipped before the costlier look).
_OWN_PREFIXES = ("pandas", "numpy", "builtins", "None")


def _library_extensions() -> dict[str, Any]:
    """The user's code a config or helper put on :data:`_EXTENDED`'s classes, by its code
    fingerprint: a UDF calling ``batch["x"].geo.scaled()`` reaches it through a value known
    only when it runs, so its own fingerprint cannot name it (QA pass 17: an edit of such an
    accessor kept every fingerprint)."""
    from helix_tf.compiler.hashing import code_fingerprint
    from helix_tf.compiler.hashing._origin import _is_own_code

    found: dict[str, str] = {}
    for package, names in _EXTENDED.items():
        module = sys.modules.get(package)
        for name in names if module is not None else ():
            cls = getattr(module, name, None)
            for attr, value in sorted(vars(cls).items()) if isinstance(cls, type) else ():
                code = getattr(value, "_accessor", value)  # pandas' accessor descriptor
                if str(getattr(code, "__module__", None)).startswith(_OWN_PREFIXES):
                    continue  # the library's own (most of them): no file to look up
                if isinstance(code, staticmethod | classmethod):
                    code = code.__func__
                elif isinstance(code, property):
                    code = code.fget
                if code is not None and callable(code) and _is_own_code(code):
                    found[f"{package}.{name}.{attr}"] = code_fingerprint(code).digest
    return {"library extensions": found} if found else {}


def _same_option(value: Any, default: Any) -> bool:
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:  # an array-like option compared element-wise
        return False


#: The locale categories Python starts at ``"C"`` (it sets ``LC_CTYPE`` alone from the
#: environment) whose setting changes what code computes: number parsing and formatting
#: (``locale.atof``, ``format(x, "n")``), collation (``strxfrm``), dates (``strftime``).
_LOCALE_CATEGORIES = ("LC_NUMERIC", "LC_MONETARY", "LC_COLLATE", "LC_TIME")


def _locale_settings() -> dict[str, Any]:
    """The categories of :data:`_LOCALE_CATEGORIES` a config set (``locale.setlocale``):
    those not at ``"C"``; asked without changing them."""
    locale = sys.modules.get("locale")
    if locale is None:
        return {}
    changed: dict[str, str] = {}
    for name in _LOCALE_CATEGORIES:
        try:
            value = locale.setlocale(getattr(locale, name))
        except (AttributeError, ValueError, locale.Error):
            continue
        if value not in ("C", "POSIX"):
            changed[name] = value
    return {"locale": changed} if changed else {}


def runtime_identity(stage: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The library versions (and, for learning stages, settings) a ``stage`` computes with;
    ``settings``: :func:`process_settings` when read already (once per compilation).

    >>> sorted(runtime_identity("preprocess")["libraries"])
    ['numpy', 'pandas', 'pyarrow', 'python']
    """
    state = path_state()
    libraries = {name: _version(name, state) for name in LIBRARIES[stage]}
    libraries["python"] = f"{sys.version_info.major}.{sys.version_info.minor}"
    out: dict[str, Any] = {"libraries": libraries}
    process = process_settings() if settings is None else dict(settings)
    if process:  # set by the config (none: fingerprints as before)
        out["process"] = process
    if "tensorflow" in LIBRARIES[stage]:
        out["env"] = {k: os.environ.get(k) for k in _LEARNING_ENV}
        out["keras"] = _keras_settings()
        # helix_tf's own settings join only when set: unset, fingerprints stay as they were.
        training = {k: v for k in TRAINING_SETTINGS if (v := os.environ.get(k, "").strip())}
        if training:
            out["settings"] = training
        device = device_identity()  # empty on an x86-64 CPU: fingerprints as before
        if device:
            out["device"] = device
    return out
