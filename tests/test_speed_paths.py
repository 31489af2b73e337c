"""The speed paths change no result: read-ahead decoding, the presence rule, amp=auto's CPU rule."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from clutch_core.video import BadVideoError, read_ahead_iter


def test_read_ahead_yields_the_same_items_in_order():
    items = [np.full((2, 4, 4, 3), i, np.uint8) for i in range(9)]
    got = list(read_ahead_iter(iter(items), depth=2))
    assert len(got) == 9 and all((a == b).all() for a, b in zip(got, items))


def test_read_ahead_raises_the_producers_error_where_it_happened():
    def produce():
        yield 1
        yield 2
        raise BadVideoError("v.mp4", "truncated")

    seen = []
    with pytest.raises(BadVideoError, match="v.mp4: truncated"):
        for x in read_ahead_iter(produce(), depth=1):
            seen.append(x)
    assert seen == [1, 2]


def test_read_ahead_stops_its_thread_when_the_consumer_stops_early():
    produced = []

    def produce():
        for i in range(1000):
            produced.append(i)
            yield i

    before = threading.active_count()
    for x in read_ahead_iter(produce(), depth=2):
        if x == 3:
            break
    assert threading.active_count() == before  # joined, not left running
    assert len(produced) <= 3 + 1 + 2 + 1  # at most depth (+ one in hand) past the consumer


def test_amp_auto_never_picks_bf16_without_native_support(monkeypatch):
    import torch

    from clutch_core.shift import train
    from clutch_core.shift.model import build_tokenizer

    no_bf16 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni\n"
    with_bf16 = no_bf16.replace("avx512_vnni", "avx512_vnni avx512_bf16")
    assert not train.cpu_has_native_bf16(no_bf16)
    assert train.cpu_has_native_bf16(with_bf16)
    assert train.cpu_has_native_bf16("Features\t: fp asimd bf16 i8mm\n")  # Arm
    assert train.cpu_has_native_bf16(no_bf16.replace("avx512_vnni", "amx_bf16 amx_tile"))

    cfg = train.preset_config("tiny", width=32, code_dim=16, codes=32)
    model = build_tokenizer(cfg.tokenizer)
    x, p = torch.randn(2, 16, 198), torch.ones(2, 16, 2, dtype=torch.bool)
    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    monkeypatch.setattr(train, "_time_steps", lambda *a, **k: (10.0, 1.0))  # even if bf16 looked 10x faster
    on, why = train.resolve_amp(cfg, torch.device("cpu"), model, x, p)
    assert not on and "no native bf16" in why
    off = train.preset_config("tiny", amp="off")
    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    assert train.resolve_amp(off, torch.device("cpu"), model, x, p)[0] is False


def test_amp_auto_follows_the_measurement_and_restores_the_model(monkeypatch):
    import torch

    from clutch_core.shift import train
    from clutch_core.shift.model import build_tokenizer

    cfg = train.preset_config("tiny", width=32, code_dim=16, codes=32)
    model = build_tokenizer(cfg.tokenizer).train()
    x, p = torch.randn(2, 16, 198), torch.ones(2, 16, 2, dtype=torch.bool)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    f32, b16 = train._time_steps(model, x, p, torch.device("cpu"), repeats=1)  # really runs both
    assert f32 > 0 and b16 > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # EMA codebooks too
    assert torch.equal(rng, torch.get_rng_state())
    assert all(q.grad is None for q in model.parameters())

    monkeypatch.setattr(train, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr(train, "_MEASURED", {})
    monkeypatch.setattr(train, "_time_steps", lambda *a, **k: (1.0, 1.0 / (train.AMP_MIN_SPEEDUP - 0.05)))
    assert train.resolve_amp(cfg, torch.device("cpu"), model, x, p)[0] is False  # not faster enough
    monkeypatch.setattr(train, "_MEASURED", {})
    monkeypatch.setattr(train, "_time_steps", lambda *a, **k: (2.0, 1.0))
    on, why = train.resolve_amp(cfg, torch.device("cpu"), model, x, p)
    assert on and "2.00x" in why
