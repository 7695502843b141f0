"""Outputs that one job at a time writes, published whole or not at all.

Two jobs given the same output (``fink-t2 score`` with either engine, the
stream's output and checkpoint) must not both report success while one's
alerts are lost. Each job takes an exclusive lock beside its output
(:func:`lock_output`, a ``flock`` on ``.NAME.fink-t2-lock``, released by the
kernel if the job dies) before it checks the output again and writes; the
other fails with one line. The finished output is moved in by
:func:`publish`: without ``--overwrite`` a rename that never replaces
anything (an output that appeared meanwhile is an error, nothing is lost);
with it, the new output and the old one are exchanged in one step and the
old one deleted, so a reader sees the old output or the new, never a mix.
Local POSIX file systems (``renameat2`` on Linux; elsewhere the same
guarantees hold against other fink-t2 jobs, through the lock).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
from pathlib import Path

from fink_t2.scoring.inputs import InputError


class OutputBusyError(InputError):
    """Another job holds the output, or the output appeared while this job ran."""


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``: hidden, beside it (so every job naming the output finds the same one)."""
    output = Path(os.path.abspath(output))
    return output.parent / f".{output.name}.fink-t2-lock"


class OutputLock:
    """An exclusive lock on one output path, held until :meth:`release` (or the process ends)."""

    def __init__(self, output: str | Path, what: str = "output", flag: str = "--output") -> None:
        self.output, self.what, self.flag = Path(output), what, flag
        self.path = lock_path(output)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = self._acquire()
        except OSError as error:
            raise InputError(f"cannot lock {what} {output} ({error.strerror or error}, lock {self.path}): fix the "
                             f"folder's permissions or choose another {flag}; nothing was written") from error

    def _acquire(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise OutputBusyError(f"{self.what} {self.output} is being written by another fink-t2 job (pid "
                                      f"{holder}, lock {self.path}): wait for it to finish or choose another "
                                      f"{self.flag}; nothing was written") from None
            try:  # a holder that released meanwhile unlinked the file we opened: lock the new one
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, str(os.getpid()).encode(), 0)
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file (still holding the lock, so no job can lock a file about to vanish), unlock."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_output(output: str | Path, what: str = "output", flag: str = "--output") -> OutputLock:
    """The lock of ``output``; OutputBusyError (one line: who holds it, what to do) if another job holds it."""
    return OutputLock(output, what, flag)


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """Linux ``renameat2``: True when done, False where the system or file system lacks it; OSError otherwise."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(str(source)), _AT_FDCWD, os.fsencode(str(target)), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(target))


def remove(path: Path) -> None:
    """Delete a file or folder (a temporary output), whatever it is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish(finished: Path, output: Path, replace: bool) -> None:
    """Move the ``finished`` file or folder to ``output`` in one step.

    ``replace`` False: never replaces anything; OutputBusyError if ``output``
    appeared while the job ran (``finished`` stays for the caller to remove).
    True: an existing output (file or folder, whatever it held) is exchanged
    with ``finished`` atomically where the system can (else renamed aside, the
    new one renamed in), then deleted: no stale part file survives.
    """
    if not replace:
        try:
            if not _renameat2(finished, output, _RENAME_NOREPLACE):
                if os.path.lexists(output):
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(output))
                os.rename(finished, output)
        except FileExistsError:
            raise OutputBusyError(f"output {output} appeared while this job ran (another job wrote it): this job's "
                                  "result was not published, the other output is left as it is; choose another "
                                  "--output or pass --overwrite") from None
        return
    if not os.path.lexists(output):
        publish(finished, output, replace=False)
        return
    if _renameat2(finished, output, _RENAME_EXCHANGE):
        remove(finished)  # now the old output
        return
    old = output.parent / f".{output.name}.fink-t2-old-{os.getpid()}"
    os.rename(output, old)
    try:
        os.rename(finished, output)
    except OSError:
        os.rename(old, output)
        raise
    remove(old)
