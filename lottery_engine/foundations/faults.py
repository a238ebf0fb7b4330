"""One line that names the cause of a failure, for a job's status and the CLI's last word.

A user reads `failed: disk full ...` in a table cell or a terminal; the traceback goes to a log.
"""

from __future__ import annotations

import errno
from pathlib import Path

_OS_CAUSES = {
    errno.ENOSPC: "disk full: no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENOMEM: "out of memory",
}


class UserError(Exception):
    """An error the user can fix from its message alone (a config value, a job id, a folder):
    the CLI prints the message, no traceback file."""


def describe(exc: BaseException, folder: Path | None = None) -> str:
    """A one-line reason for `exc`. A file-system error names its cause and where: the file, or
    for a full disk the folder being written (`folder`, the run's, when the error names none)."""
    if isinstance(exc, OSError) and exc.errno in _OS_CAUSES:
        cause = _OS_CAUSES[exc.errno]
        path = Path(str(exc.filename)) if exc.filename else None
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = path.parent if path else folder
            return f"{cause} while writing to the folder {where}" if where else cause
        return f"{cause}: {path}" if path else cause
    if isinstance(exc, MemoryError):
        return "out of memory"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
