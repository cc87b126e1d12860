"""Whether code is the user's own or a library's, and how library code is identified."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import os
import pathlib
import reprlib
import site
import sys
import sysconfig
import types

from helix_tf._installed import import_providers, path_state

from ._files import sha256_file

logger = logging.getLogger(__name__)

#: Identities already warned about: each unanalysable callable is logged once per process.
_WARNED: set[str] = set()
_PYTHON = f"python-{sys.version_info.major}.{sys.version_info.minor}"


def _type_name(cls: type) -> str:
    """``qualname`` for user classes (no module: moving a file must not matter), else dotted."""
    if _is_user_type(cls):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.lru_cache(maxsize=1)
def _install_dirs() -> tuple[str, ...]:
    dirs: set[str] = set()
    bases = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    for paths in (sysconfig.get_paths(), sysconfig.get_paths(vars=bases)):
        dirs.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - an old virtualenv's site module
        pass
    return tuple(sorted({os.path.realpath(d) for d in dirs if d}))


def _real_file(filename: str | None) -> str | None:
    if not filename or (filename.startswith("<") and filename.endswith(">")):
        return None
    return os.path.realpath(filename)


def _under_install(path: str) -> bool:
    if {"site-packages", "dist-packages"} & set(pathlib.PurePath(path).parts):
        return True
    return any(path == d or path.startswith(d + os.sep) for d in _install_dirs())


@functools.lru_cache(maxsize=4096)
def _is_user_location(modname: str | None, filename: str | None) -> bool:
    """True for the user's own code: not helix_tf, not the stdlib, not site-packages."""
    top = (modname or "").split(".")[0]
    if top == "helix_tf":
        return False
    real = _real_file(filename)
    if real is not None and _under_install(real):
        return False
    stdlib = top in sys.stdlib_module_names or top in sys.builtin_module_names
    # A standard-library name with a file outside the installation is a user module shadowing it.
    return not (stdlib and real is None)


def _is_user_module(mod: types.ModuleType) -> bool:
    return _is_user_location(mod.__name__, getattr(mod, "__file__", None))


def _is_user_type(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    return _is_user_location(cls.__module__, getattr(module, "__file__", None))


def _is_user_function(fn: types.FunctionType) -> bool:
    return _is_user_location(fn.__globals__.get("__name__"), fn.__code__.co_filename)


def _is_user_callable(v: object) -> bool:
    if isinstance(v, types.FunctionType):
        return _is_user_function(v)
    if isinstance(v, types.MethodType | staticmethod | classmethod):
        return _is_user_callable(v.__func__)
    if isinstance(v, functools.partial):
        return _is_user_callable(v.func)
    if isinstance(v, type):
        return _is_user_type(v)
    return _is_user_type(type(v))


def _is_own_code(v: object) -> bool:
    """Code of the user's own written in Python: a function, or a class (or an object of
    one) from a module with a file; not a compiled function of a library that
    :func:`_is_user_callable` cannot place (a Cython function's module is no module)."""
    if isinstance(v, types.FunctionType):
        return _is_user_function(v)
    cls = v if isinstance(v, type) else type(v)
    module = sys.modules.get(cls.__module__)
    return getattr(module, "__file__", None) is not None and _is_user_type(cls)


def _identity(obj: object) -> tuple[str, str]:
    """(module, qualname) of a library callable."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str):
        owner = getattr(obj, "__objclass__", None)
        bound = getattr(obj, "__self__", None)
        if owner is not None:
            module = owner.__module__
        elif isinstance(bound, types.ModuleType):
            module = bound.__name__
        else:
            module = type(bound if bound is not None else obj).__module__
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(qualname, str):
        qualname = type(obj).__qualname__
    return module, qualname


def _package_version(module: str) -> str:
    """The version of the package a module belongs to (never imports it)."""
    return _version_at(module, path_state())


@functools.lru_cache(maxsize=1024)
def _version_at(module: str, state: tuple[tuple[str, str], ...]) -> str:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return _PYTHON
    version = getattr(sys.modules.get(top), "__version__", None)
    if isinstance(version, str):
        return version
    for dist in import_providers(state).get(top, [top]):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _package_release(module: str) -> str:
    """A library's identity in a fingerprint: its version and, for a distribution that
    pip installed, a digest of its ``RECORD`` (every installed file with its sha256).

    The version alone missed a package reinstalled with other code under the same
    version (a team's own library, a local build: ``pip install ./mylib`` while
    iterating), so results computed with the old code were reused. Read again when
    ``sys.path``'s folders change (:func:`helix_tf._installed.path_state`).
    """
    return _release_at(module, path_state())


@functools.lru_cache(maxsize=256)
def _release_at(module: str, state: tuple[tuple[str, str], ...]) -> str:
    version = _version_at(module, state)
    top = module.split(".")[0]
    if version == _PYTHON:
        return version
    try:  # by its own name first: listing every distribution takes ~0.3 s
        names = [importlib.metadata.distribution(top).metadata["Name"] or top]
    except importlib.metadata.PackageNotFoundError:
        names = list(import_providers(state).get(top, ()))
    records = []
    for name in sorted(set(names)):
        try:
            record = importlib.metadata.distribution(name).read_text("RECORD")
        except (importlib.metadata.PackageNotFoundError, OSError):
            continue
        if record:
            records.append(hashlib.sha256(record.encode()).hexdigest()[:16])
    return f"{version} (files {', '.join(records)})" if records else version


def _user_binary(module: str) -> str | None:
    """The content digest of a compiled module of the user's own (a Cython or C extension
    built in the project folder), whose code cannot be read as source: rebuilding it
    changes what its functions compute while its name and version ("unknown") stay."""
    mod = sys.modules.get(module)
    filename = getattr(mod, "__file__", None)
    if not isinstance(filename, str) or filename.endswith((".py", ".pyc")):
        return None
    if not _is_user_location(module, filename) or not os.path.isfile(filename):
        return None
    return sha256_file(filename)


def _warn_once(identity: str, message: str) -> None:
    if identity in _WARNED:
        return
    _WARNED.add(identity)
    logger.warning(message)


def _short_repr(value: object) -> str:
    try:
        return reprlib.repr(value)
    except Exception:  # a broken __repr__ must not break fingerprinting
        return f"<{type(value).__qualname__}>"
