"""The client/server protocol: framed messages with descriptors, the code stamp, the socket."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from helix_tf.server._protocol import code_stamp, receive, send, socket_path


def test_messages_and_descriptors_cross_a_socket() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    with a, b:
        send(a, {"op": "run", "argv": ["run", "x.py"], "text": "≈ unicode"}, fds=[w])
        send(a, {"second": 2})
        message, fds = receive(b, max_fds=3)
        assert message == {"op": "run", "argv": ["run", "x.py"], "text": "≈ unicode"}
        assert len(fds) == 1
        # The received descriptor is the pipe's write end: what is written comes out of r.
        os.write(fds[0], b"through")
        assert os.read(r, 7) == b"through"
        assert receive(b) == ({"second": 2}, [])
        a.shutdown(socket.SHUT_WR)
        assert receive(b) == (None, [])
    for fd in (r, w, *fds):
        os.close(fd)


def test_an_oversized_message_is_refused() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        a.sendall(struct.pack("!I", 1 << 30))
        with pytest.raises(ValueError, match="larger than the protocol allows"):
            receive(b)


def test_stamp_follows_the_variables_read_at_import_only() -> None:
    env = {"HOME": "/h", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}
    base = code_stamp(env)
    assert code_stamp(dict(env)) == base
    assert code_stamp({**env, "HOME": "/elsewhere", "HELIX_TF_DATA": "/d"}) == base
    assert code_stamp({**env, "TF_CPP_MIN_LOG_LEVEL": "3"}) != base
    assert code_stamp({**env, "OMP_NUM_THREADS": "1"}) != base
    assert code_stamp({**env, "PYTHONPATH": "/snapshot"}) != base
    # The locale Python reads at start-up decodes text files opened without an encoding:
    # a fork keeps the server's, so a client with another is not served by it.
    assert code_stamp({**env, "LANG": "de_DE.ISO-8859-1"}) != base
    assert code_stamp({**env, "LC_ALL": "C"}) != base
    assert code_stamp({**env, "LC_CTYPE": "C.UTF-8"}) != base


def test_stamp_follows_helix_tf_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helix_tf.server import _protocol

    pkg = tmp_path / "helix_tf"
    pkg.mkdir()
    module = pkg / "mod.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(_protocol, "_package_dir", lambda: str(pkg))
    before = code_stamp({})
    module.write_text("x = 22\n")
    assert code_stamp({}) != before


def test_stamp_follows_the_installed_packages_only_in_its_packages_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A package installed or removed changes a site-packages folder's listing (its mtime).
    import os
    import site

    from helix_tf.server._protocol import stale_reasons, stamp_parts

    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(folder)])
    monkeypatch.setattr(site, "getusersitepackages", lambda: str(tmp_path / "no-user-site"))
    before = stamp_parts({})
    (folder / "newpkg").mkdir()
    os.utime(folder, ns=(1, folder.stat().st_mtime_ns + 1))  # coarse clocks: surely later
    assert stale_reasons(before, stamp_parts({})) == ["packages"]


def test_stamp_follows_packages_installed_into_a_pythonpath_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pip install --target DIR` with DIR on $PYTHONPATH shadows site-packages without
    # touching it: a server that imported the old copy must be found stale. Files the
    # project itself writes in that folder (a store, results) must not restart it.
    import os
    import shutil
    import site

    from helix_tf.server._protocol import stale_reasons, stamp_parts

    folder = tmp_path / "site-packages"
    folder.mkdir()
    target = tmp_path / "vendored"
    target.mkdir()
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(folder)])
    monkeypatch.setattr(site, "getusersitepackages", lambda: str(tmp_path / "no-user-site"))
    environ = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "absent"), str(target)])}
    before = stamp_parts(environ)
    (target / "store").mkdir()
    (target / "results.json").write_text("{}")
    assert stale_reasons(before, stamp_parts(environ)) == []
    dist = target / "pandas-2.2.0.dist-info"
    dist.mkdir()
    installed = stamp_parts(environ)
    assert stale_reasons(before, installed) == ["packages"]
    shutil.rmtree(dist)  # reinstalled: the same name, written anew
    dist.mkdir()
    os.utime(dist, ns=(1, dist.stat().st_mtime_ns + 1))  # coarse clocks: surely later
    os.utime(target, ns=(1, target.stat().st_mtime_ns + 1))
    assert stale_reasons(installed, stamp_parts(environ)) == ["packages"]


def test_socket_path_is_per_folder_and_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(tmp_path))
    path = socket_path()
    assert path.parent == tmp_path and path.suffix == ".sock"
    assert len(path.name) <= 24  # Unix socket paths are limited to ~107 bytes


def _identity(python: Path, server_dir: Path) -> str:
    """What ``python`` (a real process) names as its server socket and code stamp."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "HELIX_TF_SERVER_DIR": str(server_dir)}
    script = (
        "from helix_tf.server._protocol import socket_path, stamp_parts\n"
        "print(socket_path().name, sorted(stamp_parts().items()))\n"
    )
    out = subprocess.run(
        [str(python), "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_one_environment_reached_by_any_path_is_one_server(tmp_path: Path) -> None:
    # python, python3, python3.X of one venv, and that venv through a symlinked folder,
    # are one interpreter with one set of packages: one socket, one stamp (a server
    # started with one of them serves clients started with another). Another venv is
    # another environment with a server of its own.
    import subprocess
    import sys

    venv = tmp_path / "venv"
    other = tmp_path / "other"
    for folder in (venv, other):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    linked = tmp_path / "linked"
    linked.symlink_to(venv, target_is_directory=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    server_dir = tmp_path / "sockets"
    names = [n for n in ("python", "python3", version) if (venv / "bin" / n).exists()]
    assert len(names) >= 2, names
    seen = {_identity(root / "bin" / name, server_dir) for root in (venv, linked) for name in names}
    assert len(seen) == 1, seen
    (one,) = seen
    assert _identity(other / "bin" / "python", server_dir).split()[0] != one.split()[0]
