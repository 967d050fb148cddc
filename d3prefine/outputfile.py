"""Output files: atomic writes, and claims that keep two processes from writing the same name.

Beside an output ``walk.refined.npz`` (in the same folder, hidden):

* ``.walk.refined.npz.<8 hex>.tmp``: the file being written (:func:`atomic_file`), renamed over
  the output once complete; removed on any error, Ctrl-C or SIGTERM (the command line turns
  SIGTERM into an exception), so only a process killed outright (SIGKILL, power loss) leaves one.
* ``.walk.refined.npz.lock``: the claim (:func:`claim_output`), held with an exclusive
  ``flock`` from before the computation until the output is written, and removed then. The
  kernel drops the lock of a process that dies, so a lock file left by a killed run is taken
  over, and the temporaries that run left are removed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from d3prefine.errors import OutputError


def _hidden_stem(path: Path) -> str:
    """The output's name shortened to 200 bytes: room for the marks within a 255-byte file name."""
    return path.name.encode()[:200].decode(errors="ignore")


def lock_path(path: Path) -> Path:
    """The claim file of the output ``path``: ``.<name>.lock`` beside it."""
    return path.with_name(f".{_hidden_stem(path)}.lock")


def temporaries(path: Path) -> list[Path]:
    """The temporary files :func:`atomic_file` makes for ``path`` that exist now (finished or not)."""
    pattern = re.compile(rf"\.{re.escape(_hidden_stem(path))}\.[0-9a-f]{{8}}\.tmp")
    try:
        return sorted(entry for entry in path.parent.iterdir() if pattern.fullmatch(entry.name))
    except OSError:
        return []


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success fsync and rename it to ``path``.

    On any exception (``KeyboardInterrupt`` and the command line's SIGTERM included) the
    temporary file is removed and ``path`` is left untouched.
    """
    temp = path.with_name(f".{_hidden_stem(path)}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:
        raise OutputError(f"{path}: cannot write in {path.parent} ({error.strerror})") from None
    try:
        yield temp
        descriptor = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _lock(path: Path) -> int:
    """Open and exclusively lock ``path``'s claim file; its descriptor. Raises :class:`OutputError`."""
    lock = lock_path(path)
    for _ in range(10):  # the previous holder may remove the file between our open and flock
        try:
            descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise OutputError(f"{path}: cannot write in {path.parent} ({error.strerror})") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(descriptor)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise OutputError(f"{path}: being written by {holder} (lock {lock.name}); wait for it or choose another output") from None
            raise OutputError(f"{path}: cannot lock {lock} ({error.strerror})") from None
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(descriptor).st_ino:
            return descriptor
        os.close(descriptor)
    raise OutputError(f"{path}: cannot lock {lock} (it keeps being replaced)")


@contextmanager
def claim_output(path: str | os.PathLike) -> Iterator[None]:
    """Hold the output name ``path`` for this process while the block runs.

    A second claim of the same name, by any process, fails at once with :class:`OutputError`
    ("being written by pid ... on host ...") instead of computing the same output twice. Once
    claimed, temporaries of ``path`` left by a killed run are removed. The claim file is removed
    when the block ends, however it ends.

    Raises:
        OutputError: the folder is missing or unwritable, or another process holds the claim.
    """
    path = Path(path)
    descriptor = _lock(path)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        for stale in temporaries(path):
            stale.unlink(missing_ok=True)
        yield
    finally:
        lock_path(path).unlink(missing_ok=True)
        os.close(descriptor)


def check_claimable(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` now if :func:`claim_output` would fail (unwritable folder,
    another process writing ``path``); leaves no file behind."""
    with claim_output(path):
        pass
