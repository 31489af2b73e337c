"""The one error type that means "this input is bad, do not retry it".

The flow quarantines a video that raises BadVideoError and retries any other exception
(assumed transient: out of memory, a killed worker, a full disk).
"""
from __future__ import annotations

from pathlib import Path


class BadVideoError(ValueError):
    """The file cannot become clips: unreadable, not a video, unsupported size or codec."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")
