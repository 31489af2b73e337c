"""Text-to-motion and reconstruction metrics, HumanML3D conventions.

Embedding metrics take evaluator embeddings (numpy [N, D], row i of the text matrix
describes row i of the motion matrix):

- R-precision: shuffle, cut into pools of 32 (the match and 31 others; a last partial
  pool is dropped as in the reference evaluation), rank the pool's motions by Euclidean
  distance to each text, count the match within top-1/2/3. Ties are ranked as T2M's stable
  argsort over the shuffled pool ranks them: a tied motion earlier in the pool comes first,
  so a generator that gives every text the same motion scores k/32 (chance), not 1.
- MM-Dist: mean distance text <-> its own motion.
- FID: Frechet distance of Gaussians fitted to real and evaluated motion embeddings.
- KID: unbiased squared MMD with the polynomial kernel k(x, y) = (x.y / D + 1)^3
  (Binkowski et al. 2018), on `subsets` random subsets of each set (1000 samples, or
  half the smaller set when it holds fewer than 2000; drawn without replacement); mean over subsets and the 2.5-97.5 %
  range of the subset values. The paper reports KID for text-to-motion; FID beside it.
- Diversity: mean distance of 300 distinct pairs of distinct motion embeddings (drawn
  without replacement; every pair when fewer than 300 exist).
- MultiModality: for each text with several generations [N, G, D], mean distance of
  10 distinct pairs of distinct generations (the same pairs for every text).
`repeat_stats` turns per-repeat values into mean and 95% confidence interval
(1.96 * std / sqrt(repeats)), as reported in the literature.

Reconstruction metrics take joints [..., T, 2, 21, 3] (metres) and presence [..., T, 2]
and report millimetres: MPJPE, PA-MPJPE (similarity Procrustes per frame per hand),
acceleration error (mm / frame^2, on frames whose neighbours are also present).
"""
from __future__ import annotations

import numpy as np

R_POOL = 32
TOP_K = 3
DIVERSITY_PAIRS = 300
MM_PAIRS = 10
KID_SUBSETS = 50  # as the authors' evaluation
KID_SUBSET_SIZE = 1000


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise distances [N, M] between rows of a [N, D] and b [M, D]."""
    d2 = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.clip(d2, 0.0, None))


def r_precision(text: np.ndarray, motion: np.ndarray, rng: np.random.Generator, pool: int = R_POOL) -> np.ndarray:
    """Top-1..TOP_K retrieval accuracy [TOP_K] of texts among pools of `pool` motions."""
    n = len(text)
    if n < pool:
        raise ValueError(f"R-precision needs at least {pool} samples, got {n}")
    order = rng.permutation(n)
    hits = np.zeros(TOP_K)
    count = 0
    for s in range(0, n - pool + 1, pool):
        idx = order[s:s + pool]
        d = euclidean(text[idx], motion[idx])  # [pool, pool]
        rank = match_rank(d)
        for k in range(TOP_K):
            hits[k] += (rank <= k).sum()
        count += pool
    return hits / count


def match_rank(d: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of each row's match d[i, i] in np.argsort(d[i], kind="stable"): the motions
    strictly closer, plus the tied ones that come earlier in the pool."""
    diag = np.diag(d)[:, None]
    earlier = np.tri(len(d), k=-1, dtype=bool)  # j < i
    return (d < diag).sum(1) + ((d == diag) & earlier).sum(1)


def mm_dist(text: np.ndarray, motion: np.ndarray) -> float:
    return float(np.linalg.norm(text - motion, axis=1).mean())


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(mu1, sig1, mu2, sig2) -> float:
    """||mu1-mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2).

    Tr sqrt(S1 S2) is computed as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix S1^1/2 S2 S1^1/2 (two eigh calls instead of scipy's sqrtm:
    same value, far faster, no complex round-off).
    """
    w, v = np.linalg.eigh(sig1)
    s1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(s1 @ sig2 @ s1), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sig1) + np.trace(sig2) - 2.0 * tr_covmean, 0.0))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
    """Unbiased MMD^2 between samples x [m, D] and y [n, D], kernel (x.y / D + 1)^degree."""
    d = x.shape[1]
    kxx, kyy, kxy = (((a @ b.T) / d + 1.0) ** degree for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """Kernel Inception Distance of embeddings: (mean, 2.5 % and 97.5 % of the subset values)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    m = min(subset_size, min(len(real), len(fake)) // 2)  # half of a small set, so subsets differ
    if m < 2:
        raise ValueError(f"KID needs at least 4 samples per set, got {len(real)} and {len(fake)}")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    vals = np.array([polynomial_mmd2(real[rng.choice(len(real), m, replace=False)],
                                     fake[rng.choice(len(fake), m, replace=False)]) for _ in range(subsets)])
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(vals.mean()), float(lo), float(hi)


def distinct_pairs(n: int, pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to `pairs` distinct unordered pairs (i < j) of n items, drawn without replacement."""
    total = n * (n - 1) // 2
    if total <= 4 * pairs:  # few pairs: enumerate them all, then choose
        i, j = np.triu_indices(n, 1)
        pick = rng.choice(total, min(pairs, total), replace=False)
        return i[pick], j[pick]
    seen: set[tuple[int, int]] = set()
    while len(seen) < pairs:  # many pairs: rejection, a duplicate is rare
        a, b = rng.integers(n, size=2)
        if a != b:
            seen.add((int(min(a, b)), int(max(a, b))))
    arr = np.array(sorted(seen))
    return arr[:, 0], arr[:, 1]


def diversity(motion: np.ndarray, rng: np.random.Generator, pairs: int = DIVERSITY_PAIRS) -> float:
    n = len(motion)
    if n < 2:
        raise ValueError("Diversity needs at least 2 samples")
    a, b = distinct_pairs(n, pairs, rng)
    return float(np.linalg.norm(motion[a] - motion[b], axis=1).mean())


def multimodality(gen: np.ndarray, rng: np.random.Generator, pairs: int = MM_PAIRS) -> float:
    """gen [N, G, D]: mean distance between random pairs of generations of the same text."""
    n, g, _ = gen.shape
    if g < 2:
        raise ValueError("MultiModality needs at least 2 generations per text")
    a, b = distinct_pairs(g, pairs, rng)
    return float(np.linalg.norm(gen[:, a] - gen[:, b], axis=-1).mean())


def repeat_stats(values: list[float]) -> tuple[float, float]:
    """(mean, 95% confidence half-width) over repeats."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(1.96 * v.std() / np.sqrt(len(v)))


# ---------------------------------------------------------------- reconstruction


def reconstruction_errors(pred: np.ndarray, gt: np.ndarray, presence: np.ndarray) -> dict[str, np.ndarray]:
    """Per-joint errors in mm of the present hands (flat arrays), for pooling over many clips.

    pred, gt [..., T, 2, 21, 3] metres; presence [..., T, 2]. Keys: mpjpe_mm, pa_mpjpe_mm,
    accel_error_mm (the latter on frames whose neighbours are present too, mm/frame^2).
    """
    m = np.asarray(presence, dtype=bool)
    out = {
        "mpjpe_mm": np.linalg.norm(pred - gt, axis=-1)[m].reshape(-1) * 1000.0,
        "pa_mpjpe_mm": np.linalg.norm(procrustes_align(pred[m], gt[m]) - gt[m], axis=-1).reshape(-1) * 1000.0,
    }
    if pred.shape[-4] >= 3:
        acc = lambda x: x[..., 2:, :, :, :] - 2 * x[..., 1:-1, :, :, :] + x[..., :-2, :, :, :]  # noqa: E731
        ma = m[..., 2:, :] & m[..., 1:-1, :] & m[..., :-2, :]
        out["accel_error_mm"] = np.linalg.norm(acc(pred) - acc(gt), axis=-1)[ma].reshape(-1) * 1000.0
    else:
        out["accel_error_mm"] = np.zeros(0)
    return out


def pool_errors(errors: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Mean of each error over all joints of all clips (NaN when nothing was present)."""
    out = {}
    for k in ("mpjpe_mm", "pa_mpjpe_mm", "accel_error_mm"):
        v = np.concatenate([e[k] for e in errors]) if errors else np.zeros(0)
        out[k] = float(v.mean()) if v.size else float("nan")
    return out


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Best similarity transform (scale, rotation, translation) of pred onto gt. [..., J, 3]."""
    mp, mg = pred.mean(-2, keepdims=True), gt.mean(-2, keepdims=True)
    p, g = pred - mp, gt - mg
    h = np.swapaxes(p, -1, -2) @ g  # [..., 3, 3]
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    fix = np.ones_like(s)
    fix[..., -1] = d
    r = np.swapaxes(vt, -1, -2) @ (fix[..., :, None] * np.swapaxes(u, -1, -2))  # [..., 3, 3]
    var = (p * p).sum((-1, -2))
    scale = (s * fix).sum(-1) / np.maximum(var, 1e-12)
    return scale[..., None, None] * (p @ np.swapaxes(r, -1, -2)) + mg


def reconstruction_metrics(pred: np.ndarray, gt: np.ndarray, presence: np.ndarray) -> dict[str, float]:
    """MPJPE, PA-MPJPE and acceleration error (mm) of one clip or a batch of equal-length clips."""
    return pool_errors([reconstruction_errors(pred, gt, presence)])
