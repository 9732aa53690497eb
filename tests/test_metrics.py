"""Tests for skpatch.metrics: PSNR, its batch mean and the GridSearchCV scorer."""

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.preprocessing import FunctionTransformer

from skpatch.metrics import (
    make_psnr_scorer,
    mean_peak_signal_noise_ratio,
    peak_signal_noise_ratio,
    psnr_scorer,
)

skimage_metrics = pytest.importorskip("skimage.metrics")


def _pair(dtype, low, high, shape=(6, 7), seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        true = rng.integers(low, high, size=shape).astype(dtype)
        test = rng.integers(low, high, size=shape).astype(dtype)
    else:
        true = rng.uniform(low, high, size=shape).astype(dtype)
        test = (true + rng.normal(0, 0.05, size=shape)).astype(dtype)
    return true, test


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [
        (np.uint8, 0, 256),
        (np.uint16, 0, 5000),
        (np.int16, -300, 300),
        (np.float64, 0.0, 1.0),
        (np.float32, 0.0, 1.0),
        (np.float64, -1.0, 1.0),
    ],
)
def test_psnr_matches_skimage_default_data_range(dtype, low, high):
    """Check that the PSNR with the dtype's data range agrees with scikit-image."""
    true, test = _pair(dtype, low, high)
    expected = skimage_metrics.peak_signal_noise_ratio(true, test)
    assert peak_signal_noise_ratio(true, test) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("data_range", [1, 2.5, 255])
def test_psnr_matches_skimage_explicit_data_range(data_range):
    """Check that an explicit data_range gives scikit-image's PSNR."""
    true, test = _pair(np.float64, 0.0, 3.0, shape=(4, 5, 3), seed=1)
    expected = skimage_metrics.peak_signal_noise_ratio(
        true, test, data_range=data_range
    )
    actual = peak_signal_noise_ratio(true, test, data_range=data_range)
    assert actual == pytest.approx(expected, rel=1e-12)


def test_psnr_formula():
    """Check that the PSNR is 10 log10(range^2 / MSE) for a known error."""
    true = np.zeros((3, 4))
    test = np.full((3, 4), 0.25)
    assert peak_signal_noise_ratio(true, test, data_range=2.0) == pytest.approx(
        10 * np.log10(4.0 / 0.0625)
    )


def test_psnr_of_equal_images_is_inf_without_warning():
    """Check that equal images give an infinite PSNR and no warning."""
    image = np.linspace(0, 1, 12).reshape(3, 4)
    assert peak_signal_noise_ratio(image, image.copy()) == np.inf


def test_psnr_mixed_dtypes_uses_image_true():
    """Check that mixed dtypes take the data range of image_true, silently."""
    true = np.array([[0, 128], [255, 64]], dtype=np.uint8)
    test = true.astype(np.float64) + 1.0
    assert peak_signal_noise_ratio(true, test) == pytest.approx(10 * np.log10(255.0**2))


def test_psnr_rejects_shape_mismatch():
    """Check that images of different shapes are refused, naming both shapes."""
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(4, 3\)"):
        peak_signal_noise_ratio(np.zeros((3, 4)), np.zeros((4, 3)))


def test_psnr_rejects_out_of_dtype_range_without_data_range():
    """Check that floats outside [-1, 1] need an explicit data_range."""
    true = np.array([[0.0, 3.0]])
    with pytest.raises(ValueError, match=r"\[0\.0, 3\.0\].*\[-1\.0, 1\.0\]"):
        peak_signal_noise_ratio(true, true + 0.1)
    assert np.isfinite(peak_signal_noise_ratio(true, true + 0.1, data_range=3.0))


@pytest.mark.parametrize("data_range", [0, -1.0, np.nan, "1", True])
def test_psnr_rejects_bad_data_range(data_range):
    """Check that a non-positive or non-numeric data_range is refused."""
    with pytest.raises(ValueError, match="data_range must be a positive number"):
        peak_signal_noise_ratio(np.zeros(3), np.ones(3), data_range=data_range)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_psnr_rejects_non_finite(bad):
    """Check that NaN or infinity in an image is an error, with the count."""
    test = np.full((2, 3), 0.5)
    test[0, 1] = bad
    with pytest.raises(ValueError, match="image_test must be finite, got 1 NaN"):
        peak_signal_noise_ratio(np.full((2, 3), 0.5), test)


def test_psnr_rejects_non_numeric():
    """Check that a non-numeric image is a TypeError naming the dtype."""
    with pytest.raises(TypeError, match="got dtype <U1"):
        peak_signal_noise_ratio(np.array(["a"]), np.array(["b"]))


def test_mean_psnr_is_mean_of_per_image_psnr():
    """Check that the batch PSNR is the mean of the per-image PSNRs."""
    true, test = _pair(np.float64, 0.0, 1.0, shape=(4, 5, 6), seed=3)
    test = np.clip(test, 0, 1)
    expected = np.mean(
        [
            skimage_metrics.peak_signal_noise_ratio(t, e)
            for t, e in zip(true, test, strict=True)
        ]
    )
    assert mean_peak_signal_noise_ratio(true, test) == pytest.approx(expected)
    whole = skimage_metrics.peak_signal_noise_ratio(true, test)
    assert mean_peak_signal_noise_ratio(true, test) != pytest.approx(whole)


def test_mean_psnr_rejects_single_axis():
    """Check that the batch PSNR needs a batch axis plus image axes."""
    with pytest.raises(ValueError, match=r"at least 2 axes.*got shape \(5,\)"):
        mean_peak_signal_noise_ratio(np.zeros(5), np.ones(5))


class _ShrinkDenoiser(BaseEstimator):
    """Shrinks images towards 0.5 by ``alpha``: a toy estimator for the scorer."""

    def __init__(self, alpha=0.0):
        self.alpha = alpha

    def fit(self, X, y=None):
        return self

    def predict(self, X):
        if isinstance(X, list):
            return [self.predict(image) for image in X]
        return 0.5 + (1 - self.alpha) * (np.asarray(X) - 0.5)


def _denoising_data(seed=0, n_images=6):
    rng = np.random.default_rng(seed)
    clean = np.full((n_images, 8, 9), 0.5) + 0.05 * rng.standard_normal((1, 8, 9))
    noisy = clean + 0.3 * rng.standard_normal(clean.shape)
    return noisy, clean


def test_scorer_clips_and_averages():
    """Check that the scorer clips the estimate to [0, 1] and averages the PSNR."""
    noisy, clean = _denoising_data()
    estimator = _ShrinkDenoiser(alpha=0.2).fit(noisy)
    estimate = np.clip(estimator.predict(noisy), 0, 1)
    expected = mean_peak_signal_noise_ratio(clean, estimate, data_range=1.0)
    assert psnr_scorer(estimator, noisy, clean) == pytest.approx(expected)
    unclipped = make_psnr_scorer(clip=None)(estimator, noisy, clean)
    assert unclipped == pytest.approx(
        mean_peak_signal_noise_ratio(clean, estimator.predict(noisy), data_range=1)
    )
    assert unclipped != pytest.approx(expected)


def test_scorer_uses_transform_without_predict():
    """Check that the scorer falls back on transform when there is no predict."""
    noisy, clean = _denoising_data(seed=1)
    halve = FunctionTransformer(lambda X: 0.5 * X + 0.25).fit(noisy)
    expected = mean_peak_signal_noise_ratio(
        clean, np.clip(0.5 * noisy + 0.25, 0, 1), data_range=1
    )
    assert psnr_scorer(halve, noisy, clean) == pytest.approx(expected)


def test_scorer_in_grid_search_picks_best_psnr():
    """Check that GridSearchCV with the scorer picks the alpha of highest PSNR."""
    noisy, clean = _denoising_data(seed=2)
    alphas = [0.0, 0.3, 0.6, 0.9]
    search = GridSearchCV(
        _ShrinkDenoiser(), {"alpha": alphas}, scoring=psnr_scorer, cv=2
    ).fit(noisy, clean)
    by_hand = [
        np.mean(
            [
                psnr_scorer(_ShrinkDenoiser(alpha=a), noisy[test], clean[test])
                for test in (slice(3, 6), slice(0, 3))
            ]
        )
        for a in alphas
    ]
    assert search.best_params_ == {"alpha": alphas[int(np.argmax(by_hand))]}
    assert search.best_score_ == pytest.approx(max(by_hand))


def test_scorer_in_cross_val_score():
    """Check that cross_val_score accepts the scorer and returns one PSNR per fold."""
    noisy, clean = _denoising_data(seed=4)
    scores = cross_val_score(
        _ShrinkDenoiser(0.5), noisy, clean, scoring=psnr_scorer, cv=3
    )
    assert scores.shape == (3,)
    assert np.all(np.isfinite(scores))


def test_scorer_rejects_missing_y_and_shape_mismatch():
    """Check that the scorer needs clean images of the estimate's shape."""
    noisy, clean = _denoising_data()
    estimator = _ShrinkDenoiser().fit(noisy)
    with pytest.raises(ValueError, match="got y=None"):
        psnr_scorer(estimator, noisy, None)
    with pytest.raises(ValueError, match=r"\(72,\) and \(8, 9\)"):
        psnr_scorer(estimator, noisy, clean.reshape(6, -1))
    with pytest.raises(ValueError, match="as many images, got 5 and 6"):
        psnr_scorer(estimator, noisy, clean[:5])


def test_scorer_accepts_lists_of_images_of_different_shapes():
    """Check that the scorer averages per-image PSNRs over a ragged list."""
    noisy, clean = _denoising_data()
    estimator = _ShrinkDenoiser(alpha=0.5).fit(noisy)
    noisy_list = [noisy[0], noisy[1][:5, :7]]
    clean_list = [clean[0], clean[1][:5, :7]]
    expected = np.mean([
        peak_signal_noise_ratio(c, np.clip(e, 0, 1), data_range=1)
        for c, e in zip(clean_list, estimator.predict(noisy_list), strict=True)
    ])
    assert psnr_scorer(estimator, noisy_list, clean_list) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip": (1, 0)}, r"low < high, got \(1, 0\)"),
        ({"clip": 1.0}, "got 1.0"),
        ({"data_range": -2}, "got -2"),
    ],
)
def test_make_psnr_scorer_rejects_bad_parameters(kwargs, match):
    """Check that make_psnr_scorer validates clip and data_range."""
    with pytest.raises(ValueError, match=match):
        make_psnr_scorer(**kwargs)


def test_scorer_repr():
    """Check that the scorer's repr shows its parameters."""
    assert repr(make_psnr_scorer(data_range=2.0, clip=None)) == (
        "make_psnr_scorer(data_range=2.0, clip=None)"
    )


def test_scorer_pickles_for_parallel_search():
    """Check that the scorer survives pickling, as GridSearchCV(n_jobs=2) needs."""
    noisy, clean = _denoising_data(seed=5)
    loaded = pickle.loads(pickle.dumps(psnr_scorer))
    estimator = _ShrinkDenoiser(alpha=0.4)
    assert loaded(estimator, noisy, clean) == psnr_scorer(estimator, noisy, clean)
    assert repr(loaded) == repr(psnr_scorer)
