"""The file channel: append one JSON line per message to ``<file_dir>/<destination>.jsonl``.

The embedded default: ``make run`` shows dispatches without any external service. Lines are
written with one ``write`` on an ``O_APPEND`` descriptor under an exclusive ``flock``, so
threads and processes never interleave them.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from service.channels.base import Channel, Message, PermanentDeliveryError, Receipt

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["FileChannel"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class FileChannel(Channel):
    """Write messages as JSON lines into a folder (one file per destination)."""

    name = "file"

    def __init__(self, *, folder: Path, fsync: bool = False) -> None:
        self.folder = Path(folder)
        self.fsync = fsync

    @classmethod
    def from_settings(cls, settings: Settings) -> FileChannel:
        return cls(folder=settings.channels.file_dir)

    def validate(self, destination: str) -> str:
        if not _NAME.match(destination) or ".." in destination:
            raise PermanentDeliveryError(
                f"file destination '{destination}' must be a plain name like 'public'")
        return destination

    def path_for(self, destination: str) -> Path:
        return self.folder / f"{self.validate(destination)}.jsonl"

    def send(self, message: Message) -> Receipt:
        path = self.path_for(message.destination)
        line = json.dumps({
            "idempotency_key": message.idempotency_key,
            "campaign_id": message.campaign_id,
            "recipient_id": message.recipient_id,
            "subject": message.subject,
            "body": message.body,
            "data": message.data,
            "written_at": dt.datetime.now(dt.UTC).isoformat(),
        }, ensure_ascii=False, separators=(",", ":")) + "\n"
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode())
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        return Receipt(status=None, detail=str(path))
