"""The files under a folder, as a reader of that folder sees them; the umask new files take.

Every place that identifies a folder by its files (a UDF's declared folder, a TFDS
``data_dir``) lists them through :func:`files_under`, so they agree on what "the
folder's content" is: symbolic links to folders are followed (a reader opening
``folder/sub/x.json`` reads through the link, so an edit there must change the folder's
identity), each real folder is entered once (a link back to an ancestor is no endless
walk), and the order is stable (sorted names at every level).
"""

from __future__ import annotations

import os

__all__ = ["files_under", "process_umask"]


def files_under(folder: str | os.PathLike[str]) -> list[str]:
    """Every file under ``folder`` (links to files and folders followed), sorted per level.

    A link that leads back into a folder already being listed is skipped, so a cycle
    ends; a broken link is listed like a file (reading it then names it).
    """
    found: list[str] = []
    seen: set[str] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back to a folder already listed
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        found += [os.path.join(root, name) for name in sorted(names)]
    return found


def process_umask() -> int:
    """This process' umask, read without changing it (a thread creating a file meanwhile
    would get the wrong permissions): Linux' ``/proc/self/status``; elsewhere set and
    put back at once. A served run takes its client's (the fork is the server's
    otherwise), and the server's trainer writes a served run's model file under the
    run's (QA 24)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
