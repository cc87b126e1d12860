"""Read a run's stored results back: predictions, the trained model, the explanation.

Everything is read through the artifact store's public API (``lookup`` by
fingerprint, ``open_local`` verifies the files), never recomputed. A result the
materialization policy did not keep is not there: :class:`StoreError` says so and
how to get it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from helix_tf.errors import StoreError
from helix_tf.roles import Role, Split

__all__ = [
    "RunReader",
    "stored_folder",
    "read_predictions",
    "read_model",
    "read_explanation",
    "read_label",
]


def stored_folder(store_url: str, fingerprint: str, node: str) -> tuple[str, dict[str, Any]]:
    """The verified local folder and manifest meta of ``node``'s stored result.

    A result that is not there, or is damaged, raises :class:`StoreError` saying which
    and how to get it: a run that must deliver the node (``outputs=``). Running again
    with ``--materialize all`` alone would not: the plan prunes a node whose results
    further on are stored.
    """
    from helix_tf.reuse.store import ArtifactStore, unusable_entry

    store = ArtifactStore(store_url, writing=False)
    manifest = store.lookup(fingerprint)
    local = store.open_local(manifest) if manifest is not None else None
    if manifest is not None and local is not None:
        return local, dict(manifest.meta)
    what = f"the result of node {node!r} (fingerprint {fingerprint[:12]})"
    get_it = (
        f"`helix_tf.run(CONFIG, outputs=[{node!r}], materialize='all')` computes it and "
        "keeps it (or declare it an output, wf.output(...), and run with --materialize "
        "all; --materialize all alone does not while the results after it are stored)"
    )
    problem = "its files failed their sha256 check" if manifest is not None else None
    problem = problem or unusable_entry(store, fingerprint)
    if problem is not None:
        raise StoreError(f"{what} in the store {store_url} is damaged ({problem}); {get_it}")
    raise StoreError(
        f"{what} is not in the store {store_url}: the materialization policy did not keep "
        f"it, or it was evicted; {get_it}"
    )


def read_predictions(store_url: str, fingerprint: str, node: str) -> Any:
    """The predictions table (``__row``, ``__label``, ``__score``) as a pyarrow Table."""
    from helix_tf.engine import tables

    local, meta = stored_folder(store_url, fingerprint, node)
    table = tables.read_split(local, meta.get("split", Split.TEST))
    if table is None:
        raise StoreError(f"the stored predictions of node {node!r} hold no rows")
    return table


def read_label(store_url: str, fingerprint: str, node: str) -> dict[str, Any]:
    """The label facts stored with predictions (task, classes or transform).

    Binary predictions store none: ``{"task": "binary"}``.
    """
    from helix_tf.reuse.store import ArtifactStore

    manifest = ArtifactStore(store_url, writing=False).lookup(fingerprint)
    if manifest is None:
        raise StoreError(f"the predictions of node {node!r} are not in the store {store_url}")
    return dict(manifest.meta.get("label") or {"task": "binary"})


def read_model(store_url: str, fingerprint: str, node: str) -> Any:
    """The trained Keras model (imports TensorFlow)."""
    from helix_tf.components import keras_models

    local, _ = stored_folder(store_url, fingerprint, node)
    return keras_models.load_model(os.path.join(local, "model.keras"))


def read_explanation(store_url: str, fingerprint: str, node: str) -> dict[str, Any]:
    """An ``explain`` node's result: permutation importance and linear weights."""
    local, _ = stored_folder(store_url, fingerprint, node)
    with open(os.path.join(local, "explanation.json")) as f:
        return json.load(f)


class RunReader:
    """A run's results by node: what the run held in memory, else the store's copy.

    ``read(kind, node, fingerprint)`` with kind ``predict``, ``train`` or ``explain``
    (the node's result), or ``label`` (a predict node's label facts, from the store).
    """

    _READERS: ClassVar[dict[str, Callable[[str, str, str], Any]]] = {
        Role.PREDICT: read_predictions,
        Role.TRAIN: read_model,
        Role.EXPLAIN: read_explanation,
        "label": read_label,
    }

    def __init__(self, store_url: str, in_memory: Mapping[str, Any] | None = None) -> None:
        self.store_url = store_url
        self.in_memory = dict(in_memory or {})

    def read(self, kind: str, node: str, fingerprint: str) -> Any:
        held = self.in_memory.get(node) if kind != "label" else None
        if held is not None:
            return held
        return self._READERS[kind](self.store_url, fingerprint, node)
