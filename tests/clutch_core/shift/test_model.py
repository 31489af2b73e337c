"""SHIFT / VQ-VAE networks and the EMA quantizer: shapes, token order, masking, exact shortcuts."""
import torch
import torch.nn.functional as F

from clutch_core.shift.model import RVQ, SHIFT, VQVAE, TokenizerConfig, Upsample2Conv
from clutch_core.shift.quantizer import EMAQuantizer
from clutch_core.shift.train import preset_config, tokenizer_loss

CFG = dict(width=16, code_dim=8, codes=32, depth=2)


def _batch(b=3, t=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 198, generator=g), torch.ones(b, t, 2, dtype=torch.bool)


def test_upsample_conv_equals_nearest_upsampling_then_conv():
    torch.manual_seed(0)
    up = Upsample2Conv(6)
    x = torch.randn(2, 6, 7)
    ref = up.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    assert torch.allclose(up(x), ref, atol=1e-5)


def test_nearest_code_matches_brute_force_distance():
    torch.manual_seed(0)
    q = EMAQuantizer(50, 8)
    q.codebook.copy_(torch.randn(50, 8))
    z = torch.randn(200, 8)
    assert torch.equal(q.nearest(z), torch.cdist(z, q.codebook).argmin(1))


def test_absent_latents_do_not_move_the_codebook():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 10)
    mask = torch.tensor([[True] * 10, [False] * 10])
    books = []
    for other in (z[1], z[1] * 100 + 5):  # only the masked row differs
        q = EMAQuantizer(16, 4).train()
        torch.manual_seed(1)
        q(torch.stack([z[0], other]), mask)
        q(torch.stack([z[0], other]), mask)
        books.append(q.codebook.clone())
    assert torch.equal(books[0], books[1])


def test_dead_codes_are_reset_to_batch_latents():
    torch.manual_seed(0)
    q = EMAQuantizer(8, 2, reset_below=1.0).train()
    z = torch.randn(1, 2, 64) + 10.0  # far from everything
    q(z)  # initializes from z
    q.codebook[3] = -1000.0  # a code nobody uses
    q.code_count[3] = 0.0
    q(z)
    assert q.codebook[3].min() > 5.0  # replaced by a latent of the batch (all near +10)


def test_shift_tokens_order_and_shared_hand_networks():
    torch.manual_seed(0)
    m = SHIFT(TokenizerConfig(kind="shift", **CFG))
    x, p = _batch()
    m.train()
    m(x, p)  # initializes the codebooks
    m.eval()
    tok = m.encode(x, p)
    assert tok.shape == (3, 4, 4)
    swapped = torch.cat([x[..., 99:], x[..., :99]], -1)  # right hand data in the left slot and vice versa
    tok_s = m.encode(swapped, p)
    assert torch.equal(tok_s, tok[..., [2, 3, 0, 1]])  # [l-traj, l-pose, r-traj, r-pose], shared networks


def _with_gaps(x, p):
    """Row 0: the right hand leaves for frames 4-11; row 1: the left hand for 0-7; row 2: both for 8-15."""
    p = p.clone()
    p[0, 4:12, 1] = False
    p[1, :8, 0] = False
    p[2, 8:] = False
    return x * p.repeat_interleave(99, -1), p


def test_decode_of_tokens_reproduces_the_forward_reconstruction():
    """Also beside gaps: decode with the latent presence gives what training reconstructed."""
    for model in (SHIFT(TokenizerConfig(kind="shift", **CFG)), VQVAE(TokenizerConfig(kind="vqvae", **CFG)),
                  RVQ(TokenizerConfig(kind="rvq", **CFG))):
        x, p = _with_gaps(*_batch(seed=1))
        model.train()
        model(x, p)
        model.eval()
        out = model(x, p)
        assert out.tokens.shape[:2] == (3, 4) and out.tokens.shape[2] == len(model.streams)
        assert torch.allclose(model.decode(out.tokens, out.latent_presence), out.recon, atol=1e-5)


def test_an_absent_step_decodes_the_same_whatever_code_its_token_holds():
    """One defined latent for absent steps: the frames beside a gap do not depend on a junk code."""
    for model in (SHIFT(TokenizerConfig(kind="shift", **CFG)), VQVAE(TokenizerConfig(kind="vqvae", **CFG)),
                  RVQ(TokenizerConfig(kind="rvq", **CFG))):
        x, p = _with_gaps(*_batch(seed=4))
        model.train()
        model(x, p)
        model.eval()
        out = model(x, p)
        lp = out.latent_presence  # [B, S, 2]
        # absent streams: a hand's two streams for SHIFT, every stream of a step without hands otherwise
        absent = (~lp)[..., [0, 0, 1, 1]] if isinstance(model, SHIFT) else (~lp.any(-1, keepdim=True)).expand_as(out.tokens)
        assert absent.any()
        junk = out.tokens.clone()
        junk[absent] = (junk[absent] + 7) % CFG["codes"]
        assert torch.allclose(model.decode(junk, lp), model.decode(out.tokens, lp), atol=1e-6)
        assert not torch.allclose(model.decode(junk), model.decode(out.tokens))  # without presence they differ


def test_absent_hand_does_not_drive_the_loss():
    cfg = preset_config("tiny")
    torch.manual_seed(0)
    m = SHIFT(TokenizerConfig(kind="shift", **CFG)).train()
    x, p = _batch(seed=2)
    p[:, 5:, 1] = False  # right hand leaves the view
    out = m(x, p)
    loss, _ = tokenizer_loss(out, x, p, cfg)
    x2 = x.clone()
    x2[:, 5:, 99:] += 50.0  # garbage where the right hand is absent
    noisy = out._replace(recon=out.recon - 3.0 * (x2 - x))  # and garbage in the reconstruction there
    loss2, _ = tokenizer_loss(noisy, x2, p, cfg)
    assert torch.allclose(loss, loss2)
    p2 = p.clone()
    p2[:, 5:, 1] = True  # the same data counted as present does change the loss
    assert not torch.allclose(loss, tokenizer_loss(noisy, x2, p2, cfg)[0])


def test_bf16_autocast_step_keeps_quantizer_in_float32():
    cfg = preset_config("tiny")
    for model in (SHIFT(TokenizerConfig(kind="shift", **CFG)), VQVAE(TokenizerConfig(kind="vqvae", **CFG))):
        x, p = _batch(seed=3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model.train()(x, p)
        loss, _ = tokenizer_loss(out, x, p, cfg)
        loss.backward()
        assert out.recon.dtype == torch.float32 and torch.isfinite(loss)
        assert all(q.codebook.dtype == torch.float32 for q in model.modules() if isinstance(q, EMAQuantizer))
        assert all(p_.grad is not None and torch.isfinite(p_.grad).all() for p_ in model.parameters())


def test_rvq_is_the_equal_bits_baseline():
    """4 tokens per step from 4 codebooks of `codes` entries (SHIFT's bits), each level
    quantizing what the previous ones left, and gradients reaching the encoder."""
    model = RVQ(TokenizerConfig(kind="rvq", **CFG))
    shift = SHIFT(TokenizerConfig(kind="shift", **CFG))
    assert len(model.streams) == len(shift.streams) == 4 and len(model.codebooks) == 4
    x, p = _batch(seed=2)
    model.train()
    out = model(x, p)
    out.recon.pow(2).mean().backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0  # straight-through on the summed code
    model.eval()
    z = model.encoder(x.transpose(1, 2)).transpose(1, 2)  # [B, S, D]
    tokens = model(x, p).tokens
    levels = [model.quantizers[c].lookup(tokens[..., k]) for k, c in enumerate(model.codebooks)]
    residual = z
    for k, c in enumerate(model.codebooks):  # level k picks the code nearest to the residual so far
        assert torch.equal(model.quantizers[c].nearest(residual.reshape(-1, 8)), tokens[..., k].reshape(-1))
        residual = residual - levels[k]
    # more levels, closer to the latent
    errs = [(z - sum(levels[:k + 1])).norm(dim=-1).mean() for k in range(4)]
    assert errs[-1] < errs[0]
