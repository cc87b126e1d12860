"""Which calls and values name files, for :mod:`._effects`: path computations known at
compile time, library readers, writers (whose file is an output) and text that looks
like a path."""

from __future__ import annotations

import ast
import os
import pathlib
import sys

__all__ = [
    "PATH_FUNCTIONS",
    "PURE_PATH",
    "computes_path",
    "is_reader",
    "names_file",
    "package_folder",
    "path_of_value",
    "writes_its_file",
]

#: os.path functions that compute a path from paths (evaluated when their arguments are known).
PATH_FUNCTIONS = (
    os.path.join,
    os.path.dirname,
    os.path.basename,
    os.path.abspath,
    os.path.normpath,
    os.path.expanduser,
)
#: PurePath methods that compute another path (evaluated when their arguments are known).
PURE_PATH = frozenset({"with_name", "with_suffix", "with_stem", "joinpath", "absolute"})
#: Library readers named so (numpy, pandas, pyarrow ...) that take a path first.
READER_NAMES = frozenset({"load", "loadtxt", "genfromtxt", "fromfile", "memmap"})


def package_folder(package: object) -> pathlib.Path | None:
    """The folder of a package already imported (by module or name), for
    ``importlib.resources.files(pkg)`` and ``pkgutil.get_data(pkg, name)``: data files
    shipped beside its code. Never imports anything."""
    module = sys.modules.get(package) if isinstance(package, str) else package
    filename = getattr(module, "__file__", None)
    if not isinstance(module, type(os)) or not isinstance(filename, str):
        return None
    return pathlib.Path(filename).parent


def computes_path(fn: object) -> bool:
    """A function that computes a path from paths without reading anything."""
    if any(fn is f for f in PATH_FUNCTIONS):
        return True
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, pathlib.PurePath) and getattr(fn, "__name__", "") in PURE_PATH:
        return True
    return isinstance(fn, type) and issubclass(fn, pathlib.PurePath)


#: Name prefixes of calls that write the file they are given (``np.save(P, a)``,
#: ``df.to_csv(P)``, ``json.dump(obj, P)``): their file is an output, not an input.
WRITER_PREFIXES = ("to_", "write", "save", "dump")


def writes_its_file(fn: object, node: ast.Call) -> bool:
    """A call that writes the file it is given, by its name (known or as written)."""
    name = getattr(fn, "__name__", "")  # "" for a function not known at compile time
    if not name:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name.lstrip("_").startswith(WRITER_PREFIXES)


def path_of_value(value: object) -> str | None:
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if isinstance(value, str | os.PathLike):
        return os.fspath(value)
    return None


def names_file(path: str, value: object) -> bool:
    """Whether a value passed to a call names an existing local file: a path object, or a
    text that looks like a path (a folder separator or a suffix), so a column name that
    happens to match a file in the working folder is not taken for one."""
    if not os.path.isfile(path):
        return False
    if isinstance(value, os.PathLike):
        return True
    return os.sep in path or "." in os.path.basename(path).strip(".")


def is_reader(fn: object) -> bool:
    """A library function that reads the file it is given (``pandas.read_csv``, ``np.load``)."""
    name = getattr(fn, "__name__", "")
    module = getattr(fn, "__module__", None) or ""
    library = module.split(".")[0] in {"numpy", "pandas", "pyarrow", "polars", "pickle", "joblib"}
    return library and callable(fn) and (name.startswith("read_") or name in READER_NAMES)
