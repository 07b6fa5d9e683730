"""Which process owns a queued or running row (an import batch, a forecast run), and
whether that process still runs.

A row names its owner as ``host:pid:token``. ``host`` is the host name and, on Linux, the
pid namespace: two containers sharing the host's name (host networking) do not see each
other's pids, so neither may judge the other's rows by pid. The token is drawn once per
process, so a restarted process that got the same pid (as in a container) is told from the
one that died.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

__all__ = ["HOST", "PROCESS_TOKEN", "process_owner", "owner_alive", "owner_gone"]

#: Drawn once per process: tells this process from an earlier one with the same pid.
PROCESS_TOKEN = uuid.uuid4().hex[:12]


def _host() -> str:
    """The host name, with the pid namespace where there is one (``name/inode``)."""
    try:
        return f"{socket.gethostname()}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # no /proc (not Linux): the host name alone
        return socket.gethostname()


#: Where this process's pids mean something: rows of other hosts are judged by silence.
HOST = _host()


def process_owner() -> str:
    """``host:pid:token`` of this process."""
    return f"{HOST}:{os.getpid()}:{PROCESS_TOKEN}"


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process named by ``owner`` runs (``None``: cannot tell -- another host, or
    a row written before owners were recorded)."""
    if not owner or owner.count(":") != 2:
        return None
    host, pid_text, token = owner.split(":")
    if host != HOST or not pid_text.isdigit():
        return None
    if token == PROCESS_TOKEN:
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # an earlier process with this pid (a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_gone(owner: str | None, last_seen: dt.datetime | None, *, now: dt.datetime,
               stale_after: dt.timedelta) -> bool:
    """Whether the owner of a row left ``queued`` or ``running`` is gone: on this host, its
    process no longer runs; elsewhere (or unknown), no sign of life since ``last_seen`` for
    ``stale_after`` (a row with no sign of life at all counts as seen ``now``)."""
    alive = owner_alive(owner)
    if alive is not None:
        return not alive
    return now - (last_seen or now) > stale_after
