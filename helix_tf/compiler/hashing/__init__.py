"""Deterministic hashing of operator parameters and of Python code (UDFs).

Two kinds of identity feed a node's fingerprint (DESIGN.md §3):

* :func:`canonical_json` and :func:`stable_hash` turn parameter values into a
  deterministic text and its SHA-256: independent of dict order, of tuple/list
  spelling and of the process (no ``id()``, no hash randomisation).
* :func:`code_fingerprint` hashes a callable by its *normalised* source (the AST
  without comments, docstrings, formatting or local names) **plus** everything
  it reads that can change its result: module constants, closure values, default
  arguments and, recursively, the helper functions and classes of the user's own
  modules. Library code is identified by module, name and package version.

A stale result is the worst bug this module can cause, so every doubt resolves
towards "changed": source that cannot be found, or that no longer matches the
loaded code, falls back to hashing the bytecode, and values whose state cannot
be hashed are reported in ``notes``, logged, and mark the result not analysable.

Digests are stable within one Python minor version (the AST dump format may
differ between versions). This module never imports TensorFlow, Keras or Beam;
numpy and pandas are imported only when a value is a numpy or pandas object.
"""

# Relative imports inside this package: it loads on its own, without helix_tf's
# other modules (tests/compiler/test_hashing.py checks that it imports no numpy).
from ._canonical import canonical_json, stable_hash
from ._code import code_fingerprint
from ._files import sha256_file
from ._origin import (
    _is_user_function as is_user_function,
    _is_user_location as is_user_location,
    _is_user_module as is_user_module,
    _is_user_type as is_user_type,
)
from ._result import CodeFingerprint, FileRead
from ._state import PROCESS_SETTINGS
from ._user_code import held_generators

__all__ = [
    "CodeFingerprint",
    "FileRead",
    "PROCESS_SETTINGS",
    "canonical_json",
    "code_fingerprint",
    "held_generators",
    "is_user_function",
    "is_user_location",
    "is_user_module",
    "is_user_type",
    "sha256_file",
    "stable_hash",
]
