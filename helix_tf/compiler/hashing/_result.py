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
        ``"helper/NAME"``. Environment variables read appear as ``"$NAME"``.
    refusals : tuple of str
        Why results computed by this code must not be reused: something it
        reads whose state cannot be read reliably (an object that cannot be
        hashed, an environment variable or file named at run time). Empty
        when the digest covers everything the code reads.
    files : tuple of FileRead
        The calls that open or read files, found in the code and its helpers.
    unseeded : tuple of str
        Calls that draw from an unseeded or global random generator.
    seed_parameters : tuple of (str, str)
        Parameters of the callable that default to None and seed its draws, with the
        call that uses each: None unless a caller passes one. The callers found in
        other code are checked there; :func:`code_fingerprint` refuses the callable it
        is given when it has any (helix_tf calls a UDF with its row or batch only).
    parts : tuple of (str, str)
        A short digest of each part of the digest, by name: ``"<code>"`` (the
        normalised code and its defaults), each name read (``"SCALE"``,
        ``"helpers.normalise"``), and a helper's parts prefixed with its name
        (``"normalise/<code>"``, ``"normalise/WIDTH"``): what lets ``diff`` name the
        constant or helper that changed instead of "the code".
    state_reads : tuple of str
        The keys of the state outside the call the code reads (``"module.NAME"``,
        ``"cell:<id>"``, ``"object:<id>"``: ids of this process, for matching against
        writes within one compilation, never hashed).
    state_writes : tuple of (str, bool, tuple of str)
        Writes into state outside the call, by the code or its helpers: the write as
        shown (``STATE['m'] = ... (cfg.py:12, in fit)``), whether what it writes comes
        from the function's parameters, and the keys of what it changes.
    mutated_parameters : tuple of (str, bool, str)
        Parameters the callable changes in place, with whether the write comes from its
        other parameters and the write as shown (its callers are judged where they pass
        them; not merged into callers).
    """

    digest: str
    analysable: bool
    notes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()
    files: tuple[FileRead, ...] = ()
    unseeded: tuple[str, ...] = ()
    seed_parameters: tuple[tuple[str, str], ...] = ()
    parts: tuple[tuple[str, str], ...] = ()
    # Ids of this process: not shown nor compared (equal fingerprints are equal anywhere).
    state_reads: tuple[str, ...] = dataclasses.field(default=(), repr=False, compare=False)
    state_writes: tuple[tuple[str, bool, tuple[str, ...]], ...] = dataclasses.field(
        default=(), repr=False, compare=False
    )
    mutated_parameters: tuple[tuple[str, bool, str], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FileRead:
    """One call in user code that opens or reads a file.

    Attributes
    ----------
    call : str
        The call as written, e.g. ``"open(LOOKUP)"``.
    where : str
        ``file:line`` of the call.
    function : str
        The qualified name of the function that makes the call.
    path : str or None
        The file, when the code names it by a value known at compile time (a
        literal, a constant, a closure value); its content is then hashed.
    """

    call: str
    where: str
    function: str
    path: str | None


@dataclasses.dataclass(slots=True)
class _Collector:
    notes: list[str] = dataclasses.field(default_factory=list)
    reads: list[str] = dataclasses.field(default_factory=list)
    refusals: list[str] = dataclasses.field(default_factory=list)
    files: list[FileRead] = dataclasses.field(default_factory=list)
    unseeded: list[str] = dataclasses.field(default_factory=list)
    #: Not merged from helpers: their callers are checked where they call them.
    seed_parameters: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    parts: dict[str, str] = dataclasses.field(default_factory=dict)
    state_reads: set[str] = dataclasses.field(default_factory=set)
    state_writes: list[tuple[str, bool, tuple[str, ...]]] = dataclasses.field(default_factory=list)
    #: Not merged from helpers: their callers are judged where they pass them.
    mutated_parameters: list[tuple[str, bool, str]] = dataclasses.field(default_factory=list)
    analysable: bool = True

    def part(self, name: str, digest: str) -> None:
        self.parts.setdefault(name, digest[:12])

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def refuse(self, text: str) -> None:
        if text not in self.refusals:
            self.refusals.append(text)

    def read(self, name: str) -> None:
        if name not in self.reads:
            self.reads.append(name)

    def merge(self, fp: CodeFingerprint, label: str) -> None:
        self.analysable = self.analysable and fp.analysable
        for note in fp.notes:
            self.note(f"{label}: {note}")
        for name in fp.reads:
            self.read(f"{label}/{name}")
        for text in fp.refusals:
            self.refuse(text)
        self.files.extend(f for f in fp.files if f not in self.files)
        self.unseeded.extend(u for u in fp.unseeded if u not in self.unseeded)
        for name, digest in fp.parts:
            self.part(f"{label}/{name}", digest)
        self.state_reads.update(fp.state_reads)
        self.state_writes.extend(w for w in fp.state_writes if w not in self.state_writes)
