"""The one error type that means "this input is bad, do not retry it" (defined in clutch_core.video).

The flow quarantines a video that raises BadVideoError and retries any other exception
(assumed transient: out of memory, an I/O error, a killed worker, a full disk).
"""
from __future__ import annotations

from clutch_core.video import BadVideoError

__all__ = ["BadVideoError"]
