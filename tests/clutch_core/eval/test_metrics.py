"""Text-to-motion and reconstruction metrics on inputs with known answers."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from clutch_core.eval import metrics as M


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_r_precision_perfect_and_chance(rng):
    text = rng.normal(size=(320, 16))
    assert M.r_precision(text, text + 1e-3 * rng.normal(size=text.shape), rng).tolist() == [1.0, 1.0, 1.0]
    chance = np.mean([M.r_precision(text, rng.normal(size=text.shape), rng) for _ in range(20)], 0)
    assert np.allclose(chance, [1 / 32, 2 / 32, 3 / 32], atol=0.015)
    with pytest.raises(ValueError, match="at least 32"):
        M.r_precision(text[:31], text[:31], rng)


def test_r_precision_of_a_constant_generator_is_chance(rng):
    """The same motion for every text ties every distance: R@k must be k/32, not 1."""
    text = rng.normal(size=(320, 8))
    same = np.repeat(rng.normal(size=(1, 8)), 320, 0)
    got = np.mean([M.r_precision(text, same, rng) for _ in range(10)], 0)
    np.testing.assert_allclose(got, [1 / 32, 2 / 32, 3 / 32])
    # two of a pool's motions identical (memoised generations of one caption): at most one can rank first
    motion = text + 1e-3 * rng.normal(size=text.shape)
    motion[1::2] = motion[0::2]
    assert M.r_precision(text, motion, rng)[0] < 0.8


def test_r_precision_ties_match_t2ms_stable_argsort(rng):
    d = rng.integers(0, 3, size=(32, 32)).astype(float)  # many ties
    want = np.array([int(np.where(np.argsort(row, kind="stable") == i)[0][0]) for i, row in enumerate(d)])
    np.testing.assert_array_equal(M.match_rank(d), want)


def test_r_precision_counts_rank_not_order(rng):
    # 1-D: text i at i, its motion at i + 0.6; motion i-1 (at i - 0.4) is closer for every i > 0
    text = np.arange(32.0)[:, None]
    out = M.r_precision(text, text + 0.6, rng)
    assert out.tolist() == [1 / 32, 1.0, 1.0]


def test_fid_zero_for_same_set_and_matches_closed_form(rng):
    x = rng.normal(size=(400, 8))
    assert M.fid(x, x) == pytest.approx(0.0, abs=1e-8)
    # two Gaussians with identity-like covariance: FID ~ |mean shift|^2 (+ small sampling term)
    y = rng.normal(size=(4000, 8)) + 2.0
    z = rng.normal(size=(4000, 8))
    assert M.fid(z, y) == pytest.approx(8 * 4.0, rel=0.05)
    # against scipy sqrtm on a generic pair
    from scipy import linalg

    a, b = rng.normal(size=(300, 6)), rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    m1, s1 = M.gaussian_stats(a)
    m2, s2 = M.gaussian_stats(b)
    ref = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert M.frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-6)


def test_diversity_mm_dist_multimodality(rng):
    pts = np.zeros((50, 4))
    assert M.diversity(pts, rng) == 0.0
    pts[::2, 0] = 1.0
    assert 0.3 < M.diversity(pts, rng) < 0.7  # half the pairs differ by 1
    t = rng.normal(size=(10, 4))
    assert M.mm_dist(t, t + [3, 4, 0, 0]) == pytest.approx(5.0)
    gens = np.repeat(rng.normal(size=(5, 1, 4)), 6, axis=1)
    assert M.multimodality(gens, rng) == 0.0
    gens[:, ::2, 0] += 2.0
    assert M.multimodality(gens, rng) > 0.5
    mean, ci = M.repeat_stats([1.0, 1.0, 1.0])
    assert (mean, ci) == (1.0, 0.0)
    mean, ci = M.repeat_stats([0.0, 2.0] * 10)
    assert mean == 1.0 and ci == pytest.approx(1.96 * 1.0 / np.sqrt(20))


def _joints(rng, t=6):
    return rng.normal(scale=0.05, size=(t, 2, 21, 3))


def test_mpjpe_pa_mpjpe_accel(rng):
    gt = _joints(rng)
    pres = np.ones((6, 2), bool)
    assert M.reconstruction_metrics(gt + [0.003, 0.004, 0.0], gt, pres)["mpjpe_mm"] == pytest.approx(5.0)  # mm
    rot = Rotation.random(random_state=3).as_matrix()
    moved = 1.2 * gt @ rot.T + [0.1, -0.2, 0.3]
    out = M.reconstruction_metrics(moved, gt, pres)
    assert out["mpjpe_mm"] > 50 and out["pa_mpjpe_mm"] < 1e-6
    # a constant offset changes position error but not acceleration
    assert M.reconstruction_metrics(gt + 0.01, gt, pres)["accel_error_mm"] == pytest.approx(0.0, abs=1e-9)
    # a jump in one frame: acceleration error appears
    jumped = gt.copy()
    jumped[3] += 0.01
    assert M.reconstruction_metrics(jumped, gt, pres)["accel_error_mm"] > 1.0


def test_reconstruction_masks_absent_hands(rng):
    gt = _joints(rng)
    pred = gt.copy()
    pres = np.ones((6, 2), bool)
    pres[:, 1] = False
    pred[:, 1] += 100.0  # garbage where the right hand is absent
    out = M.reconstruction_metrics(pred, gt, pres)
    assert out == {"mpjpe_mm": 0.0, "pa_mpjpe_mm": pytest.approx(0.0, abs=1e-6), "accel_error_mm": 0.0}
    none = M.reconstruction_metrics(pred, gt, np.zeros((6, 2), bool))
    assert all(np.isnan(v) for v in none.values())


def _scipy_pa_mpjpe_mm(pred, gt):
    """Reference PA-MPJPE of one hand-frame [21, 3]: scipy's proper-rotation Kabsch, optimal scale."""
    p, g = pred - pred.mean(0), gt - gt.mean(0)
    rot, _ = Rotation.align_vectors(g, p)
    pr = rot.apply(p)
    s = (pr * g).sum() / (pr * pr).sum()
    return float(np.linalg.norm(s * pr - g, axis=-1).mean() * 1000.0)


def test_pa_mpjpe_never_aligns_by_a_reflection(rng):
    """A mirrored hand is not the same hand: Procrustes may rotate and scale, never reflect."""
    gt = _joints(rng, t=4)
    pres = np.ones((4, 2), bool)
    mirrored = gt * [1.0, 1.0, -1.0]  # reflection through the xy plane
    rot = Rotation.random(random_state=5).as_matrix()
    pred = 0.9 * mirrored @ rot.T + [0.02, 0.0, 0.1]
    pa = M.reconstruction_metrics(pred, gt, pres)["pa_mpjpe_mm"]
    assert pa > 5.0  # an alignment allowed to reflect would bring this to ~0
    ref = np.mean([_scipy_pa_mpjpe_mm(pred[t, h], gt[t, h]) for t in range(4) for h in range(2)])
    assert pa == pytest.approx(ref, rel=1e-6)
    aligned = M.procrustes_align(pred[0, 0], gt[0, 0])
    # the fitted map is a proper similarity: the aligned points keep the prediction's handedness
    a, p = aligned - aligned.mean(0), pred[0, 0] - pred[0, 0].mean(0)
    assert np.linalg.det(np.linalg.lstsq(p, a, rcond=None)[0]) > 0


def test_kid_polynomial_mmd_known_values(rng):
    x = rng.normal(size=(400, 8))
    same = M.kid(x, x.copy(), subsets=20, rng=np.random.default_rng(1))
    shifted = M.kid(x, x + 0.5, subsets=20, rng=np.random.default_rng(1))
    assert abs(same[0]) < 0.1 * shifted[0]  # unbiased: near 0 for one distribution
    assert shifted[1] <= shifted[0] <= shifted[2] and shifted[1] < shifted[2]  # subsets differ: a real range
    # unbiased MMD^2 with kernel (x.y/d + 1)^3, written out once more by hand
    a, b = x[:5], x[5:12] + 1.0
    k = lambda u, v: ((u @ v.T) / 8 + 1.0) ** 3  # noqa: E731
    kaa, kbb = k(a, a), k(b, b)
    want = ((kaa.sum() - np.trace(kaa)) / 20 + (kbb.sum() - np.trace(kbb)) / 42 - 2 * k(a, b).mean())
    assert M.polynomial_mmd2(a, b) == pytest.approx(want)
    with pytest.raises(ValueError, match="KID needs"):
        M.kid(x[:3], x[:3])


def test_diversity_pairs_are_distinct_and_without_replacement(rng):
    for n in (3, 10, 30, 2000):
        a, b = M.distinct_pairs(n, 300, rng)
        pairs = set(zip(a.tolist(), b.tolist()))
        assert len(pairs) == len(a) == min(300, n * (n - 1) // 2)
        assert all(i < j for i, j in pairs)
    # 3 points: exactly the 3 pairwise distances, each once
    pts = np.array([[0.0], [1.0], [3.0]])
    assert M.diversity(pts, rng) == pytest.approx((1 + 3 + 2) / 3)
