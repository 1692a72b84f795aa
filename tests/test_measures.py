"""Procrustes, mutual k-NN and RSA against literal references; the calibration of any
measure; CKA's feature-space permutation null; streaming CKA against the exact estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr
from sklearn.neighbors import NearestNeighbors
from tqdm import tqdm

import mossa
import reference_cka
import reference_measures as ref
from mossa.similarity import (
    DegenerateInputWarning,
    StreamingCKA,
    bootstrap_ci,
    calibration,
    cka,
    mutual_knn,
    permutation_null,
    procrustes,
    rsa,
)

MEASURES = {
    "procrustes": (procrustes, ref.procrustes, {}),
    "mutual_knn": (mutual_knn, ref.mutual_knn, {"k": 4}),
    "rsa": (rsa, ref.rsa, {}),
}


def _pair(rng, shape_x, d2, coupling=0.8):
    """x ~ N(0, 1) and y partly a linear function of x (values well inside (0, 1))."""
    x = rng.standard_normal(shape_x)
    mix = rng.standard_normal((shape_x[-1], d2)) / np.sqrt(shape_x[-1])
    y = coupling * x @ mix + rng.standard_normal(shape_x[:-1] + (d2,))
    return x, y


def _random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# ------------------------------------------------------------------ against the references

SHAPES = [
    # (L or None, n, d1, d2)
    (None, 20, 5, 7),
    (None, 12, 40, 30),  # d > n on both sides: Procrustes through QR factors
    (3, 40, 6, 9),
    (2, 15, 60, 8),  # d1 > n > d2
    (2, 60, 4, 4),
]


@pytest.mark.parametrize("measure", list(MEASURES))
@pytest.mark.parametrize(("layers", "n", "d1", "d2"), SHAPES)
def test_measure_matches_reference(measure, layers, n, d1, d2):
    func, reference, options = MEASURES[measure]
    rng = np.random.default_rng(n * 100 + d1 + d2)
    x, y = _pair(rng, (n, d1) if layers is None else (layers, n, d1), d2)
    x += 3.0  # an offset: Procrustes must centre columns, RSA rows
    ref_options = tuple(options.values())
    got = func(x, y, **options)
    np.testing.assert_allclose(got, reference(x, y, *ref_options), rtol=0, atol=1e-10)
    if layers is None:
        assert isinstance(got, float)
    else:
        assert isinstance(got, np.ndarray) and got.shape == (layers,) and got.dtype == np.float64
        per_layer = [func(a, b, **options) for a, b in zip(x, y, strict=True)]
        np.testing.assert_array_equal(got, per_layer)  # batched == per layer
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    np.testing.assert_allclose(
        func(x32, y32, **options), reference(x32, y32, *ref_options), rtol=0, atol=1e-5
    )


def test_references_agree_with_scipy_and_sklearn():
    """The literal references against library routines that compute the same things."""
    rng = np.random.default_rng(0)
    x, y = _pair(rng, (25, 6), 4)
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    nuclear = np.linalg.svd(xc.T @ yc, compute_uv=False).sum()
    assert ref.procrustes(x, y) == pytest.approx(nuclear, abs=1e-12)
    padded = np.pad(yc, ((0, 0), (0, 2)))
    assert orthogonal_procrustes(padded, xc)[1] == pytest.approx(nuclear, abs=1e-12)

    k = 5
    for a in (x, y):
        neighbours = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(a)
        found = neighbours.kneighbors(a, return_distance=False)[:, 1:]  # column 0: the row
        listed = ref._neighbour_origins(a, k, np.arange(len(a)))
        assert [set(row) for row in found] == [set(row) for row in listed]

    expected = spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).statistic
    assert ref.rsa(x, y) == pytest.approx(expected, abs=1e-12)
    tied = [1.0, 2.0, 2.0, 3.0, 2.0]
    np.testing.assert_array_equal(ref._average_ranks(tied), [1, 3, 3, 5, 3])


def test_values_of_known_cases():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 8))
    moved = 2.5 * x @ _random_orthogonal(rng, 8) + 7.0
    assert procrustes(x, moved) == pytest.approx(1.0, abs=1e-12)
    assert mutual_knn(x, moved - 7.0, k=5) == 1.0  # cosine: not shift invariant
    assert rsa(x, x) == pytest.approx(1.0, abs=1e-12)
    # the nuclear norm is 1 - d²/2 for the Procrustes distance d
    y = x[:, :5] + rng.standard_normal((40, 5))
    assert procrustes(x, y) == pytest.approx(ref.procrustes(x, y), abs=1e-12)
    # independent data: k-NN overlap near its chance level k / (n - 1)
    a, b = rng.standard_normal((2, 500, 20))
    assert mutual_knn(a, b, k=10) == pytest.approx(10 / 499, abs=0.01)


def test_top_level_exports():
    assert {"procrustes", "mutual_knn", "rsa", "StreamingCKA"} <= set(mossa.__all__)
    rng = np.random.default_rng(2)
    x, y = _pair(rng, (30, 5), 5)
    assert mossa.procrustes(x, y) == procrustes(x, y)
    assert mossa.mutual_knn(x, y, k=3) == mutual_knn(x, y, k=3)
    assert mossa.rsa(x, y) == rsa(x, y)


# ------------------------------------------------------------------ invariances (hypothesis)

_CASES = st.tuples(
    st.integers(0, 2**31 - 1),  # seed
    st.integers(8, 30),  # n
    st.integers(3, 12),  # d1 (RSA needs 3 features)
    st.integers(3, 12),  # d2
)
_PROPERTY = settings(max_examples=20, deadline=None)


@_PROPERTY
@given(_CASES, st.floats(1e-3, 1e3), st.floats(-100, 100))
def test_procrustes_invariant_to_rotation_scale_and_shift(case, scale, shift):
    seed, n, d1, d2 = case
    rng = np.random.default_rng(seed)
    x, y = _pair(rng, (n, d1), d2)
    base = procrustes(x, y)
    for x2 in (x @ _random_orthogonal(rng, d1), x * scale, x + shift * rng.standard_normal(d1)):
        assert procrustes(x2, y) == pytest.approx(base, abs=1e-9)
    stretch = _random_orthogonal(rng, d1) @ np.diag(np.logspace(0, 2, d1))
    assert procrustes(x @ stretch, x) < 0.99  # not invariant to general linear maps


@_PROPERTY
@given(_CASES)
def test_every_measure_invariant_to_one_row_permutation_of_both(case):
    seed, n, d1, d2 = case
    rng = np.random.default_rng(seed)
    x, y = _pair(rng, (2, n, d1), d2)
    perm = rng.permutation(n)
    for func, _, options in MEASURES.values():
        np.testing.assert_allclose(
            func(x[:, perm], y[:, perm], **options), func(x, y, **options), rtol=0, atol=1e-9
        )


def test_knn_and_rsa_invariances():
    """Cosine neighbours ignore rotations and each row's scale; RSA each row's shift and scale."""
    rng = np.random.default_rng(3)
    x, y = _pair(rng, (35, 6), 7)
    row_scale = rng.uniform(0.1, 10, size=(35, 1))
    assert mutual_knn(x @ _random_orthogonal(rng, 6) * row_scale, y, k=6) == mutual_knn(x, y, k=6)
    shifted = x * row_scale + rng.standard_normal((35, 1)) * 50
    assert rsa(shifted, y) == pytest.approx(rsa(x, y), abs=1e-9)


@pytest.mark.parametrize(("dtype", "scale"), [(np.float32, 1e30), (np.float32, 1e-30)])
@pytest.mark.parametrize("measure", list(MEASURES))
def test_extreme_scales_give_the_unscaled_value(dtype, scale, measure):
    func, reference, options = MEASURES[measure]
    rng = np.random.default_rng(4)
    x, y = _pair(rng, (2, 30, 6), 5)
    x, y = x.astype(dtype), y.astype(dtype)
    want = reference(x, y, *options.values())
    got = func((x * scale).astype(dtype), (y / scale).astype(dtype), **options)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ bad and degenerate input


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda g: mutual_knn(g, g, k=10), r"^k must be an integer with 1 <= k < n = 10 .*got 10"),
        (lambda g: mutual_knn(g, g, k=0), r"^k must be an integer .* got 0"),
        (lambda g: mutual_knn(g, g, k=2.5), r"^k must be an integer .* got 2\.5"),
        (lambda g: rsa(g[:2], g[:2]), r"^rsa needs at least 3 rows .* got 2"),
        (lambda g: rsa(g, g[:, :2]), r"^rsa needs at least 3 features .* y shape \(10, 2\)"),
        (lambda g: procrustes(g, g[:9]), r"same number of rows.*x has 10.*y has 9"),
        (lambda g: procrustes(g[:1], g[:1]), r"^x needs at least 2 rows"),
        (lambda g: rsa(np.stack([g, g]), g), r"x and y must both be 2-D .* or both 3-D"),
        (lambda g: mutual_knn(g, np.where(g > 1, np.nan, g)), r"^y contains NaN or Inf"),
        (lambda g: permutation_null(g, g, measure="svcca"), r"^measure must be one of \("),
        (lambda g: bootstrap_ci(g, g, measure=None), r"^measure must be one of .*got None"),
        (
            lambda g: permutation_null(g, g, measure="rsa", kernel="rbf"),
            r"^kernel is not an option of measure 'rsa' \(it takes no options\)",
        ),
        (
            lambda g: bootstrap_ci(g, g, measure="cka", k=3),
            r"^k is not an option of measure 'cka' \(it takes kernel, debiased, threshold\)",
        ),
        (lambda g: permutation_null(g, g, measure="mutual_knn", k=10), r"^k must be an integer"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, pattern):
    good = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match=pattern):
        call(good)


def test_constant_rows_are_refused_by_rsa_and_zero_rows_by_knn():
    rng = np.random.default_rng(5)
    x, y = _pair(rng, (2, 12, 4), 4)
    x[1, 5] = 0.3  # one constant row: its Pearson correlation with anything is undefined
    pattern = r"^x has constant values .* in 1 of 24 rows .*first at layer 1, row 5"
    for call in (rsa, lambda a, b: permutation_null(a, b, measure="rsa")):
        with pytest.raises(ValueError, match=pattern):
            call(x, y)
    y[0, 2] = 0.0
    with pytest.raises(ValueError, match=r"^y has only zeros .* in 1 of 24 rows .*layer 0, row 2"):
        mutual_knn(x, y, k=3)
    with pytest.raises(ValueError, match=r"^y has only zeros"):
        bootstrap_ci(x, y, measure="mutual_knn", k=3)
    assert np.isfinite(procrustes(x, y)).all()  # no row condition for Procrustes


def test_undefined_layers_are_nan_with_a_warning():
    rng = np.random.default_rng(6)
    x, y = _pair(rng, (3, 15, 5), 4)
    x[1] = 0.25  # a constant layer
    with pytest.warns(DegenerateInputWarning, match=r"x layer\(s\) \[1\].*Procrustes"):
        values = procrustes(x, y)
    assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all()
    # rows equal up to shift and scale: every correlation distance is 0, ranks all tied
    y[2] = rng.standard_normal(4) * rng.uniform(1, 2, size=(15, 1)) + rng.standard_normal((15, 1))
    with pytest.warns(DegenerateInputWarning, match=r"y layer\(s\) \[2\].*RSA"):
        values = rsa(rng.standard_normal((3, 15, 5)), y)
    assert np.isnan(values[2]) and np.isfinite(values[:2]).all()


# ------------------------------------------------------------------ calibration of any measure


@pytest.mark.parametrize("measure", list(MEASURES))
def test_null_samples_equal_reference_of_permuted_rows(measure):
    _, reference, options = MEASURES[measure]
    rng = np.random.default_rng(7)
    x, y = _pair(rng, (2, 14, 5), 18)  # d2 > n: Procrustes' QR factors are permuted
    result = permutation_null(x, y, n_permutations=6, seed=4, measure=measure, **options)
    perms = np.random.default_rng(4).permuted(np.tile(np.arange(14), (6, 1)), axis=1)
    expected = np.array([reference(x, y[:, p], *options.values()) for p in perms])
    np.testing.assert_allclose(result.samples, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result.observed, reference(x, y, *options.values()), atol=1e-10)
    np.testing.assert_allclose(result.p95, np.quantile(expected, 0.95, axis=0), atol=1e-10)


@pytest.mark.filterwarnings("ignore::mossa.similarity.DegenerateInputWarning")
@pytest.mark.parametrize("measure", list(MEASURES))
def test_bootstrap_samples_equal_reference_on_resampled_rows(measure):
    """With duplicates: Procrustes on the resampled rows as they are; RSA without pairs of
    copies; k-NN never takes a row's copy as its neighbour, compared by original row."""
    _, reference, options = MEASURES[measure]
    rng = np.random.default_rng(8)
    x, y = _pair(rng, (2, 12, 4), 15)
    result = bootstrap_ci(x, y, n_boot=5, seed=9, measure=measure, **options)
    index = np.random.default_rng(9).integers(0, 12, size=(5, 12))
    assert any(len(set(rows)) < 12 for rows in index)  # duplicates are exercised
    expected = np.empty((5, 2))
    for b, rows in enumerate(index):
        for layer in range(2):
            if measure == "procrustes":
                expected[b, layer] = ref.procrustes(x[layer, rows], y[layer, rows])
            elif measure == "rsa":
                expected[b, layer] = ref.rsa_resampled(x[layer], y[layer], rows)
            else:
                expected[b, layer] = ref.mutual_knn_resampled(x[layer], y[layer], 4, rows)
    np.testing.assert_allclose(result.samples, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result.estimate, reference(x, y, *options.values()), atol=1e-10)
    assert np.all(result.low <= result.high)


def test_rsa_bootstrap_copies_of_a_pair_tie_exactly():
    """At this size a float64 GEMM's x xᵀ is not exactly symmetric; copies of a pair can
    meet in either order, and must still tie (ranks differ by ~1e-4 otherwise)."""
    rng = np.random.default_rng(16)
    x, y = _pair(rng, (100, 33), 20)
    result = bootstrap_ci(x, y, n_boot=2, seed=0, measure="rsa")
    index = np.random.default_rng(0).integers(0, 100, size=(2, 100))
    expected = [ref.rsa_resampled(x, y, rows) for rows in index]
    np.testing.assert_allclose(result.samples, expected, rtol=0, atol=1e-10)


def test_dependent_data_beats_every_null_and_independent_data_does_not():
    rng = np.random.default_rng(10)
    x, y = _pair(rng, (2, 60, 10), 10, coupling=3.0)
    z = rng.standard_normal((2, 60, 10))
    for measure, (_, _, options) in MEASURES.items():
        dependent = permutation_null(x, y, n_permutations=99, measure=measure, **options)
        np.testing.assert_allclose(dependent.p_value, 0.01)
        independent = permutation_null(x, z, n_permutations=99, measure=measure, **options)
        assert np.all(independent.p_value > 0.01), measure


def test_knn_bootstrap_flags_resamples_with_too_few_other_rows():
    rng = np.random.default_rng(11)
    x, y = _pair(rng, (8, 4), 4)
    with pytest.warns(DegenerateInputWarning, match=r"a row drawn more than n - k = 2 times"):
        result = bootstrap_ci(x, y, n_boot=50, seed=0, measure="mutual_knn", k=6)
    assert np.isnan(result.samples).any() and np.isfinite(result.samples).any()


# ------------------------------------------------------------------ CKA null from features


@pytest.mark.parametrize("debiased", [False, True])
def test_feature_space_null_equals_gram_space_null(debiased):
    """Same permutations, float64: the O(n d) path and the n x n gather agree to 1e-10."""
    rng = np.random.default_rng(12)
    x, y = _pair(rng, (3, 50, 7), 5)
    x, y = torch.from_numpy(x + 40.0), torch.from_numpy(y)
    perms = torch.from_numpy(
        np.random.default_rng(1).permuted(np.tile(np.arange(50), (9, 1)), axis=1)
    )
    args = (x, y, perms, "linear", debiased, 1.0)
    gram = calibration._cka_null(*args, "gram", tqdm(disable=True))
    feature = calibration._cka_null(*args, "feature", tqdm(disable=True))
    for a, b in zip(gram, feature, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    assert np.ptp(gram[1]) > 0.05  # the permutations do differ


def test_large_n_takes_the_feature_path_and_matches_the_reference(monkeypatch):
    assert calibration.null_path("linear", 5792) == "gram"  # n x n Grams fit 1 GiB
    assert calibration.null_path("linear", 50_000) == "feature"
    assert calibration.null_path("rbf", 50_000) == "gram"  # no feature form
    monkeypatch.setattr(calibration, "MEMORY_BUDGET_BYTES", 8 * 40 * 40)
    assert calibration.null_path("linear", 40) == "feature"
    rng = np.random.default_rng(13)
    x, y = _pair(rng, (2, 40, 6), 3)
    x, y = x.astype(np.float32), y.astype(np.float32)
    result = permutation_null(x, y, n_permutations=5, seed=2)
    perms = np.random.default_rng(2).permuted(np.tile(np.arange(40), (5, 1)), axis=1)
    expected = np.array([reference_cka.cka(x, y[:, p]) for p in perms])
    np.testing.assert_allclose(result.samples, expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ streaming CKA


def _stream(x, y, sizes, debiased=True):
    acc = StreamingCKA(debiased=debiased)
    lo = 0
    for size in sizes:
        acc.update(x[..., lo : lo + size, :], y[..., lo : lo + size, :])
        lo += size
    assert lo == x.shape[-2] and acc.n == lo
    return acc.compute()


@pytest.mark.parametrize("debiased", [False, True])
def test_streaming_cka_equals_the_exact_estimator(debiased):
    rng = np.random.default_rng(14)
    x, y = _pair(rng, (3, 300, 9), 6)
    x, y = x + 1e3, y * 1e-4 - 5.0  # offsets far above the spread, tiny scales
    exact = cka(x, y, debiased=debiased)
    for sizes in ([300], [1] * 300, [7, 100, 1, 150, 42]):
        np.testing.assert_allclose(_stream(x, y, sizes, debiased), exact, rtol=0, atol=1e-10)
    single = _stream(x[1], y[1], [50] * 6, debiased)
    assert isinstance(single, float) and single == pytest.approx(exact[1], abs=1e-10)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    want = cka(x32.astype(np.float64), y32.astype(np.float64), debiased=debiased)
    np.testing.assert_allclose(_stream(x32, y32, [64] * 4 + [44], debiased), want, atol=1e-10)


def test_streaming_cka_errors_and_constant_layers():
    rng = np.random.default_rng(15)
    acc = StreamingCKA()
    acc.update(rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5)))
    with pytest.raises(ValueError, match=r"^StreamingCKA needs at least 4 rows .* got 3"):
        acc.compute()
    with pytest.raises(ValueError, match=r"keep the layout of the first batch \(\[2, b, d\]"):
        acc.update(rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 3, 5)))
    with pytest.raises(ValueError, match=r"^y contains NaN"):
        acc.update(rng.standard_normal((2, 3, 4)), np.full((2, 3, 5), np.nan))
    with pytest.raises(ValueError, match=r"^debiased must be True or False"):
        StreamingCKA(debiased="no")
    x = rng.standard_normal((2, 20, 4))
    x[0] = 2.0
    acc = StreamingCKA()
    acc.update(x[:, :10], x[:, :10] + 1)
    acc.update(x[:, 10:], x[:, 10:] + 1)
    with pytest.warns(DegenerateInputWarning, match=r"x layer\(s\) \[0\] and y layer\(s\) \[0\]"):
        values = acc.compute()
    assert np.isnan(values[0]) and values[1] == pytest.approx(1.0, abs=1e-12)
