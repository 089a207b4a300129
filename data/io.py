"""Whole-or-nothing output writing: every file and folder the project produces goes through here."""
from __future__ import annotations

import errno
import os
import random
import re
import shutil
import socket
import stat
import tempfile
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STALE_TEMPORARY_AGE_S = 24 * 3600
"""Hidden leftovers of :func:`atomic_directory` whose owner cannot be checked (written on another host, or by the
former unattributed naming scheme) are removed once they are this old (seconds, by modification time)."""
_REPLACE_ATTEMPTS = 200


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; on success it is renamed onto ``path``.

    The temporary keeps ``path``'s suffix so writers that pick a format from the extension work. On an
    exception the temporary is removed and ``path`` is left untouched.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write file {path}: a directory is in the way")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def clean_stale_temporaries(path: str | Path, max_age_s: float = STALE_TEMPORARY_AGE_S) -> list[Path]:
    """Remove the hidden leftovers of killed :func:`atomic_directory` writers of ``path``.

    A temporary or trash folder is named ``.<name>.tmp-<pid>-<host>-<random>`` / ``.<name>.old-...``: it is removed
    when its process is dead on this host; a live writer's folder is never touched. Folders of another host, and
    those of the former ``.<name>.<8 random characters>`` scheme, are removed when older than ``max_age_s``.
    Returns the removed folders.
    """
    path = Path(path)
    name = re.escape(path.name)
    ours = re.compile(rf"^\.{name}\.(?:tmp|old)-(\d+)-([0-9a-f]{{8}})-[A-Za-z0-9_]+$")
    legacy = re.compile(rf"^\.{name}\.[a-z0-9_]{{8}}$")  # tempfile.mkdtemp's 8 characters
    host, removed = _host_tag(), []
    try:
        entries = list(path.parent.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        m = ours.match(entry.name)
        if m and m.group(2) == host:
            stale = not _pid_alive(int(m.group(1)))
        elif m or legacy.match(entry.name):
            try:
                stale = time.time() - entry.lstat().st_mtime > max_age_s
            except FileNotFoundError:
                continue
        else:
            continue
        if stale and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _is_non_directory(path: Path) -> bool:
    """One ``stat``: ``exists() and not is_dir()`` would race with a concurrent writer's move-aside."""
    try:
        return not stat.S_ISDIR(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _replace_directory(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` onto ``path``, moving whatever is there aside first; safe with concurrent writers.

    ``rename`` succeeds onto a missing or empty directory and fails with ENOTEMPTY/EEXIST onto a full one; then
    the current content is renamed to a private trash name (another writer may have taken it already) and the
    rename retried. Each writer's result is whole; the last rename wins.
    """
    prefix = f".{path.name}.old-{os.getpid()}-{_host_tag()}-"
    for attempt in range(_REPLACE_ATTEMPTS):
        try:
            os.rename(tmp, path)
            return
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise NotADirectoryError(f"cannot write folder {path}: a file is in the way") from None
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        trash = path.parent / f"{prefix}{random.getrandbits(40):010x}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:  # another writer moved it aside in between: try again
            pass
        else:
            shutil.rmtree(trash, ignore_errors=True)
        if attempt >= 10:  # heavy contention: let the other writers finish their renames
            time.sleep(random.uniform(0, 0.001 * attempt))
    raise OSError(errno.EBUSY, f"could not replace {path}: other writers kept replacing it "
                               f"({_REPLACE_ATTEMPTS} attempts); run the writers one at a time")


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` (any old one removed).

    Safe with several processes writing the same ``path``: none fails, the last to finish wins, and ``path``
    always holds one writer's complete output. Leftovers of killed writers of ``path`` are removed first
    (:func:`clean_stale_temporaries`). On an exception ``path`` is left untouched.
    """
    path = Path(path)
    if _is_non_directory(path):
        raise NotADirectoryError(f"cannot write folder {path}: a file is in the way")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-{_host_tag()}-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        _replace_directory(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
