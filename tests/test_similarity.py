"""CKA and PCA dims against the plain float64 reference, published values and invariances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

import mossa
import reference_cka as ref
from mossa.similarity import DegenerateInputWarning, cka, cka_matrix, pca_dims
from mossa.similarity.cka import linear_plan

KERNELS = ["linear", "rbf"]
ESTIMATORS = [False, True]


def _pair(rng, shape_x, d2, coupling=0.7):
    """x ~ N(0, 1) and y partly a linear function of x (so CKA is not trivially 0 or 1)."""
    x = rng.standard_normal(shape_x)
    mix = rng.standard_normal((shape_x[-1], d2)) / np.sqrt(shape_x[-1])
    y = coupling * x @ mix + rng.standard_normal(shape_x[:-1] + (d2,))
    return x, y


# ------------------------------------------------------------------ published test vector


def _published_vector():
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"kernel": "linear", "debiased": False}, 0.5576132566),
        ({"kernel": "rbf", "debiased": False, "threshold": 0.5}, 0.6548311823),
        ({"kernel": "linear", "debiased": True}, 0.5134564895),
    ],
)
def test_published_test_vector(kwargs, expected):
    x, y = _published_vector()
    assert abs(cka(x, y, **kwargs) - expected) < 1e-9
    reference = ref.cka(x, y, kwargs["kernel"], kwargs["debiased"], kwargs.get("threshold", 1.0))
    assert abs(reference - expected) < 1e-9


def test_top_level_exports_and_default_is_debiased():
    x, y = _published_vector()
    assert mossa.cka(x, y) == pytest.approx(0.5134564895, abs=1e-9)
    assert {"cka", "cka_matrix", "pca_dims", "permutation_null", "bootstrap_ci"} <= set(
        mossa.__all__
    )


def test_reference_song_formula_equals_literal_u_statistic():
    rng = np.random.default_rng(0)
    x, y = _pair(rng, (9, 4), 3)
    k, l = ref.gram_linear(x), ref.gram_rbf(y)  # noqa: E741
    assert ref.hsic_unbiased(k, l) == pytest.approx(ref.hsic_u_brute(k, l), rel=1e-12)


# ------------------------------------------------------------------ agreement with reference

SHAPES = [
    # (L or None, n, d1, d2)
    (None, 20, 5, 7),
    (None, 12, 50, 30),  # n < d
    (None, 150, 6, 4),  # n > d: feature-space path
    (3, 40, 6, 9),
    (2, 15, 60, 40),
    (3, 80, 8, 8),
    (2, 5, 3, 2),
]


@pytest.mark.parametrize(("layers", "n", "d1", "d2"), SHAPES)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_cka_matches_reference(layers, n, d1, d2, kernel, debiased):
    rng = np.random.default_rng(n * 1000 + d1 * 10 + d2)
    shape = (n, d1) if layers is None else (layers, n, d1)
    x, y = _pair(rng, shape, d2)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    got = cka(x32, y32, kernel=kernel, debiased=debiased, threshold=0.8)
    want = ref.cka(x32, y32, kernel, debiased, 0.8)
    if layers is None:
        assert isinstance(got, float)
    else:
        assert isinstance(got, np.ndarray) and got.shape == (layers,) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # float64 inputs are computed in float64 throughout
    np.testing.assert_allclose(
        cka(x, y, kernel=kernel, debiased=debiased, threshold=0.8),
        ref.cka(x, y, kernel, debiased, 0.8),
        rtol=0,
        atol=1e-10,
    )


def test_both_linear_paths_are_exercised():
    assert linear_plan(150, 6, 4).path == "feature"
    assert linear_plan(80, 8, 8).path == "feature"
    assert linear_plan(12, 50, 30).path == "gram"
    assert linear_plan(256, 4096, 4096).path == "gram"
    assert linear_plan(2000, 1024, 1024).path == "feature"


def test_large_d_float32_gram_path_and_debiased_cancellation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 2048)).astype(np.float32) + 30.0  # offset: centring matters
    y = (x @ rng.standard_normal((2048, 300)) / 45).astype(np.float32)
    y += rng.standard_normal(y.shape).astype(np.float32) * 5
    for debiased in ESTIMATORS:
        got = cka(x, y, debiased=debiased)
        assert abs(got - ref.cka(x, y, "linear", debiased)) < 1e-5


def test_feature_path_reductions_hold_at_large_d():
    """Sums over d1 d2 ~ 1e6 products: float32 accumulation would drift by ~1e-5."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1200, 800), dtype=np.float32)
    y = 0.5 * x + rng.standard_normal((1200, 800), dtype=np.float32)
    assert linear_plan(1200, 800, 800).path == "feature"
    xc, yc = x - x.mean(0, dtype=np.float64), y - y.mean(0, dtype=np.float64)
    cross, sx, sy = (np.sum((a.T @ b) ** 2) for a, b in ((xc, yc), (xc, xc), (yc, yc)))
    k, l = np.sum(xc**2, axis=1), np.sum(yc**2, axis=1)  # noqa: E741
    n = 1200

    def unbiased(t, a, b):
        return t - n / (n - 2) * a @ b + a.sum() * b.sum() / ((n - 1) * (n - 2))

    biased = cross / np.sqrt(sx * sy)
    debiased = unbiased(cross, k, l) / np.sqrt(unbiased(sx, k, k) * unbiased(sy, l, l))
    assert abs(cka(x, y, debiased=False) - biased) < 1e-6
    assert abs(cka(x, y, debiased=True) - debiased) < 1e-6
    assert abs(cka_matrix(x, y, debiased=True)[0, 0] - debiased) < 1e-6


@pytest.mark.parametrize(
    ("lx", "ly", "n", "d1", "d2"), [(3, 4, 30, 5, 40), (2, 3, 150, 6, 7), (1, 2, 8, 3, 3)]
)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_cka_matrix_matches_reference(lx, ly, n, d1, d2, kernel, debiased):
    rng = np.random.default_rng(lx + ly + n)
    x = rng.standard_normal((lx, n, d1)).astype(np.float32)
    y = rng.standard_normal((ly, n, d2)).astype(np.float32)
    y[0, :, : min(d1, d2)] += x[-1, :, : min(d1, d2)]  # one dependent pair
    got = cka_matrix(x, y, kernel=kernel, debiased=debiased)
    assert got.shape == (lx, ly)
    np.testing.assert_allclose(got, ref.cka_matrix(x, y, kernel, debiased), rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        got[-1, 0], cka(x[-1], y[0], kernel=kernel, debiased=debiased), rtol=0, atol=1e-6
    )


def test_cka_matrix_of_2d_inputs_is_one_by_one():
    rng = np.random.default_rng(0)
    x, y = _pair(rng, (30, 4), 5)
    assert cka_matrix(x, y).shape == (1, 1)
    assert cka_matrix(x, y)[0, 0] == pytest.approx(cka(x, y), abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("kernel", KERNELS)
def test_torch_inputs_any_float_dtype(dtype, kernel):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 40, 24, generator=gen)
    y = x[..., :16] * 2 + torch.randn(3, 40, 16, generator=gen)
    x, y = x.to(dtype), y.to(dtype)
    x64, y64 = x.double().numpy(), y.double().numpy()  # the values actually passed
    for debiased in ESTIMATORS:
        got = cka(x, y, kernel=kernel, debiased=debiased)
        np.testing.assert_allclose(got, ref.cka(x64, y64, kernel, debiased), rtol=0, atol=1e-5)
        matrix = cka_matrix(x, y, kernel=kernel, debiased=debiased)
        np.testing.assert_allclose(np.diag(matrix), got, rtol=0, atol=1e-5)


def test_float16_large_values_do_not_overflow():
    """||XᵀY||^2 of these fp16 inputs is far above 65504: computing in fp16 would give inf."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((200, 64)) * 30).astype(np.float16)
    y = (x.astype(np.float64) + rng.standard_normal((200, 64)) * 30).astype(np.float16)
    got = cka(torch.from_numpy(x), torch.from_numpy(y), debiased=False)
    assert abs(got - ref.cka(x, y, "linear", False)) < 1e-5


EXTREME_SCALES = [
    (np.float32, 1e9),
    (np.float32, 1e-9),
    (np.float32, 1e30),
    (np.float32, 1e-30),
    (np.float64, 1e150),
    (np.float64, 1e-150),
]


@pytest.mark.parametrize(("dtype", "scale"), EXTREME_SCALES)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_extreme_scales_give_the_unscaled_value(dtype, scale, kernel, debiased):
    """Without rescaling, float32 products of 1e9 features overflow (||XᵀY||² > 3e38) and
    of 1e-9 underflow. The RBF bandwidth is a fraction of the median squared distance,
    which scales with the data, so the RBF Gram is scale-free too."""
    rng = np.random.default_rng(4)
    for shape, d2 in [((2, 150, 6), 4), ((2, 12, 50), 30)]:  # feature and Gram paths
        x, y = _pair(rng, shape, d2)
        x, y = x.astype(dtype), y.astype(dtype)
        want = ref.cka(x, y, kernel, debiased)  # float64 reference, unscaled values
        xs, ys = (x * scale).astype(dtype), (y * scale).astype(dtype)
        assert np.isfinite(xs).all() and np.abs(xs).max() > 0
        got = cka(xs, ys, kernel=kernel, debiased=debiased)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        mixed = cka(xs, (y / scale).astype(dtype), kernel=kernel, debiased=debiased)
        np.testing.assert_allclose(mixed, want, rtol=0, atol=1e-5)
        matrix = cka_matrix(xs, ys, kernel=kernel, debiased=debiased)
        want_matrix = ref.cka_matrix(x, y, kernel, debiased)
        np.testing.assert_allclose(matrix, want_matrix, rtol=0, atol=1e-5)


def test_rescaling_by_powers_of_two_changes_no_bit():
    """The per-layer rescaling is by a power of two: exact, so results equal those of the
    same data already in [0.5, 1) (both linear paths and the RBF kernel)."""
    rng = np.random.default_rng(6)
    for shape, d2 in [((2, 150, 6), 4), ((2, 12, 50), 30)]:
        x, y = _pair(rng, shape, d2)
        x = (x / np.abs(x).max(axis=(1, 2), keepdims=True) * 0.75).astype(np.float32)
        y = y.astype(np.float32)
        for kernel in KERNELS:
            base = cka(x, y, kernel=kernel)
            assert np.array_equal(cka(x * np.float32(2.0**40), y, kernel=kernel), base)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_match_cpu():
    x = torch.randn(2, 30, 10)
    y = torch.randn(2, 30, 12)
    np.testing.assert_allclose(cka(x.cuda(), y.cuda()), cka(x, y), atol=1e-6)


def test_inputs_are_not_modified_and_read_only_arrays_work():
    rng = np.random.default_rng(2)
    x, y = _pair(rng, (2, 30, 6), 4)
    x_copy, y_copy = x.copy(), y.copy()
    x.setflags(write=False)
    for kernel in KERNELS:
        cka(x, y, kernel=kernel)
        cka_matrix(x, y, kernel=kernel)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, y_copy)
    t = torch.from_numpy(y_copy.copy())
    cka(t, t)
    np.testing.assert_array_equal(t.numpy(), y_copy)


def test_biased_inflation_and_debiased_near_zero_for_independent_high_dim_data():
    """REFERENCE.md: independent 4096-d Gaussians, n = 100: biased ~0.976, debiased ~0."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 4096)).astype(np.float32)
    y = rng.standard_normal((100, 4096)).astype(np.float32)
    assert abs(cka(x, y, debiased=True)) < 0.05
    assert cka(x, y, debiased=False) == pytest.approx(0.976, abs=0.01)


# ------------------------------------------------------------------ invariances (hypothesis)

_CASES = st.tuples(
    st.integers(0, 2**31 - 1),  # seed
    st.integers(6, 30),  # n
    st.integers(2, 20),  # d1
    st.integers(2, 20),  # d2
    st.sampled_from(KERNELS),
    st.booleans(),  # debiased
)
_PROPERTY = settings(max_examples=25, deadline=None)


def _random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@_PROPERTY
@given(_CASES, st.floats(1e-3, 1e3), st.floats(-100, 100))
def test_invariances(case, scale, shift):
    seed, n, d1, d2, kernel, debiased = case
    rng = np.random.default_rng(seed)
    x, y = _pair(rng, (n, d1), d2)
    base = cka(x, y, kernel=kernel, debiased=debiased)
    perm = rng.permutation(n)
    transformed = {
        "orthogonal": x @ _random_orthogonal(rng, d1),
        "isotropic scaling": x * scale,
        "translation": x + shift * rng.standard_normal(d1),
    }
    for name, x2 in transformed.items():
        got = cka(x2, y, kernel=kernel, debiased=debiased)
        assert got == pytest.approx(base, abs=1e-8), name
    permuted = cka(x[perm], y[perm], kernel=kernel, debiased=debiased)
    assert permuted == pytest.approx(base, abs=1e-8)


@_PROPERTY
@given(_CASES)
def test_general_invertible_map_changes_cka_and_self_cka_is_one(case):
    seed, n, d1, _, kernel, debiased = case
    d1 = max(d1, 3)  # with 2 features a near rank-1 map can keep CKA at 0.994 (seed 385, n 6)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d1))
    assert cka(x, x, kernel=kernel, debiased=debiased) == pytest.approx(1.0, abs=1e-9)
    # badly conditioned but invertible: singular values from 1 to 1e3
    a = _random_orthogonal(rng, d1) @ np.diag(np.logspace(0, 3, d1)) @ _random_orthogonal(rng, d1)
    assert cka(x @ a, x, kernel=kernel, debiased=debiased) < 0.99


# ------------------------------------------------------------------ bad input

_GOOD = np.random.default_rng(0).standard_normal((10, 3))


def _with_nan_rows(k):
    bad = _GOOD.copy()
    bad[:k, 0] = np.nan
    return bad


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "pattern"),
    [
        (_GOOD, _GOOD[:9], {}, r"same number of rows.*x has 10.*y has 9"),
        (_GOOD[:, 0], _GOOD, {}, r"^x must be a 2-D .*got 1-D shape \(10,\)"),
        (_GOOD, np.zeros((2, 3, 10, 3)), {}, r"^y must be a 2-D .* shape \(2, 3, 10, 3\)"),
        (np.stack([_GOOD] * 2), np.stack([_GOOD] * 3), {}, r"same number of layers.*x has 2"),
        (np.stack([_GOOD] * 2), _GOOD, {}, r"x and y must both be 2-D .* or both 3-D"),
        (_GOOD[:3], _GOOD[:3], {}, r"debiased=True needs at least 4 rows.*got 3"),
        (_GOOD[:1], _GOOD[:1], {"debiased": False}, r"^x needs at least 2 rows"),
        (_with_nan_rows(3), _GOOD, {}, r"^x contains NaN or Inf in 3 of 10 rows"),
        (_GOOD, np.where(_GOOD > 1, np.inf, _GOOD), {}, r"^y contains NaN or Inf in \d+ of 10"),
        (np.zeros((0, 3)), np.zeros((0, 3)), {}, r"^x is empty: shape \(0, 3\)"),
        (_GOOD, np.zeros((10, 0)), {}, r"^y is empty: shape \(10, 0\)"),
        (_GOOD, _GOOD, {"threshold": 0.0}, r"^threshold must be a positive finite number; got 0"),
        (_GOOD, _GOOD, {"threshold": -1}, r"^threshold .* got -1"),
        (_GOOD, _GOOD, {"threshold": float("nan")}, r"^threshold .* got nan"),
        (
            _GOOD,
            _GOOD,
            {"kernel": "poly"},
            r"^kernel must be one of \('linear', 'rbf'\); got 'poly'",
        ),
        (_GOOD, _GOOD, {"debiased": "yes"}, r"^debiased must be True or False"),
        (np.array([["a", "b"]] * 5), _GOOD[:5], {}, r"^x must hold real numbers; got dtype <U1"),
        (_GOOD.astype(complex), _GOOD, {}, r"^x must hold real numbers; got dtype complex128"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(x, y, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        cka(x, y, **kwargs)


def test_cka_matrix_validates_too():
    with pytest.raises(ValueError, match=r"same number of rows"):
        cka_matrix(np.zeros((2, 10, 3)), np.zeros((2, 9, 3)))
    with pytest.raises(ValueError, match=r"^kernel"):
        cka_matrix(_GOOD, _GOOD, kernel="cosine")


def test_nan_in_torch_half_input_counts_rows_per_layer():
    x = torch.randn(2, 8, 4, dtype=torch.float16)
    x[1, 5, 2] = float("inf")
    with pytest.raises(
        ValueError, match=r"^x contains NaN or Inf in 1 of 16 rows .*layer 1, row 5"
    ):
        cka(x, torch.randn(2, 8, 4))


def test_integer_inputs_are_accepted_as_float64():
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 5, size=(30, 4))
    y = x + rng.integers(-2, 2, size=(30, 4))
    assert cka(x, y) == pytest.approx(ref.cka(x, y), abs=1e-10)


# ------------------------------------------------------------------ degenerate (constant) input


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_constant_input_gives_nan_with_warning(kernel, debiased):
    rng = np.random.default_rng(0)
    x = np.full((12, 5), 3.7)
    with pytest.warns(DegenerateInputWarning, match=r"^x: rows do not vary"):
        assert np.isnan(cka(x, rng.standard_normal((12, 4)), kernel=kernel, debiased=debiased))
    layered = rng.standard_normal((3, 12, 5))
    layered[1] = 0.25  # a constant layer, e.g. embeddings of one shared last token
    with pytest.warns(DegenerateInputWarning, match=r"x layer\(s\) \[1\]"):
        values = cka(layered, layered + 1, kernel=kernel, debiased=debiased)
    assert np.isnan(values[1]) and np.allclose(values[[0, 2]], 1.0)
    with pytest.warns(DegenerateInputWarning, match=r"y layer\(s\) \[1\]"):
        matrix = cka_matrix(
            rng.standard_normal((2, 12, 5)), layered, kernel=kernel, debiased=debiased
        )
    assert matrix.shape == (2, 3)
    assert np.isnan(matrix[:, 1]).all() and not np.isnan(matrix[:, [0, 2]]).any()


def test_rbf_with_zero_median_distance_gives_nan_with_warning():
    x = np.zeros((10, 3))
    x[:2] = 1.0  # 8 identical rows: most pairwise distances are 0
    y = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.warns(DegenerateInputWarning):
        assert np.isnan(cka(x, y, kernel="rbf"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(cka(x, y, kernel="linear"))


# ------------------------------------------------------------------ PCA dims


def _decaying(rng, n, d):
    return rng.standard_normal((n, d)) * np.logspace(0, -2, d)


@pytest.mark.parametrize(("n", "d"), [(200, 20), (30, 80)])
@pytest.mark.parametrize("variance", [0.5, 0.9, 0.99])
def test_pca_dims_matches_sklearn(n, d, variance):
    rng = np.random.default_rng(n + d)
    layers = np.stack([_decaying(rng, n, d) for _ in range(3)])
    expected = []
    for layer in layers:
        cumulative = np.cumsum(PCA().fit(layer).explained_variance_ratio_)
        expected.append(int(np.argmax(cumulative >= variance)) + 1)
        assert expected[-1] == ref.pca_dims(layer, variance)
    got = pca_dims(layers.astype(np.float32), variance=variance)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    assert pca_dims(layers[0], variance=variance) == expected[0]
    assert isinstance(pca_dims(torch.from_numpy(layers[0]), variance=variance), int)


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_pca_dims_of_extremely_scaled_float64(scale):
    x = np.random.default_rng(8).standard_normal((2, 40, 12)) @ np.diag(np.arange(1, 13))
    np.testing.assert_array_equal(pca_dims(x * scale, 0.9), pca_dims(x, 0.9))


def test_pca_dims_edge_cases():
    rng = np.random.default_rng(0)
    low_rank = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 40))
    assert pca_dims(low_rank, variance=0.999999) == 3
    assert pca_dims(low_rank, variance=1.0) <= 40
    with pytest.warns(DegenerateInputWarning):
        assert pca_dims(np.ones((10, 4))) == 0
    for bad in (0, 1.5, -0.1, "0.9"):
        with pytest.raises(ValueError, match=r"^variance must be a number in \(0, 1\]"):
            pca_dims(low_rank, variance=bad)
    with pytest.raises(ValueError, match=r"^x must be a 2-D"):
        pca_dims(np.ones(5))
