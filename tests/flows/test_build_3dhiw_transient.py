"""A decode that fails for a reason other than the data (MemoryError) is retried, not quarantined."""
from __future__ import annotations

import pytest

from tests.fixtures.bad_inputs import write_video


@pytest.mark.slow
@pytest.mark.prefect
def test_memory_error_while_decoding_is_retried_not_quarantined(prefect_harness, tmp_path, monkeypatch):
    from clutch_core import video
    from flows.build_3dhiw import build_3dhiw
    from storage.ledger import Ledger

    path = write_video(tmp_path / "v.mp4", 160, 120, [i / 30 for i in range(30)])
    real, calls = video.PyAVReader.iter_frames, []  # the default reader of H.264

    def once_out_of_memory(self, indices):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("decoder could not allocate a frame")
        yield from real(self, indices)

    monkeypatch.setattr(video.PyAVReader, "iter_frames", once_out_of_memory)
    s = build_3dhiw(videos=[str(path)], out=str(tmp_path / "D"), retries=1, retry_delay_s=0, progress=False)
    assert len(calls) >= 2, "the video was not decoded again"
    assert (s["done"], s["failed"], s["quarantined"]) == (1, 0, 0)
    assert Ledger(tmp_path / "D").counts().get("quarantined", 0) == 0
