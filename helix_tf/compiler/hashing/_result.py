"""What fingerprinting code gives: :class:`CodeFingerprint`, and the notes and reads behind it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CodeFingerprint:
    """The identity of a callable's behaviour.

    Attributes
    ----------
    digest : str
        32 hex characters; equal digests mean equal normalised code and equal
        values of everything the code reads.
    analysable : bool
        False when some code could not be analysed from source (builtins, C
        extensions, code without source) or some value read could not be hashed;
        such parts are identified by name, version or bytecode only.
    notes : tuple of str
        Human-readable notes, e.g. ``"reads module constant SCALE = 2"``,
        ``"calls helper normalise()"``; a helper's notes are prefixed with its name.
    reads : tuple of str
        Sorted names of the globals, closure variables, module attributes and
        helpers the code depends on; a helper's own reads appear as
        ``"helper/NAME"``.
    """

    digest: str
    analysable: bool
    notes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()


@dataclasses.dataclass(slots=True)
class _Collector:
    notes: list[str] = dataclasses.field(default_factory=list)
    reads: list[str] = dataclasses.field(default_factory=list)
    analysable: bool = True

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def read(self, name: str) -> None:
        if name not in self.reads:
            self.reads.append(name)

    def merge(self, fp: CodeFingerprint, label: str) -> None:
        self.analysable = self.analysable and fp.analysable
        for note in fp.notes:
            self.note(f"{label}: {note}")
        for name in fp.reads:
            self.read(f"{label}/{name}")
