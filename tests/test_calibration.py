"""Permutation null and bootstrap CI: agreement with literal references, and calibration."""

from __future__ import annotations

import numpy as np
import pytest

import reference_cka as ref
from mossa.similarity import (
    BootstrapResult,
    DegenerateInputWarning,
    NullResult,
    bootstrap_ci,
    cka,
    permutation_null,
)

KERNELS = ["linear", "rbf"]
ESTIMATORS = [False, True]


def _dependent(rng, shape, d2, noise=1.0):
    x = rng.standard_normal(shape)
    y = x[..., :d2] + noise * rng.standard_normal(shape[:-1] + (d2,))
    return x, y


# ------------------------------------------------------------------ permutation null


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_null_samples_equal_reference_cka_of_permuted_rows(kernel, debiased):
    rng = np.random.default_rng(1)
    x, y = _dependent(rng, (3, 12, 5), 4)
    x, y = x.astype(np.float32), y.astype(np.float32)
    result = permutation_null(x, y, n_permutations=7, seed=11, kernel=kernel, debiased=debiased)
    perms = np.random.default_rng(11).permuted(np.tile(np.arange(12), (7, 1)), axis=1)
    expected = np.array([ref.cka(x, y[:, p], kernel, debiased) for p in perms])
    assert isinstance(result, NullResult) and result.samples.shape == (7, 3)
    np.testing.assert_allclose(result.samples, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.observed, ref.cka(x, y, kernel, debiased), atol=1e-5)
    np.testing.assert_allclose(result.mean, expected.mean(0), atol=1e-5)
    np.testing.assert_allclose(result.p95, np.quantile(expected, 0.95, axis=0), atol=1e-5)


@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_null_is_calibrated_on_independent_data(debiased):
    """200 independent datasets (as layers): the null matches their observed CKA."""
    rng = np.random.default_rng(5)
    n_sets = 200
    x = rng.standard_normal((n_sets, 30, 10))
    y = rng.standard_normal((n_sets, 30, 8))
    result = permutation_null(x, y, n_permutations=100, seed=0, debiased=debiased)
    observed = result.observed
    spread = observed.std() / np.sqrt(n_sets)
    assert abs(observed.mean() - result.mean.mean()) < 4 * spread
    if not debiased:
        assert result.mean.mean() > 0.2  # biased CKA of unrelated data is far from 0 here
    exceed = np.mean(observed > result.p95)
    assert 0.01 <= exceed <= 0.11  # nominal 5 %; binomial sd 1.5 % at 200 sets
    assert 0.4 < result.p_value.mean() < 0.6  # p-values roughly uniform


def test_dependent_data_is_far_above_the_null():
    rng = np.random.default_rng(2)
    x, y = _dependent(rng, (4, 60, 20), 15, noise=1.0)
    result = permutation_null(x, y, n_permutations=200, seed=3)
    assert np.all(result.observed > result.p95 + 0.2)
    np.testing.assert_allclose(result.p_value, 1 / 201)
    np.testing.assert_allclose(result.observed, cka(x, y), atol=1e-8)


def test_null_is_seeded_and_2d_input_gives_scalars():
    rng = np.random.default_rng(4)
    x, y = _dependent(rng, (20, 6), 5)
    a = permutation_null(x, y, n_permutations=30, seed=7)
    b = permutation_null(x, y, n_permutations=30, seed=7)
    c = permutation_null(x, y, n_permutations=30, seed=8)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)
    assert a.samples.shape == (30,)
    assert all(isinstance(v, float) for v in (a.mean, a.p95, a.observed, a.p_value))


def test_null_constant_layer_is_nan_with_warning():
    rng = np.random.default_rng(0)
    x, y = _dependent(rng, (2, 15, 4), 3)
    x[0] = 1.0
    with pytest.warns(DegenerateInputWarning, match=r"x layer\(s\) \[0\]"):
        result = permutation_null(x, y, n_permutations=10)
    assert np.isnan(result.samples[:, 0]).all() and np.isnan(result.p_value[0])
    assert np.isfinite(result.samples[:, 1]).all()


# ------------------------------------------------------------------ bootstrap


@pytest.mark.filterwarnings("ignore::mossa.similarity.DegenerateInputWarning")
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_bootstrap_samples_equal_reference_on_resampled_rows(kernel, debiased):
    """Literal brute-force definitions over position tuples of the resample, skipping tuples
    that use two copies of one row: V-statistic (biased), U-statistic (debiased)."""
    rng = np.random.default_rng(3)
    x, y = _dependent(rng, (2, 7, 4), 3)
    x += 5.0  # an offset: the weighted estimators must stay translation invariant
    result = bootstrap_ci(x, y, n_boot=5, seed=9, kernel=kernel, debiased=debiased)
    index = np.random.default_rng(9).integers(0, 7, size=(5, 7))
    expected = np.empty((5, 2))
    for b, rows in enumerate(index):
        for layer in range(2):
            k = ref.gram(x[layer], kernel)[np.ix_(rows, rows)]
            l = ref.gram(y[layer], kernel)[np.ix_(rows, rows)]  # noqa: E741
            if debiased and len(set(rows)) < 4:
                expected[b, layer] = np.nan
            elif debiased:
                expected[b, layer] = ref.cka_u_brute(k, l, origin=rows)
            else:
                expected[b, layer] = ref.cka_v_brute(k, l, origin=rows)
    np.testing.assert_allclose(result.samples, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.estimate, cka(x, y, kernel=kernel, debiased=debiased))


@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_bootstrap_without_duplicates_is_the_plain_estimator(debiased):
    """A resample that happens to be a permutation of the rows reproduces cka exactly."""
    rng = np.random.default_rng(0)
    x, y = _dependent(rng, (6, 3), 3)
    gen = np.random.default_rng(0)
    for _ in range(2000):  # find a seed whose first resample has 6 distinct rows
        seed = int(gen.integers(2**31))
        rows = np.random.default_rng(seed).integers(0, 6, size=(1, 6))[0]
        if len(set(rows)) == 6:
            break
    result = bootstrap_ci(x, y, n_boot=1, seed=seed, debiased=debiased)
    assert result.samples[0] == pytest.approx(cka(x, y, debiased=debiased), abs=1e-10)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_bootstrap_interval_contains_estimate_and_narrows_with_n(kernel, debiased):
    rng = np.random.default_rng(6)
    widths = []
    for n in (40, 250):
        x, y = _dependent(rng, (n, 12), 12, noise=1.5)
        result = bootstrap_ci(x, y, n_boot=150, seed=1, kernel=kernel, debiased=debiased)
        assert isinstance(result, BootstrapResult) and isinstance(result.low, float)
        assert result.low < result.estimate < result.high
        widths.append(result.high - result.low)
    assert widths[1] < 0.65 * widths[0]  # ~0.4 expected


def test_debiased_bootstrap_of_independent_high_dim_data_stays_near_zero():
    """Resampled duplicates must not pair with themselves: naively they would act like the
    removed diagonal and push debiased CKA of independent 4096-d data to ~0.97."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 4096)).astype(np.float32)
    y = rng.standard_normal((100, 4096)).astype(np.float32)
    result = bootstrap_ci(x, y, n_boot=100, seed=0)
    assert result.low < result.estimate < result.high
    assert abs(np.median(result.samples)) < 0.05 and result.high < 0.15


def test_bootstrap_layers_share_resamples_and_are_seeded():
    rng = np.random.default_rng(8)
    x, y = _dependent(rng, (20, 5), 5)
    stacked = bootstrap_ci(np.stack([x, x]), np.stack([y, y]), n_boot=50, seed=4)
    single = bootstrap_ci(x, y, n_boot=50, seed=4)
    np.testing.assert_allclose(stacked.samples[:, 0], single.samples, atol=1e-12)
    np.testing.assert_allclose(stacked.samples[:, 1], single.samples, atol=1e-12)
    other = bootstrap_ci(x, y, n_boot=50, seed=5)
    assert not np.allclose(other.samples, single.samples)


def test_bootstrap_resamples_with_too_few_distinct_rows_are_nan_with_warning():
    rng = np.random.default_rng(0)
    x, y = _dependent(rng, (5, 3), 3)
    with pytest.warns(DegenerateInputWarning, match=r"fewer than 4 distinct rows"):
        result = bootstrap_ci(x, y, n_boot=100, seed=0)
    assert np.isnan(result.samples).any() and np.isfinite(result.samples).any()
    assert np.isfinite(result.low) and np.isfinite(result.high)


@pytest.mark.parametrize(
    ("func", "kwargs", "pattern"),
    [
        (permutation_null, {"n_permutations": 0}, r"^n_permutations must be a positive integer"),
        (permutation_null, {"seed": -1}, r"^seed must be a non-negative integer"),
        (permutation_null, {"kernel": "cos"}, r"^kernel must be one of"),
        (bootstrap_ci, {"n_boot": 2.5}, r"^n_boot must be a positive integer"),
        (bootstrap_ci, {"level": 1.0}, r"^level must be a number in \(0, 1\)"),
        (bootstrap_ci, {"threshold": -2.0}, r"^threshold must be a positive finite number"),
    ],
)
def test_calibration_bad_arguments(func, kwargs, pattern):
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match=pattern):
        func(x, x, **kwargs)
    with pytest.raises(ValueError, match=r"same number of rows"):
        func(x, x[:9])


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(np.float32, 1e9), (np.float32, 1e-9), (np.float64, 1e150), (np.float64, 1e-150)],
)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", ESTIMATORS)
def test_null_and_bootstrap_of_extremely_scaled_inputs_equal_the_unscaled(
    dtype, scale, kernel, debiased
):
    """The calibration paths share the rescaled centring of cka: no overflow to nan/0."""
    rng = np.random.default_rng(12)
    x, y = _dependent(rng, (2, 30, 6), 5, noise=2.0)
    x, y = x.astype(dtype), y.astype(dtype)
    xs, ys = (x * scale).astype(dtype), (y * scale).astype(dtype)
    options = {"kernel": kernel, "debiased": debiased, "seed": 3}
    null, null_scaled = (
        permutation_null(a, b, n_permutations=9, **options) for a, b in [(x, y), (xs, ys)]
    )
    np.testing.assert_allclose(null_scaled.samples, null.samples, rtol=0, atol=1e-5)
    np.testing.assert_allclose(null_scaled.observed, null.observed, rtol=0, atol=1e-5)
    assert np.all(null.observed > 0.1)  # a real dependence, not a trivial 0 on both sides
    boot, boot_scaled = (bootstrap_ci(a, b, n_boot=9, **options) for a, b in [(x, y), (xs, ys)])
    np.testing.assert_allclose(boot_scaled.samples, boot.samples, rtol=0, atol=1e-5)
    np.testing.assert_allclose(boot_scaled.estimate, boot.estimate, rtol=0, atol=1e-5)
