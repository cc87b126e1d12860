"""The order a folder is listed in (QA pass 12), beside :mod:`._effects`, which calls
:func:`note_listing` on every listing it finds (``os.listdir``, ``os.scandir``,
``os.walk``, ``glob.glob``, ``Path.iterdir``/``glob``/``rglob``/``walk``).

A listing gives its names in the order the file system keeps them (ext4 by a hash of the
name seeded per file system, tmpfs by creation, others otherwise): the same files copied
to another machine, or deleted and written again, list in another order. Their content is
hashed order-free (:func:`._files.sha256_files`), so a UDF that lets the order count (the
last file read wins) gave a store shared by two machines one machine's result for the
other's. A listing used in order joins the digest with :func:`listing_order`; one whose
order cannot count (``sorted(os.listdir(P))``, ``len(...)``) keeps its digest.
"""

from __future__ import annotations

import ast
import builtins
import glob
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._effects import _Scan

__all__ = ["listing_order", "note_listing", "used_in_order"]

#: Calls whose result does not depend on the order of the names they are given.
_ORDER_FREE: tuple[object, ...] = (builtins.sorted, builtins.len, builtins.set, builtins.frozenset)
_ORDER_FREE += (builtins.any, builtins.all, builtins.min, builtins.max, builtins.bool)


def note_listing(scan: _Scan, node: ast.Call, path: str | None) -> None:
    """A call listing the folder (or pattern) ``path``: its files are read, as far as
    anyone can tell, and the order it gives them counts unless an order-free call
    (``sorted``) takes them."""
    scan.found.files.append((scan.text(node), node.lineno, path))
    listed = scan.found.listings
    if path is not None and path not in listed and used_in_order(node, scan.parents, scan.value):
        listed.append(path)


def used_in_order(
    node: ast.Call, parents: dict[int, ast.AST], value: Callable[[ast.AST], object]
) -> bool:
    """Whether a listing call's names are used in the order it gives them: anything but
    an argument of an order-free call (``sorted``, ``len``, ``set``) or a truth test."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.Call) and node in parent.args:
        fn = value(parent.func)
        return not any(fn is f for f in _ORDER_FREE)
    if isinstance(parent, ast.If | ast.While | ast.IfExp) and node is parent.test:
        return False
    return not isinstance(parent, ast.UnaryOp | ast.Compare)


def listing_order(path: str) -> list[list[object]] | None:
    """The order in which the file system lists the folder ``path`` (or, for a glob
    pattern, the folder before its first wildcard) and each folder under it: per folder,
    its path relative to the top and its names as ``os.listdir`` gives them. None when
    there is no such folder."""
    top = _folder_of(path)
    if top is None:
        return None
    orders: list[list[object]] = []
    for root, _, _ in os.walk(top):
        try:
            names = _names(root)
        except OSError:
            continue
        orders.append([os.path.relpath(root, top), names])
    return orders


def _names(folder: str) -> list[str]:
    """A folder's names in the order the file system lists them."""
    return os.listdir(folder)


def _folder_of(path: str) -> str | None:
    if glob.has_magic(path):
        parts = path.split(os.sep)
        path = os.sep.join(_until_magic(parts)) or (os.sep if path.startswith(os.sep) else ".")
    return path if os.path.isdir(path) else None


def _until_magic(parts: list[str]) -> list[str]:
    out = []
    for part in parts:
        if glob.has_magic(part):
            break
        out.append(part)
    return out
