"""Is the journal directory on a filesystem that outlives the process and the machine's reboot?

The journal protects a call only if its directory survives what kills the worker. A tmpfs
(or ramfs) is memory: a reboot, or on Kubernetes the pod's end (an `emptyDir` with
`medium: Memory`), takes every pending journal with it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger("conversation_manager.journal")

VOLATILE_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs"})
MOUNTS = Path("/proc/self/mounts")


def filesystem_of(directory: Path, mounts: Path = MOUNTS) -> str | None:
    """The type of the filesystem `directory` is (or would be created) on; None if unknown."""
    path = directory.resolve()  # a part not created yet lies on the mount of its longest existing prefix
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def volatile_journal_warning(directory: Path, mounts: Path = MOUNTS) -> str | None:
    """The warning a worker logs at start-up when `directory` does not survive a reboot."""
    kind = filesystem_of(directory, mounts)
    if kind not in VOLATILE_FILESYSTEMS:
        return None
    return (
        f"JOURNAL_DIR {directory} is on {kind}, which does not survive a reboot: a worker that dies with calls "
        "in progress loses their records with it. Give each worker a persistent volume (on Kubernetes a "
        'StatefulSet volume claim, not an emptyDir); see README "Recovery"'
    )


def warn_if_volatile(directory: Path) -> str | None:
    warning = volatile_journal_warning(directory)
    if warning is not None:
        logger.warning(warning, extra={"pid": os.getpid()})
    return warning
