"""Tests for non-local Bayes denoising (skpatch._nonlocal)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skpatch import NonLocalBayes, denoise_nl_bayes, estimate_noise_sigma
from skpatch.metrics import peak_signal_noise_ratio


def _scene(shape=(48, 56), seed=0):
    """A piecewise-smooth test image in [0, 1]: a ramp, a disc and stripes."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = 0.2 + 0.5 * cols / shape[1]
    disc = (rows - shape[0] / 2) ** 2 + (cols - shape[1] / 3) ** 2 < (shape[0] / 4) ** 2
    image[disc] = 0.85
    image[:, -shape[1] // 4 :] = 0.3 + 0.4 * ((rows[:, -shape[1] // 4 :] // 3) % 2)
    return image


def _noisy(clean, sigma, seed=0):
    return clean + sigma * np.random.default_rng(seed).standard_normal(clean.shape)


def _psnr(clean, estimate):
    return peak_signal_noise_ratio(clean, np.clip(estimate, 0, 1), data_range=1)


@pytest.mark.parametrize("sigma", [10 / 255, 25 / 255, 50 / 255])
def test_denoising_improves_psnr(sigma):
    """Check that the denoised image is much closer to the clean one than the input."""
    clean = _scene()
    noisy = _noisy(clean, sigma)
    denoised = denoise_nl_bayes(noisy, sigma)
    assert denoised.shape == clean.shape
    assert _psnr(clean, denoised) > _psnr(clean, noisy) + 6


def test_colour_denoising_both_colour_spaces():
    """Check that colour images are denoised, channels anywhere, in both spaces."""
    clean = np.stack([_scene(), _scene()[::-1], 0.5 * _scene()[:, ::-1]], axis=-1)
    noisy = _noisy(clean, 0.1)
    for colour_space in ("opponent", "rgb"):
        denoised = denoise_nl_bayes(
            noisy, 0.1, channel_axis=-1, colour_space=colour_space
        )
        assert denoised.shape == clean.shape
        assert _psnr(clean, denoised) > _psnr(clean, noisy) + 6
        first = denoise_nl_bayes(
            np.moveaxis(noisy, -1, 0), 0.1, channel_axis=0, colour_space=colour_space
        )
        assert_allclose(np.moveaxis(first, 0, -1), denoised)


def test_volume_and_signal():
    """Check that 3-D volumes and 1-D signals are denoised too."""
    rng = np.random.default_rng(1)
    volume = np.zeros((14, 15, 16))
    volume[4:10, 3:12, 5:] = 1.0
    noisy = volume + 0.1 * rng.standard_normal(volume.shape)
    denoised = denoise_nl_bayes(
        noisy, 0.1, patch_size=3, n_neighbors=20, search_window=7
    )
    assert np.abs(denoised - volume).mean() < np.abs(noisy - volume).mean() / 2
    signal = np.repeat([0.2, 0.8, 0.4, 0.6], 40)
    noisy = signal + 0.1 * rng.standard_normal(signal.shape)
    denoised = denoise_nl_bayes(noisy, 0.1)
    assert np.abs(denoised - signal).mean() < np.abs(noisy - signal).mean() / 2


def test_deterministic():
    """Check that two runs give the same bits."""
    noisy = _noisy(_scene(), 0.1)
    assert_array_equal(denoise_nl_bayes(noisy, 0.1), denoise_nl_bayes(noisy, 0.1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int16])
def test_dtypes(dtype):
    """Check that float32 stays float32 and everything else gives float64."""
    noisy = _noisy(_scene(), 0.1).astype(np.float64)
    if np.dtype(dtype).kind in "iu":
        noisy = np.clip(noisy * 100, 0, 100).astype(dtype)
    else:
        noisy = noisy.astype(dtype)
    denoised = denoise_nl_bayes(noisy, 0.1 if noisy.dtype.kind == "f" else 10)
    expected = np.float32 if dtype == np.float32 else np.float64
    assert denoised.dtype == expected
    if dtype == np.float32:
        reference = denoise_nl_bayes(noisy.astype(np.float64), 0.1)
        assert_allclose(denoised, reference, atol=1e-4)


def test_constant_image_stays_constant():
    """Check that a constant image (zero-variance groups) comes back unchanged."""
    image = np.full((30, 31), 0.25)
    assert_array_equal(denoise_nl_bayes(image, 0.1), image)
    two_levels = np.full((30, 31), 0.25)
    two_levels[:, 15:] = 0.75
    denoised = denoise_nl_bayes(two_levels, 0.1)
    away_from_edge = np.r_[0:6, 25:31]
    assert_allclose(
        denoised[:, away_from_edge], two_levels[:, away_from_edge], atol=1e-3
    )


def test_image_smaller_than_search_window():
    """Check that tiny images work, with every patch a candidate."""
    clean = _scene((9, 11))
    noisy = _noisy(clean, 0.05)
    denoised = denoise_nl_bayes(noisy, 0.05)
    assert denoised.shape == (9, 11)
    assert np.all(np.isfinite(denoised))
    with pytest.raises(ValueError, match="patch size 5 is larger than the image"):
        denoise_nl_bayes(np.zeros((4, 30)), 0.1)


def test_zero_sigma_returns_the_image():
    """Check that noise_sigma=0 leaves the image as it is (as float)."""
    noisy = _noisy(_scene(), 0.1)
    assert_array_equal(denoise_nl_bayes(noisy, 0), noisy)


@pytest.mark.parametrize(
    ("sigma", "error", "match"),
    [
        (-0.1, ValueError, "noise_sigma must be a finite number >= 0"),
        (np.nan, ValueError, "noise_sigma must be a finite number >= 0"),
        ("0.1", TypeError, "noise_sigma must be a real number"),
    ],
)
def test_bad_sigma(sigma, error, match):
    """Check that a negative, NaN or non-numeric noise_sigma is refused."""
    with pytest.raises(error, match=match):
        denoise_nl_bayes(np.zeros((20, 20)), sigma)


def test_bad_images_and_options():
    """Check NaN, a scalar, a bad channel axis, pairs and options."""
    image = np.zeros((20, 20))
    image[3, 4] = np.nan
    with pytest.raises(ValueError, match="image must be finite"):
        denoise_nl_bayes(image, 0.1)
    with pytest.raises(ValueError, match="at least one axis"):
        denoise_nl_bayes(np.float64(1.0), 0.1)
    with pytest.raises(ValueError, match="channel_axis 3 is out of range"):
        denoise_nl_bayes(np.zeros((20, 20, 3)), 0.1, channel_axis=3)
    with pytest.raises(ValueError, match="colour_space must be one of"):
        denoise_nl_bayes(np.zeros((20, 20)), 0.1, colour_space="lab")
    with pytest.raises(ValueError, match="a pair"):
        denoise_nl_bayes(np.zeros((20, 20)), 0.1, patch_size=(3, 4, 5))
    with pytest.raises(ValueError, match="n_neighbors must be a positive int"):
        denoise_nl_bayes(np.zeros((20, 20)), 0.1, n_neighbors=(10, 2.5))
    with pytest.raises(ValueError, match="beta must be a positive number"):
        denoise_nl_bayes(np.zeros((20, 20)), 0.1, beta=-1)
    with pytest.raises(ValueError, match="data_range must be a positive"):
        denoise_nl_bayes(np.zeros((20, 20)), 0.1, data_range=0)


def test_overrides_change_the_result():
    """Check that the noise-dependent defaults can be overridden, per step too."""
    noisy = _noisy(_scene(), 0.1)
    default = denoise_nl_bayes(noisy, 0.1)
    for kwargs in (
        {"patch_size": (3, 4)},
        {"n_neighbors": 12},
        {"search_window": (7, 9)},
        {"beta": 1.5},
        {"step": 3},
        {"flat_threshold": None},
    ):
        other = denoise_nl_bayes(noisy, 0.1, **kwargs)
        assert not np.array_equal(other, default), kwargs


def test_data_range_scales_the_defaults():
    """Check that an image in [0, 255] with data_range=255 matches the [0, 1] one."""
    noisy = _noisy(_scene(), 0.1)
    scaled = denoise_nl_bayes(noisy * 255, 25.5, data_range=255)
    assert_allclose(scaled / 255, denoise_nl_bayes(noisy, 0.1), atol=1e-10)


def test_estimate_noise_sigma():
    """Check the noise estimate on pure noise, a textured image and colour."""
    rng = np.random.default_rng(2)
    assert estimate_noise_sigma(0.3 * rng.standard_normal((200, 200))) == (
        pytest.approx(0.3, rel=0.05)
    )
    noisy = _noisy(_scene((128, 128)), 0.05)
    assert estimate_noise_sigma(noisy) == pytest.approx(0.05, rel=0.15)
    colour = 0.1 * rng.standard_normal((3, 64, 64))
    assert estimate_noise_sigma(colour, channel_axis=0) == pytest.approx(0.1, rel=0.1)
    with pytest.raises(ValueError, match="at least 2 pixels"):
        estimate_noise_sigma(np.zeros((1, 10)))


def test_estimator_matches_function_and_keeps_the_container():
    """Check that transform denoises every image as the function does."""
    clean = np.stack([_scene(), _scene()[::-1]])
    noisy = _noisy(clean, 0.1)
    denoiser = NonLocalBayes(noise_sigma=0.1).fit(noisy)
    out = denoiser.transform(noisy)
    assert out.shape == noisy.shape
    assert_array_equal(out[1], denoise_nl_bayes(noisy[1], 0.1))
    as_list = denoiser.predict([noisy[0], noisy[1, :30]])
    assert isinstance(as_list, list)
    assert [image.shape for image in as_list] == [(48, 56), (30, 56)]
    assert denoiser.score(noisy, clean) > _psnr(clean[0], noisy[0]) + 6


def test_estimator_colour_and_estimated_sigma():
    """Check colour batches with channel_axis=-1 and noise_sigma=None."""
    clean = np.stack([_scene(), _scene()[:, ::-1], _scene()[::-1]], axis=-1)[None]
    noisy = _noisy(clean, 0.08)
    out = NonLocalBayes(channel_axis=-1).fit(noisy).transform(noisy)
    assert out.shape == noisy.shape
    assert _psnr(clean, out) > _psnr(clean, noisy) + 5


def test_estimator_rejects_bad_batches():
    """Check single images passed as batches, empty batches and NaN."""
    denoiser = NonLocalBayes(noise_sigma=0.1)
    with pytest.raises(ValueError, match="at least 2 spatial axes"):
        denoiser.fit(np.zeros((20, 20)))
    with pytest.raises(ValueError, match="at least 2 spatial axes"):
        NonLocalBayes(channel_axis=-1).fit(np.zeros((2, 20, 20)))
    with pytest.raises(ValueError, match="no image"):
        denoiser.fit([])
    bad = np.zeros((2, 20, 20))
    bad[1, 2, 2] = np.inf
    with pytest.raises(ValueError, match="image must be finite"):
        denoiser.transform(bad)
    with pytest.raises(InvalidParameterError, match="noise_sigma"):
        NonLocalBayes(noise_sigma=-1.0).fit(np.zeros((1, 20, 20)))


def test_grid_search_tunes_parameters():
    """Check that GridSearchCV scores the estimator by PSNR."""
    clean = np.stack([_scene((32, 36)), _scene((32, 36))[::-1]])
    noisy = _noisy(clean, 0.1)
    search = GridSearchCV(
        NonLocalBayes(noise_sigma=0.1),
        {"beta": [0.5, 1.0]},
        cv=[(np.array([0]), np.array([1]))],
    )
    search.fit(noisy, clean)
    assert search.best_params_["beta"] in (0.5, 1.0)
    assert np.isfinite(search.best_score_)


@pytest.mark.parametrize(
    ("shape", "channel_axis", "options"),
    [
        ((150, 97), None, {}),
        ((150, 97), None, {"basic": "threshold"}),
        ((150, 97), None, {"final": "mean"}),
        ((140, 70, 3), -1, {}),
        ((140, 70, 3), -1, {"colour_space": "rgb"}),
        ((70, 18, 20), None, {"search_window": 5, "n_neighbors": 20}),
    ],
    ids=["grey", "threshold", "mean", "colour", "rgb", "volume"],
)
def test_threads_give_the_same_values(shape, channel_axis, options):
    """Check that n_jobs changes no bit: rows of claim blocks are summed in order."""
    rng = np.random.default_rng(1)
    clean = np.broadcast_to(
        _scene(shape[:2]).reshape(shape[:2] + (1,) * (len(shape) - 2)), shape
    )
    noisy = clean + 0.1 * rng.standard_normal(shape)
    expected = denoise_nl_bayes(noisy, 0.1, channel_axis=channel_axis, **options)
    got = denoise_nl_bayes(noisy, 0.1, channel_axis=channel_axis, n_jobs=2, **options)
    assert_array_equal(got, expected)
    assert _psnr(clean, got) > _psnr(clean, noisy) + 2


def test_estimator_threads_and_progress(capsys):
    """Check n_jobs and verbose of the estimator: same values, progress on stderr."""
    noisy = _noisy(np.stack([_scene(), _scene()[::-1]]), 0.1)
    quiet = NonLocalBayes(noise_sigma=0.1).fit_transform(noisy)
    capsys.readouterr()
    loud = NonLocalBayes(noise_sigma=0.1, n_jobs=2, verbose=1).fit_transform(noisy)
    assert_array_equal(loud, quiet)
    assert "NL-Bayes" in capsys.readouterr().err
    with pytest.raises(ValueError, match="n_jobs"):
        NonLocalBayes(noise_sigma=0.1, n_jobs=0).fit_transform(noisy)


def test_optimal_shrinkage_kills_the_noise_bulk():
    from skpatch._nonlocal import _optimal_gain

    rng = np.random.default_rng(0)
    k, d = 200, 25
    noise = rng.standard_normal((k, d))
    centred = noise - noise.mean(axis=0)
    eigenvalues = np.linalg.eigvalsh(centred.T @ centred / (k - 1))
    assert_array_equal(_optimal_gain(eigenvalues, k, 1.0), 0)
    # A strong spike keeps about 1 - (1 + r) / y ** 2 of its singular value.
    gain = _optimal_gain(np.array([100.0]), k, 1.0)
    ratio = 1 / (k - 1)
    assert_allclose(gain, np.sqrt((100 - ratio - 1) ** 2 - 4 * ratio) / 100)


def test_shrinkage_parameter():
    """Check the defaults per image kind, the optimal shrinker on grey, bad values."""
    clean = _scene()
    noisy = _noisy(clean, 25 / 255)
    default = denoise_nl_bayes(noisy, 25 / 255)
    assert_array_equal(denoise_nl_bayes(noisy, 25 / 255, shrinkage="ipol"), default)
    shrunk = denoise_nl_bayes(noisy, 25 / 255, shrinkage=0.65)
    assert not np.array_equal(shrunk, default)
    assert _psnr(clean, shrunk) > _psnr(clean, noisy) + 6
    colour = _noisy(np.stack([clean, clean[::-1], clean[:, ::-1]], axis=-1), 25 / 255)
    colour_default = denoise_nl_bayes(colour, 25 / 255, channel_axis=-1)
    assert_array_equal(
        denoise_nl_bayes(colour, 25 / 255, channel_axis=-1, shrinkage=0.65),
        colour_default,
    )
    ipol = denoise_nl_bayes(colour, 25 / 255, channel_axis=-1, shrinkage="ipol")
    assert not np.array_equal(ipol, colour_default)
    for bad in (0, -1.0, np.nan, np.inf, True, "optimal", (0.5, 0.6)):
        with pytest.raises(ValueError, match="shrinkage must be None, 'ipol' or a"):
            denoise_nl_bayes(noisy, 25 / 255, shrinkage=bad)
    assert_array_equal(
        NonLocalBayes(25 / 255, shrinkage=0.65).fit_transform(noisy[None])[0], shrunk
    )
    with pytest.raises(ValueError, match="shrinkage"):
        NonLocalBayes(25 / 255, shrinkage=-1).fit_transform(noisy[None])




GROUP_SHAPES = pytest.mark.parametrize(
    ("patch_shape", "n_channels", "joint"),
    [((4, 4), 1, True), ((3, 3, 3), 1, True), ((5, 5), 3, False), ((2, 2), 3, True)],
)


@GROUP_SHAPES
def test_threshold_estimate_matches_a_dct_of_the_group(patch_shape, n_channels, joint):
    """Check the thresholding estimate against scipy's n-d DCT of every group."""
    from dataclasses import replace

    from scipy.fft import dctn, idctn

    from skpatch._nonlocal import _threshold_estimate, threshold_settings

    rng = np.random.default_rng(3)
    n_groups, k, sigma = 6, 7, 0.1
    groups = rng.normal(0.5, 0.3, (n_groups, k, *patch_shape, n_channels))
    settings = replace(threshold_settings(len(patch_shape)), patch_size=patch_shape[0])
    flat = groups.reshape(n_groups, k, -1, n_channels)
    estimate, weights = _threshold_estimate(flat, sigma, settings, joint)
    expected = np.empty_like(groups)
    n_kept = np.zeros(n_groups)
    for g in range(n_groups):
        for c in range(n_channels):
            # Along the group and every patch axis.
            coefficients = dctn(groups[g, ..., c], norm="ortho")
            keep = np.abs(coefficients) > settings.beta * sigma
            keep.flat[0] = True
            expected[g, ..., c] = idctn(coefficients * keep, norm="ortho")
            n_kept[g] += keep.sum()
    assert_allclose(estimate.reshape(groups.shape), expected, atol=1e-12)
    assert_allclose(1 / weights, n_kept, rtol=1e-12)


@GROUP_SHAPES
def test_wiener_estimate_matches_a_dct_of_the_group(patch_shape, n_channels, joint):
    """Check the Wiener estimate, its weights and risk against scipy's n-d DCT."""
    from dataclasses import replace

    from scipy.fft import dctn, idctn

    from skpatch._nonlocal import _final_estimate, wiener_settings

    rng = np.random.default_rng(4)
    n_groups, k, sigma = 5, 6, 0.1
    shape = (n_groups, k, *patch_shape, n_channels)
    pilot = rng.normal(0.5, 0.3, shape)
    noisy = pilot + sigma * rng.standard_normal(shape)
    settings = replace(wiener_settings(len(patch_shape)), patch_size=patch_shape[0])
    flat = (n_groups, k, -1, n_channels)
    estimate, weights, risk = _final_estimate(
        noisy.reshape(flat), pilot.reshape(flat), sigma, settings, joint
    )
    expected = np.empty(shape)
    squared_gains, expected_risk = np.zeros(n_groups), np.zeros(n_groups)
    for g in range(n_groups):
        for c in range(n_channels):
            coefficients = dctn(noisy[g, ..., c], norm="ortho")
            power = dctn(pilot[g, ..., c], norm="ortho") ** 2
            gain = power / (power + sigma**2)
            expected[g, ..., c] = idctn(gain * coefficients, norm="ortho")
            squared_gains[g] += (gain**2).sum()
            expected_risk[g] += ((1 - gain) ** 2 * coefficients**2).sum()
            expected_risk[g] += 2 * sigma**2 * gain.sum()
    assert_allclose(estimate.reshape(shape), expected, atol=1e-12)
    assert_allclose(1 / weights, squared_gains, rtol=1e-12)
    assert_allclose(risk, expected_risk, rtol=1e-12)


def test_final_estimates():
    """Check the final options: 'auto' by noise and image kind, 'mean', errors."""
    import skpatch._nonlocal as nonlocal_module

    clean = _scene((80, 150))
    results = {}
    for s in (25, 50):
        sigma, noisy = s / 255, _noisy(clean, s / 255)
        results[s] = {
            f: denoise_nl_bayes(noisy, sigma, final=f)
            for f in nonlocal_module.FINAL_ESTIMATES
        }
        for result in results[s].values():
            assert _psnr(clean, result) > _psnr(clean, noisy) + 6
    assert s >= nonlocal_module.MEAN_FINAL_FROM
    assert_array_equal(results[25]["auto"], results[25]["bayes"])
    assert_array_equal(results[50]["auto"], results[50]["mean"])
    assert not np.array_equal(results[50]["bayes"], results[50]["wiener"])
    mean = (results[50]["bayes"] + results[50]["wiener"]) / 2
    assert_allclose(results[50]["mean"], mean, rtol=0, atol=1e-15)
    # Colour images and a basic estimate without thresholding: 'auto' is 'bayes'.
    colour = _noisy(np.stack([clean] * 3, axis=-1), sigma)[:40, :50]
    assert_array_equal(
        denoise_nl_bayes(colour, sigma, channel_axis=-1),
        denoise_nl_bayes(colour, sigma, channel_axis=-1, final="bayes"),
    )
    assert_array_equal(
        denoise_nl_bayes(noisy, sigma, basic="gaussian"),
        denoise_nl_bayes(noisy, sigma, basic="gaussian", final="bayes"),
    )
    with pytest.raises(ValueError, match="pass basic='threshold' or 'both'"):
        denoise_nl_bayes(noisy, sigma, basic="gaussian", final="wiener")
    with pytest.raises(ValueError, match="final must be one of"):
        denoise_nl_bayes(noisy, sigma, final="bm3d")
    with pytest.raises(InvalidParameterError, match="final"):
        NonLocalBayes(sigma, final="bm3d").fit(noisy[None])
    assert_array_equal(
        NonLocalBayes(sigma, final="wiener").fit_transform(noisy[None])[0],
        results[50]["wiener"],
    )


def test_basic_estimates(monkeypatch):
    """Check the basic options: 'auto' per image kind, and the per-block choice."""
    import skpatch._nonlocal as nonlocal_module

    clean = _scene((80, 150))
    noisy = _noisy(clean, 25 / 255)
    sigma = 25 / 255
    results = {
        b: denoise_nl_bayes(noisy, sigma, basic=b)
        for b in nonlocal_module.BASIC_ESTIMATES
    }
    assert_array_equal(results["auto"], results["both"])
    pairs = [("gaussian", "both"), ("threshold", "both"), ("gaussian", "threshold")]
    for one, other in pairs:
        assert not np.array_equal(results[one], results[other])
    for result in results.values():
        assert _psnr(clean, result) > _psnr(clean, noisy) + 6
    # A margin that always prefers the thresholded pilot gives 'threshold'.
    with monkeypatch.context() as patched:
        patched.setattr(nonlocal_module, "THRESHOLD_RISK_MARGIN", 1e12)
        assert_array_equal(
            denoise_nl_bayes(noisy, sigma, basic="both"), results["threshold"]
        )
    # Colour images and images smaller than 8x8 patches: 'auto' is 'gaussian'.
    colour = _noisy(np.stack([clean] * 3, axis=-1), sigma)[:40, :50]
    assert_array_equal(
        denoise_nl_bayes(colour, sigma, channel_axis=-1),
        denoise_nl_bayes(colour, sigma, channel_axis=-1, basic="gaussian"),
    )
    tiny = noisy[:7, :30]
    assert_array_equal(
        denoise_nl_bayes(tiny, sigma), denoise_nl_bayes(tiny, sigma, basic="gaussian")
    )
    with pytest.raises(ValueError, match="pass basic='gaussian'"):
        denoise_nl_bayes(tiny, sigma, basic="threshold")
    with pytest.raises(ValueError, match="basic must be one of"):
        denoise_nl_bayes(noisy, sigma, basic="bm3d")
    with pytest.raises(InvalidParameterError, match="basic"):
        NonLocalBayes(sigma, basic="bm3d").fit(noisy[None])
    assert_array_equal(
        NonLocalBayes(sigma, basic="threshold").fit_transform(noisy[None])[0],
        results["threshold"],
    )


def test_choice_of_the_lowest_risk():
    """Check the choice between pilots: lowest risk, the thresholded by a margin."""
    from types import SimpleNamespace

    from skpatch._nonlocal import THRESHOLD_RISK_MARGIN, _StepWork

    def candidate(risk, n_values=100):
        return SimpleNamespace(risk=risk, n_values=n_values)

    work = SimpleNamespace(sigma=0.5)
    margin = THRESHOLD_RISK_MARGIN * 0.5**2 * 100
    choose = _StepWork._choose
    gaussian, thresholded = candidate(10.0), candidate(10.0 + 0.9 * margin)
    assert choose(work, [gaussian, thresholded]) is thresholded
    gaussian, thresholded = candidate(10.0), candidate(10.0 + 1.1 * margin)
    assert choose(work, [gaussian, thresholded]) is gaussian
    assert choose(work, [gaussian]) is gaussian
