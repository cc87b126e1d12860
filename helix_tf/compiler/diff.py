"""Logical diff between two compiled versions of a workflow (``helix-tf diff``).

Compares the DAGs by node name: added, removed, changed (operator, parameter
values, UDF code, role facts such as the feature list or the metrics, inputs)
and unchanged. Pure: works on ``CompiledWorkflow.to_dict()`` data, as stored in
the metadata database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["NodeChange", "diff_versions", "describe_change", "describe_values"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeChange:
    """How one node differs between two versions."""

    name: str
    change: str  # added | removed | changed | unchanged
    details: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "change": self.change, "details": list(self.details)}


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


_MISSING = "∅"
#: Values up to this long are shown whole on both sides of the arrow.
SHORT = 60


def _text(v: Any) -> str:
    return _MISSING if v is _ABSENT else str(v)


class _Absent:
    def __repr__(self) -> str:
        return _MISSING


_ABSENT: Any = _Absent()


def _sorted_keys(v: Any) -> Any:
    """``v`` with every dict's keys in sorted order: a stored spec (JSON, keys sorted) and
    the same spec built anew (keys in field order) read alike (QA pass 28)."""
    if isinstance(v, dict):
        return {k: _sorted_keys(v[k]) for k in sorted(v, key=str)}
    if isinstance(v, list | tuple):
        return [_sorted_keys(x) for x in v]
    return v


def _items(v: Any) -> list[str] | None:
    return [str(_sorted_keys(x)) for x in v] if isinstance(v, list | tuple) else None


def describe_values(old: Any, new: Any) -> str:
    """``old → new`` for a changed value, never cut in the middle.

    Short values are shown whole. Long lists show the items removed and added
    (``-[a] +[b, c]``); other long values (text) show what was removed and added
    with a few characters of context on each side (``…abc[-old-]{+new+}def…``).
    """
    a, b = _text(old), _text(new)
    if len(a) <= SHORT and len(b) <= SHORT:
        return f"{a} → {b}"
    xs, ys = _items(old), _items(new)
    if xs is not None and ys is not None:
        import difflib

        removed: list[str] = []
        added: list[str] = []
        matcher = difflib.SequenceMatcher(a=xs, b=ys, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal":
                removed.extend(xs[i1:i2])
                added.extend(ys[j1:j2])
        parts = [f"{len(xs)} → {len(ys)} items"]
        if removed:
            parts.append(f"-[{', '.join(removed)}]")
        if added:
            parts.append(f"+[{', '.join(added)}]")
        if not removed and not added:
            parts.append("same items, reordered")
        return " ".join(parts)
    return _text_change(a, b)


def _text_change(a: str, b: str, context: int = 12) -> str:
    import difflib

    pieces: list[str] = []
    last = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lead = a[max(last, i1 - context) : i1]
        gap = "…" if i1 - context > last else ""
        pieces.append(gap + lead)
        if i2 > i1:
            pieces.append(f"[-{a[i1:i2]}-]")
        if j2 > j1:
            pieces.append(f"{{+{b[j1:j2]}+}}")
        last = i2
        pieces.append(a[i2 : min(len(a), i2 + context)])
        last = min(len(a), i2 + context)
    if last < len(a):
        pieces.append("…")
    return "".join(pieces)


def change_details(
    name: str, new: Mapping[str, Any], old: Mapping[str, Any], changed_inputs: list[str]
) -> list[str]:
    """The differences of one node, each as a short phrase."""
    parts: list[str] = []
    if new.get("op") != old.get("op"):
        parts.append(f"operator {old.get('op')} → {new.get('op')}")
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flat("", old.get("params") or {}, a)
    _flat("", new.get("params") or {}, b)
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key) and not str(b.get(key, "")).startswith("<function"):
            parts.append(
                f"{name}.{key} {describe_values(a.get(key, _ABSENT), b.get(key, _ABSENT))}"
            )
    for key, digest in sorted((new.get("code") or {}).items()):
        if (old.get("code") or {}).get(key) != digest:
            parts += code_changes(
                f"{name}.{key}",
                (old.get("code_parts") or {}).get(key),
                (new.get("code_parts") or {}).get(key),
            )
    extra_new, extra_old = new.get("extra") or {}, old.get("extra") or {}
    for key in sorted(set(extra_new) | set(extra_old)):
        if key != "source" and extra_new.get(key) != extra_old.get(key):
            was, now = extra_old.get(key, _ABSENT), extra_new.get(key, _ABSENT)
            if key == "approx":  # the approximation's settings, not a dict diff
                was, now = _approximation(was), _approximation(now)
            parts.append(f"{key} {describe_values(was, now)}")
    if changed_inputs:
        parts.append("input changed: " + ", ".join(changed_inputs))
    return parts


def _approximation(settings: Any) -> str:
    """An approximation's settings as a reader wants them: exact, or the sample.

    >>> _approximation(None)
    'exact'
    >>> _approximation({"fraction": 0.1, "seed": 0, "precision": "fp32", "epochs_scale": 10.0})
    'approximate (sample 0.1, seed 0, fp32)'
    """
    if settings is _ABSENT or not isinstance(settings, Mapping):
        return "exact"
    shown = [
        f"sample {settings['fraction']:g}" if isinstance(settings.get("fraction"), float) else "",
        f"seed {settings['seed']}" if "seed" in settings else "",
        str(settings.get("precision") or ""),
    ]
    return f"approximate ({', '.join(s for s in shown if s)})"


def code_changes(
    where: str, old: Mapping[str, str] | None, new: Mapping[str, str] | None
) -> list[str]:
    """What changed in the code of parameter ``where`` (``node.param``), named as finely
    as the parts of its digest allow: the code itself, a constant or closure value it
    reads, a helper's code or what that helper reads, an environment variable, a file.

    >>> code_changes("f.fn", {"<code>": "a", "STEP": "1"}, {"<code>": "a", "STEP": "2"})
    ['STEP read by f.fn']
    >>> code_changes("f.fn", {"h": "1", "h/<code>": "1", "h/W": "1"}, {"h": "2", "h/<code>": "1", "h/W": "2"})
    ['W read by h (called by f.fn)']
    """
    if not old or not new:  # recorded before the parts were: the code as a whole
        return [f"code of {where}"]
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    # A helper's own entry changes with anything inside it: name the innermost parts.
    innermost = [k for k in changed if not any(o.startswith((k + "/", k + ".")) for o in changed)]
    out = []
    for key in innermost:
        helper, _, leaf = key.rpartition("/")
        reader = f"{helper} (called by {where})" if helper else where
        if leaf.startswith("$"):
            leaf = f"environment variable {leaf[1:]}"
        if leaf == "<code>":
            out.append(f"code of {reader}")
        elif key not in old or key not in new:
            out.append(f"{leaf} {'now' if key in new else 'no longer'} read by {reader}")
        else:
            out.append(f"{leaf} read by {reader}")
    return out or [f"code of {where}"]


def describe_change(
    name: str, new: Mapping[str, Any], old: Mapping[str, Any] | None, changed_inputs: list[str]
) -> str:
    """Why node ``name`` differs from its previous version, as one phrase."""
    if old is None:
        return "new node"
    parts = change_details(name, new, old, changed_inputs)
    if not parts:
        return "changed: data or implementation version"
    return "changed: " + "; ".join(parts)


def diff_versions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[NodeChange]:
    """Node-by-node changes from ``old`` to ``new`` (both ``CompiledWorkflow.to_dict()``)."""
    old_nodes = {n["name"]: n for n in old.get("nodes", [])}
    new_nodes = {n["name"]: n for n in new.get("nodes", [])}
    out: list[NodeChange] = []
    for name, node in new_nodes.items():
        prev = old_nodes.get(name)
        if prev is None:
            out.append(
                NodeChange(
                    name=name, change="added", details=(f"{node.get('op') or node.get('role')}",)
                )
            )
            continue
        if prev.get("fingerprint") == node.get("fingerprint"):
            out.append(NodeChange(name=name, change="unchanged", details=()))
            continue
        changed_inputs = [
            i
            for i in node.get("inputs", [])
            if old_nodes.get(i, {}).get("fingerprint") != new_nodes.get(i, {}).get("fingerprint")
        ]
        details = change_details(name, node, prev, changed_inputs) or [
            "data or implementation version"
        ]
        out.append(NodeChange(name=name, change="changed", details=tuple(details)))
    for name, node in old_nodes.items():
        if name not in new_nodes:
            out.append(
                NodeChange(
                    name=name, change="removed", details=(f"{node.get('op') or node.get('role')}",)
                )
            )
    return out
