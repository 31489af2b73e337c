"""Motion vocabulary, span corruption, templates and constrained decoding (no training needed)."""
import numpy as np
import pytest
import torch

from clutch_core.lm.decode import generate_motion_ids
from clutch_core.lm.tasks import Renderer, span_corrupt, task_example, templates
from clutch_core.lm.vocab import MotionVocab

SHIFT_CFG = {"streams": ["left_traj", "left_pose", "right_traj", "right_pose"], "codebooks": {"traj": 16, "pose": 24},
             "frames_per_step": 4}
VQ_CFG = {"streams": ["frame"], "codebooks": {"frame": 16}, "frames_per_step": 4}


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest.one_torch_thread)."""


def test_shift_codes_and_presence_round_trip_with_absent_hands():
    v = MotionVocab.from_tokenizer_config(100, SHIFT_CFG)
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, 16, 9), rng.integers(0, 24, 9), rng.integers(0, 16, 9), rng.integers(0, 24, 9)], 1)
    pres = rng.random((9, 2)) < 0.6
    ids = v.encode(codes, pres)
    assert ids[0] == v.som and ids[-1] == v.eom and len(ids) == 2 + 9 * 4
    # trajectory and pose codes live in separate ranges; absent hands are written <absent>
    assert v.stream_range(0) == v.stream_range(2) and v.stream_range(0)[1] <= v.stream_range(1)[0]
    assert ids.count(v.absent) == 2 * int((~pres).sum())
    c2, p2 = v.decode(ids)
    np.testing.assert_array_equal(p2, pres)
    np.testing.assert_array_equal(c2[np.repeat(pres, 2, 1)], codes[np.repeat(pres, 2, 1)])
    assert v.size == 100 + 3 + v.masks + 16 + 24 == 100 + len(v.token_strings())
    assert MotionVocab.from_dict(v.to_dict()) == v


RVQ_CFG = {"streams": [f"level{k}" for k in range(4)], "codebooks": {f"level{k}": 16 for k in range(4)},
           "frames_per_step": 4}


@pytest.mark.parametrize("cfg", [VQ_CFG, RVQ_CFG], ids=["vqvae", "rvq"])
def test_whole_frame_vocabularies_keep_which_hand_is_present(cfg):
    """A whole-frame code stands for both hands: a `hands` token says which are there (no ghost hand)."""
    v = MotionVocab.from_tokenizer_config(50, cfg)
    n = len(cfg["streams"])
    assert v.whole_frame and v.streams == ("hands", *cfg["streams"]) and v.tokenizer_streams == tuple(cfg["streams"])
    codes = np.arange(6 * n).reshape(6, n) % 16
    pres = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 0], [1, 1]], bool)
    ids = v.encode(codes, pres)
    assert len(ids) == 2 + 6 * (n + 1)
    c2, p2 = v.decode(ids)
    np.testing.assert_array_equal(p2, pres)  # per hand, exactly
    np.testing.assert_array_equal(c2[pres.any(1)], codes[pres.any(1)])
    assert ids[1 + 4 * (n + 1):1 + 5 * (n + 1)] == [v.absent] * (n + 1)  # a step without hands: all <absent>
    assert MotionVocab.from_dict(v.to_dict()) == v
    assert v.is_code(ids).sum() == n * 5 and v.is_presence(ids).sum() == 5


def test_decode_reads_only_well_formed_prefix():
    v = MotionVocab.from_tokenizer_config(100, SHIFT_CFG)
    ids = v.encode(np.zeros((3, 4), int), np.ones((3, 2), bool))
    broken = ids[:1 + 4 + 2] + [v.stream_range(1)[0]] + ids[8:]  # step 2's left-traj holds a pose code
    codes, pres = v.decode(broken)
    assert codes.shape == (1, 4) and pres.shape == (1, 2)
    with pytest.raises(ValueError, match="out of range"):
        v.encode(np.full((1, 4), 99), np.ones((1, 2), bool))


def test_span_corruption_hides_about_15_percent_in_spans_of_about_3():
    rng = np.random.default_rng(0)
    ids = list(range(1000, 1200))
    sent = list(range(10, 42))
    inp, tgt = span_corrupt(ids, sent, rng)
    hidden = [t for t in tgt if t not in sent]
    assert len(hidden) == 30  # 0.15 x 200
    spans = sum(1 for t in tgt if t in sent)
    assert spans == 10  # mean span 3
    # input + target reassemble the original sequence
    rebuilt, k = [], 0
    pieces = {}
    cur = None
    for t in tgt:
        if t in sent:
            cur = t
            pieces[cur] = []
        else:
            pieces[cur].append(t)
    for t in inp:
        rebuilt += pieces[t] if t in sent else [t]
    assert rebuilt == ids


def test_templates_cover_every_task_and_name_known_fields():
    t = templates()
    for task in ("t2m", "t2m_seconds", "m2t", "h2h", "instruct_t2m", "instruct_m2t", "instruct_h2h"):
        assert t[task], task
        want = {"t2m": "{motion}", "m2t": "{caption}", "h2h": "{motion_other}"}[task.split("_")[-1].replace("seconds", "t2m")]
        for tm in t[task]:
            assert tm["output"] == want, (task, tm)
    assert "{seconds}" in t["t2m_seconds"][0]["input"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from clutch_core.lm.config import preset_config
    from clutch_core.lm.model import base_tokenizer, build_t5

    captions = [f"The {h} hand {v} the {o}." for h in ("left", "right") for v in ("grasps", "lifts", "waves at")
                for o in ("cup", "box", "pen", "jar")]
    cfg = preset_config("tiny", text_vocab=120, d_model=32, d_ff=64, layers=1, heads=2, d_kv=16)
    tok, vocab = base_tokenizer(cfg, SHIFT_CFG, tmp_path_factory.mktemp("tok"), captions)
    torch.manual_seed(0)
    return build_t5(cfg, tok, vocab).eval(), tok, vocab


@pytest.mark.parametrize("steps", [None, 5])
def test_constrained_decoding_of_an_untrained_model_is_well_formed(tiny_lm, steps):
    model, tok, vocab = tiny_lm
    enc = tok(["The left hand waves.", "The right hand lifts the box.", "Hands."] * 4, return_tensors="pt", padding=True)
    torch.manual_seed(1)
    out = generate_motion_ids(model, enc["input_ids"], enc["attention_mask"], vocab, max_steps=9, steps=steps,
                              do_sample=True, temperature=2.0, top_k=40)
    for row in out.tolist():
        assert row[0] == vocab.som
        end = row.index(vocab.eom)  # always closed
        body = row[1:end]
        assert len(body) % 4 == 0 and 1 <= len(body) // 4 <= 9
        if steps is not None:
            assert len(body) // 4 == steps
        codes, pres = vocab.decode(row)
        assert codes.shape == (len(body) // 4, 4)  # every token read as its stream's code or <absent>
        for s in range(len(body) // 4):  # a hand's pose is absent exactly when its trajectory is
            step = body[4 * s:4 * s + 4]
            assert (step[0] == vocab.absent) == (step[1] == vocab.absent)
            assert (step[2] == vocab.absent) == (step[3] == vocab.absent)


def test_h2h_example_moves_one_hand_to_the_other(tiny_lm):
    _, tok, vocab = tiny_lm
    r = Renderer(tok, vocab)
    codes, pres = np.ones((3, 4), int), np.ones((3, 2), bool)
    ex = task_example("h2h", templates()["h2h"][0], r, codes, pres, "x", 12, np.random.default_rng(0))
    assert ex.motion_at == -1 and ex.labels[0] == vocab.som
    _, out_pres = vocab.decode(ex.labels)
    _, in_pres = vocab.decode(ex.input_ids[ex.input_ids.index(vocab.som):])
    assert sorted(out_pres.sum(0).tolist()) == [0, 3]  # the target holds one hand ...
    assert (in_pres.sum(0) == 3 - out_pres.sum(0)).all()  # ... the input the other


def test_forced_tokens_are_the_absent_tokens_that_copy_their_leading_stream():

    from clutch_core.lm.data import forced_tokens

    v = MotionVocab.from_tokenizer_config(100, SHIFT_CFG)
    codes = np.zeros((3, 4), dtype=np.int64)
    presence = np.array([[True, False], [False, False], [True, True]])
    ids = v.encode(codes, presence)  # <som> [lt lp rt rp] x 3 <eom>
    labels = torch.tensor([[7, 8] + ids, [7, 8] + [-100] * len(ids)])  # motion after two text tokens; a row without
    got = forced_tokens(labels, v)
    want = torch.zeros_like(got)
    pos = [2 + 1 + s * 4 + k for s in range(3) for k in range(4)]  # label positions of the motion tokens
    for s, (left, right) in enumerate(presence):
        if not left:
            want[0, pos[s * 4 + 1]] = True  # left pose copies left traj's <absent>
        if not right:
            want[0, pos[s * 4 + 3]] = True
    assert torch.equal(got, want)
    assert not got[0, [pos[s * 4] for s in range(3)]].any()  # a leading stream's <absent> is decided, so trained
    span = torch.tensor([[v.mask(0)] + ids[:-1] + [v.mask(1), v.eom]])  # a span-corruption target: no step grid
    assert not forced_tokens(span, v).any()
