"""One meaning of amp=auto for every trainer: native-bf16 CPUs only, and only when measured faster."""
import json

import pytest
import torch

from clutch_core.training import precision

NO_BF16 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni\n"


def _tokenizer():
    from clutch_core.shift.model import build_tokenizer
    from clutch_core.shift.train import preset_config

    model = build_tokenizer(preset_config("tiny", width=32, code_dim=16, codes=32).tokenizer).train()
    x, p = torch.randn(2, 16, 198), torch.ones(2, 16, 2, dtype=torch.bool)

    def step(i):
        out = model(x[:, 4 * (i % 2):], p[:, 4 * (i % 2):])  # batches of two lengths
        return out.recon.float().square().mean() + out.commit

    return model, step


def test_native_bf16_is_read_from_the_cpu_flags():
    assert not precision.cpu_has_native_bf16(NO_BF16)
    assert precision.cpu_has_native_bf16(NO_BF16.replace("avx512_vnni", "avx512_vnni avx512_bf16"))
    assert precision.cpu_has_native_bf16("Features\t: fp asimd bf16 i8mm\n")  # Arm
    assert precision.cpu_has_native_bf16(NO_BF16.replace("avx512_vnni", "amx_bf16 amx_tile"))


def test_auto_never_picks_bf16_without_native_support(monkeypatch):
    model, step = _tokenizer()
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    monkeypatch.setattr(precision, "time_steps", lambda *a, **k: (10.0, 1.0))  # even if bf16 looked 10x faster
    on, why = precision.resolve_amp("auto", torch.device("cpu"), model, step, "k")
    assert not on and "no native bf16" in why
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    assert precision.resolve_amp("off", torch.device("cpu"), model, step, "k") == (False, "amp=off")
    assert precision.resolve_amp("bf16", torch.device("cpu"), model, step, "k") == (True, "amp=bf16")
    with pytest.raises(ValueError, match="amp must be one of"):
        precision.resolve_amp("fp16", torch.device("cpu"), model, step, "k")


def test_auto_follows_the_measurement_and_restores_the_model(monkeypatch):
    model, step = _tokenizer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    f32, b16 = precision.time_steps(model, step, torch.device("cpu"), repeats=1)  # really runs both
    assert f32 > 0 and b16 > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # EMA codebooks too
    assert torch.equal(rng, torch.get_rng_state())
    assert all(q.grad is None for q in model.parameters())

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr(precision, "_MEASURED", {})
    monkeypatch.setattr(precision, "time_steps", lambda *a, **k: (1.0, 1.0 / (precision.AMP_MIN_SPEEDUP - 0.05)))
    assert precision.resolve_amp("auto", torch.device("cpu"), model, step, "k")[0] is False  # not faster enough
    monkeypatch.setattr(precision, "_MEASURED", {})
    monkeypatch.setattr(precision, "time_steps", lambda *a, **k: (2.0, 1.0))
    on, why = precision.resolve_amp("auto", torch.device("cpu"), model, step, "k")
    assert on and "2.00x" in why


@pytest.mark.parametrize("native, speedup, want", [(False, 10.0, False), (True, 2.0, True), (True, 1.05, False)])
def test_shift_and_the_language_model_resolve_auto_alike(monkeypatch, tmp_path_factory, one_torch_thread,
                                                         native, speedup, want):
    """Both trainers ask the one resolver, and both record its verdict in their metrics."""
    from clutch_core.lm.config import preset_config as lm_config
    from clutch_core.lm.train import run_stage
    from clutch_core.shift.train import preset_config, train_tokenizer
    from clutch_core.shift.tokenize import tokenize_dataset
    from tests.fixtures.lm_run import LM_SMALL
    from tests.fixtures.shift_data import SMALL, small_dataset

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: native)
    monkeypatch.setattr(precision, "_MEASURED", {})
    monkeypatch.setattr(precision, "time_steps", lambda *a, **k: (speedup, 1.0))
    dataset = small_dataset(tmp_path_factory)
    run = tmp_path_factory.mktemp("amp") / "run"
    shift = train_tokenizer(dataset, run, preset_config("tiny", max_steps=2, amp="auto", **SMALL), progress=False)
    tokenize_dataset(run, dataset, progress=False)
    lm = run_stage("pretrain", dataset, run, lm_config("tiny", max_steps=2, amp="auto", **LM_SMALL), progress=False)
    assert shift["amp"] == lm["amp"]
    assert shift["amp"].startswith(f"amp=auto: {'bf16' if want else 'float32'}"), shift["amp"]
    saved = json.loads((run / "pretrain" / "metrics.json").read_text())["amp"]
    assert saved == lm["amp"]
