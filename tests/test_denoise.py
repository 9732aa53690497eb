"""Tests of PatchDenoiser and denoise_image."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import (
    PCA,
    DictionaryLearning,
    IncrementalPCA,
    MiniBatchDictionaryLearning,
)
from sklearn.frozen import FrozenEstimator
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from skpatch import PatchDenoiser, PatchExtractor, denoise_image, extract_patches
from skpatch._denoise import training_patches
from skpatch.metrics import mean_peak_signal_noise_ratio, psnr_scorer

SIGMA = 0.1


def shapes_images(n_images, size, seed):
    """Piecewise-smooth synthetic images in [0.1, 0.9]: a ramp, disks, a rectangle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    images = []
    for _ in range(n_images):
        image = 0.3 + 0.3 * (rng.random() * xx + rng.random() * yy)
        for _ in range(4):
            cy, cx, r = rng.random(3) * [1, 1, 0.3] + [0, 0, 0.1]
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            image = np.where(inside, rng.uniform(0.1, 0.9), image)
        y0, x0 = rng.integers(0, size // 2, 2)
        image[y0 : y0 + size // 3, x0 : x0 + size // 4] = rng.uniform(0.1, 0.9)
        images.append(image)
    return np.array(images)


@pytest.fixture(scope="module")
def data():
    """Clean and noisy training images, and different clean and noisy test images."""
    rng = np.random.default_rng(2)
    clean_train, clean_test = shapes_images(4, 40, 0), shapes_images(3, 40, 1)
    return {
        "clean_train": clean_train,
        "noisy_train": clean_train + SIGMA * rng.standard_normal(clean_train.shape),
        "clean_test": clean_test,
        "noisy_test": clean_test + SIGMA * rng.standard_normal(clean_test.shape),
    }


def psnr(clean, estimate):
    return mean_peak_signal_noise_ratio(clean, np.clip(estimate, 0, 1), data_range=1)


@pytest.mark.parametrize("remove_mean", [False, True])
@pytest.mark.parametrize(("step", "weights"), [(1, "uniform"), ((2, 3), "hann")])
def test_full_rank_pca_reproduces_the_input(data, remove_mean, step, weights):
    """Check that PCA keeping every component gives the images back exactly."""
    denoiser = PatchDenoiser(PCA(n_components=25), patch_size=(5, 5), step=step,
                             remove_mean=remove_mean, weights=weights)
    noisy = data["noisy_test"]
    np.testing.assert_allclose(denoiser.fit(noisy).transform(noisy), noisy,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("estimator", "noise_sigma"),
    [
        (PCA(n_components=4), None),
        (MiniBatchDictionaryLearning(32, alpha=0.5, max_iter=2, fit_algorithm="cd",
                                     random_state=0), SIGMA),
        (DictionaryLearning(16, alpha=0.5, max_iter=3, fit_algorithm="cd",
                            random_state=0), SIGMA),
        (MiniBatchDictionaryLearning(32, alpha=0.5, max_iter=2, fit_algorithm="cd",
                                     transform_algorithm="omp",
                                     transform_n_nonzero_coefs=2, random_state=0),
         None),
    ],
    ids=["pca", "minibatch-omp-tol", "dictionary-omp-tol", "minibatch-transform"],
)
def test_denoising_raises_psnr(data, estimator, noise_sigma):
    """Check that a model fitted on other noisy images denoises unseen images."""
    denoiser = PatchDenoiser(estimator, patch_size=(6, 6), max_patches=300,
                             noise_sigma=noise_sigma, random_state=0)
    denoiser.fit(data["noisy_train"])
    denoised = denoiser.transform(data["noisy_test"])
    before = psnr(data["clean_test"], data["noisy_test"])
    assert psnr(data["clean_test"], denoised) > before + 5


def test_error_constrained_coding_beats_fixed_sparsity(data):
    """Check that noise_sigma on a dictionary model beats its own transform."""
    dico = MiniBatchDictionaryLearning(32, alpha=0.5, max_iter=2, fit_algorithm="cd",
                                       transform_algorithm="omp",
                                       transform_n_nonzero_coefs=2, random_state=0)
    scores = [
        PatchDenoiser(dico, patch_size=(6, 6), max_patches=300, noise_sigma=sigma,
                      random_state=0)
        .fit(data["noisy_train"])
        .score(data["noisy_test"], data["clean_test"])
        for sigma in (None, SIGMA)
    ]
    assert scores[1] > scores[0]


@pytest.fixture(scope="module")
def mixture_pipeline(data):
    """A Gaussian mixture fitted on clean patches through PatchExtractor."""
    pipe = make_pipeline(
        PatchExtractor(patch_size=(6, 6), max_patches=300, random_state=0),
        GaussianMixture(n_components=3, random_state=0),
    )
    return pipe.fit(data["clean_train"])


@pytest.mark.parametrize("n_iter", [1, 3])
def test_gaussian_mixture_prior_from_a_pipeline(data, mixture_pipeline, n_iter):
    """Check that a frozen mixture trained on clean images denoises other images."""
    prior = FrozenEstimator(mixture_pipeline[-1])
    denoiser = PatchDenoiser(prior, patch_size=(6, 6), remove_mean=False,
                             noise_sigma=SIGMA, n_iter=n_iter)
    denoiser.fit(data["noisy_test"])
    assert denoiser.estimator_ is prior
    before = psnr(data["clean_test"], data["noisy_test"])
    assert psnr(data["clean_test"], denoiser.transform(data["noisy_test"])) > before + 5


def test_denoise_image_matches_the_estimator(data, mixture_pipeline):
    """Check that the function and the estimator compute the same image."""
    image = data["noisy_test"][0]
    expected = denoise_image(image, mixture_pipeline[-1], patch_size=(6, 6),
                             remove_mean=False, noise_sigma=SIGMA)
    denoiser = PatchDenoiser(FrozenEstimator(mixture_pipeline[-1]), patch_size=(6, 6),
                             remove_mean=False, noise_sigma=SIGMA).fit(image[None])
    np.testing.assert_allclose(denoiser.predict(image[None])[0], expected)


def test_grid_search_picks_patch_size_by_psnr(data):
    """Check that GridSearchCV scores by image-space PSNR and picks the best."""
    X, y = data["noisy_train"], data["clean_train"]
    search = GridSearchCV(
        PatchDenoiser(PCA(), max_patches=200, random_state=0),
        {"patch_size": [(5, 5), (7, 7), (9, 9)], "estimator__n_components": [3, 6]},
        scoring=psnr_scorer,
        cv=KFold(2),
    )
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert search.best_score_ == pytest.approx(scores.max())
    assert search.best_params_["patch_size"] in [(5, 5), (7, 7), (9, 9)]
    # the score of the best candidate, recomputed by hand
    best = clone(search.estimator).set_params(**search.best_params_)
    by_hand = [
        psnr(y[test], best.fit(X[train]).predict(X[test]))
        for train, test in KFold(2).split(X)
    ]
    assert search.best_score_ == pytest.approx(np.mean(by_hand))
    assert search.best_estimator_.patch_size_ == search.best_params_["patch_size"]


def test_score_is_mean_psnr_of_the_clipped_estimate(data):
    """Check that score equals the mean PSNR of the clipped estimates."""
    denoiser = PatchDenoiser(PCA(n_components=4), patch_size=(6, 6))
    denoiser.fit(data["noisy_train"])
    expected = psnr(data["clean_test"], denoiser.transform(data["noisy_test"]))
    assert denoiser.score(data["noisy_test"], data["clean_test"]) == pytest.approx(
        expected)


def test_clone_params_and_pickle_of_a_fitted_denoiser(data):
    """Check that a fitted denoiser clones, exposes nested params and pickles."""
    denoiser = PatchDenoiser(PCA(n_components=4), patch_size=(6, 6), step=2)
    denoiser.fit(data["noisy_train"])
    params = denoiser.get_params()
    assert params["estimator__n_components"] == 4
    assert params["patch_size"] == (6, 6)
    fresh = clone(denoiser)
    assert not hasattr(fresh, "estimator_")
    assert fresh.get_params()["step"] == 2
    fresh.set_params(patch_size=(5, 5), estimator__n_components=3)
    assert fresh.estimator.n_components == 3
    assert denoiser.estimator.n_components == 4
    restored = pickle.loads(pickle.dumps(denoiser))
    np.testing.assert_array_equal(restored.transform(data["noisy_test"]),
                                  denoiser.transform(data["noisy_test"]))


def test_list_of_images_of_different_shapes(data):
    """Check that a list gives a list of images each of its own shape."""
    denoiser = PatchDenoiser(PCA(n_components=4), patch_size=(6, 6))
    denoiser.fit(data["noisy_train"])
    images = [data["noisy_test"][0], data["noisy_test"][1][:20, :31]]
    denoised = denoiser.transform(images)
    assert isinstance(denoised, list)
    assert [image.shape for image in denoised] == [(40, 40), (20, 31)]
    np.testing.assert_allclose(denoised[0], denoiser.transform(data["noisy_test"])[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_output_dtype(data, dtype):
    """Check that float32 stays float32 and everything else becomes float64."""
    images = (data["noisy_test"] * 100).astype(dtype)
    denoised = PatchDenoiser(PCA(n_components=4), patch_size=(6, 6)).fit(
        images).transform(images)
    expected = np.float32 if dtype == np.float32 else np.float64
    assert denoised.dtype == expected
    assert denoised.shape == images.shape


def test_max_patches_samples_per_image(data):
    """Check that max_patches caps the training patches of each image."""
    images = list(data["noisy_train"])
    rows = training_patches(images, (6, 6), max_patches=50, random_state=0)
    assert rows.shape == (4 * 50, 36)
    np.testing.assert_allclose(rows.mean(axis=1), 0, atol=1e-12)
    n_all = len(extract_patches(images[0], 6))
    rows = training_patches(images, (6, 6), max_patches=10_000, remove_mean=False)
    assert rows.shape == (4 * n_all, 36)
    assert np.isin(rows[:, 0], images[0]).any()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_default_estimator_is_a_dictionary(data):
    """Check that estimator=None fits a MiniBatchDictionaryLearning."""
    denoiser = PatchDenoiser(patch_size=(6, 6), max_patches=100, random_state=0)
    denoiser.fit(data["noisy_train"][:1])
    assert isinstance(denoiser.estimator_, MiniBatchDictionaryLearning)
    assert denoiser.estimator_.components_.shape == (100, 36)


def test_mixture_without_noise_sigma_is_an_error(data):
    """Check that a Gaussian-mixture model without noise_sigma raises."""
    denoiser = PatchDenoiser(GaussianMixture(2, random_state=0), patch_size=(6, 6),
                             max_patches=100)
    denoiser.fit(data["noisy_train"])
    with pytest.raises(ValueError, match=r"GaussianMixture.*needs noise_sigma"):
        denoiser.transform(data["noisy_test"])


def test_noise_sigma_and_n_iter_need_a_model_that_uses_them(data):
    """Check that noise_sigma or n_iter > 1 with PCA raise instead of being ignored."""
    pca = PCA(n_components=4)
    with pytest.raises(ValueError, match="PCA is neither"):
        PatchDenoiser(pca, patch_size=(6, 6), noise_sigma=SIGMA).fit(
            data["noisy_train"]).transform(data["noisy_test"])
    with pytest.raises(ValueError, match=r"n_iter > 1.*n_iter=2 with PCA"):
        PatchDenoiser(pca, patch_size=(6, 6), n_iter=2).fit(
            data["noisy_train"]).transform(data["noisy_test"])


def test_images_smaller_than_the_patch(data):
    """Check that an image smaller than patch_size is refused in fit and transform."""
    denoiser = PatchDenoiser(PCA(n_components=4), patch_size=(6, 6))
    with pytest.raises(ValueError, match=r"patch_size \(6, 6\).*image 0's shape"):
        denoiser.fit(np.zeros((2, 5, 9)))
    denoiser.fit(data["noisy_train"])
    with pytest.raises(ValueError, match=r"patch_size \(6, 6\).*image 1's shape "
                                         r"\(4, 30\)"):
        denoiser.transform([np.zeros((8, 8)), np.zeros((4, 30))])


def test_nan_images_are_refused(data):
    """Check that NaN in fit or transform input raises a clear error."""
    bad = data["noisy_train"].copy()
    bad[1, 3, 3] = np.nan
    denoiser = PatchDenoiser(PCA(n_components=4), patch_size=(6, 6))
    with pytest.raises(ValueError, match="image 1 contains NaN"):
        denoiser.fit(bad)
    denoiser.fit(data["noisy_train"])
    with pytest.raises(ValueError, match="image 1 contains NaN"):
        denoiser.transform(bad)


def test_wrong_number_of_axes(data):
    """Check that a 2-D array or a 3-D image for 2-D patches is refused."""
    denoiser = PatchDenoiser(PCA(n_components=4), patch_size=(6, 6))
    with pytest.raises(ValueError, match=r"2 spatial axes.*shape \(40, 40\)"):
        denoiser.fit(data["noisy_train"][0])
    denoiser.fit(data["noisy_train"])
    with pytest.raises(ValueError, match=r"image 0 has shape \(8, 8, 3\)"):
        denoiser.transform([np.zeros((8, 8, 3))])


def test_frozen_model_of_another_patch_size(data, mixture_pipeline):
    """Check that a prior fitted on 6x6 patches is refused for 5x5 patches."""
    denoiser = PatchDenoiser(FrozenEstimator(mixture_pipeline[-1]), patch_size=(5, 5),
                             noise_sigma=SIGMA)
    with pytest.raises(ValueError, match=r"patches of 36 values.*\(5, 5\) gives 25"):
        denoiser.fit(data["noisy_test"])


def test_unfitted_transform_raises(data):
    """Check that transform before fit raises NotFittedError."""
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PatchDenoiser(PCA()).transform(data["noisy_test"])


@pytest.mark.parametrize("n_jobs", [2, -1])
def test_n_jobs_gives_the_single_threaded_result(data, mixture_pipeline, n_jobs):
    """Check that tiles in threads give the n_jobs=None result, EPLL included."""
    prior = FrozenEstimator(mixture_pipeline[-1])
    params = {"patch_size": (6, 6), "remove_mean": False, "noise_sigma": SIGMA,
              "n_iter": 3, "step": (1, 2)}
    serial = PatchDenoiser(prior, **params).fit(data["noisy_test"])
    threaded = PatchDenoiser(prior, **params, n_jobs=n_jobs).fit(data["noisy_test"])
    np.testing.assert_allclose(threaded.transform(data["noisy_test"]),
                               serial.transform(data["noisy_test"]), rtol=0,
                               atol=1e-12)
    image = np.tile(data["noisy_test"][0], (3, 2))
    np.testing.assert_allclose(
        denoise_image(image, mixture_pipeline[-1], patch_size=(6, 6),
                      remove_mean=False, noise_sigma=SIGMA, n_jobs=n_jobs),
        denoise_image(image, mixture_pipeline[-1], patch_size=(6, 6),
                      remove_mean=False, noise_sigma=SIGMA),
        rtol=0, atol=1e-12,
    )


def test_n_jobs_zero_is_an_error(data):
    """Check that n_jobs=0 is refused by the estimator and the function."""
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="n_jobs"):
        PatchDenoiser(PCA(4), patch_size=(6, 6), n_jobs=0).fit(data["noisy_train"])
    pca = PCA(4).fit(np.random.default_rng(0).random((50, 36)))
    with pytest.raises(ValueError, match=r"n_jobs must be None.*got 0"):
        denoise_image(data["noisy_test"][0], pca, patch_size=(6, 6), n_jobs=0)


def colour_images(n_images, size, seed):
    """Colour versions of the synthetic images: three differently scaled channels."""
    grey = shapes_images(n_images, size, seed)
    return np.stack([grey, 0.8 * grey + 0.1, 1 - grey], axis=-1)


def test_colour_patches_carry_every_channel(data):
    """Check that colour images are fitted as whole colour patches."""
    clean = colour_images(2, 24, 0)
    denoiser = PatchDenoiser(PCA(n_components=75), patch_size=(5, 5),
                             step=(2, 1)).fit(clean)
    assert denoiser.n_channels_ == 3
    assert denoiser.n_patch_features_ == 75
    assert denoiser.estimator_.components_.shape == (75, 75)
    np.testing.assert_allclose(denoiser.transform(clean), clean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(denoiser.set_params(n_jobs=2).transform(clean), clean,
                               rtol=0, atol=1e-12)


def test_colour_denoising_raises_psnr():
    """Check that a dictionary of colour patches denoises colour images."""
    rng = np.random.default_rng(5)
    clean = colour_images(3, 40, 1)
    noisy = clean + SIGMA * rng.standard_normal(clean.shape)
    dico = MiniBatchDictionaryLearning(40, alpha=0.5, max_iter=2, fit_algorithm="cd",
                                       random_state=0)
    denoiser = PatchDenoiser(dico, patch_size=(5, 5), max_patches=400,
                             noise_sigma=SIGMA, random_state=0, n_jobs=2)
    denoised = denoiser.fit(noisy).transform(noisy)
    assert denoised.shape == clean.shape
    assert psnr(clean, denoised) > psnr(clean, noisy) + 5


def test_channels_must_match_the_fit(data):
    """Check that grey images for a colour model, and mixed channels, are refused."""
    denoiser = PatchDenoiser(PCA(n_components=8), patch_size=(5, 5))
    denoiser.fit(colour_images(2, 20, 0))
    with pytest.raises(ValueError, match=r"3 channels.*image 0 has shape \(40, 40\)"):
        denoiser.transform(data["noisy_test"])
    with pytest.raises(ValueError, match="the same channels"):
        denoiser.fit([np.zeros((9, 9)), np.zeros((9, 9, 3))])


@pytest.mark.parametrize("padding", ["reflect", "wrap"])
def test_pad_modes_and_offset(data, padding):
    """Check that a padding grid with an offset still reproduces the input."""
    denoiser = PatchDenoiser(PCA(n_components=25), patch_size=(5, 5), step=(2, 3),
                             offset=(1, 2), padding=padding)
    noisy = data["noisy_test"]
    np.testing.assert_allclose(denoiser.fit(noisy).transform(noisy), noisy, rtol=0,
                               atol=1e-12)


def test_uncovered_pixels_are_an_error(data):
    """Check that a step larger than the patch is refused before any work."""
    denoiser = PatchDenoiser(PCA(n_components=4), patch_size=(4, 4), step=5)
    with pytest.raises(ValueError, match="not covered by any patch"):
        denoiser.fit(data["noisy_train"]).transform(data["noisy_test"])


@pytest.mark.parametrize(
    "model",
    [MiniBatchDictionaryLearning(16, alpha=0.5, batch_size=64, random_state=0),
     IncrementalPCA(n_components=10)],
    ids=["minibatch-dictionary", "incremental-pca"],
)
def test_partial_fit_streams_batches(data, model):
    """Check that partial_fit trains one model over a stream of batches."""
    denoiser = PatchDenoiser(model, patch_size=(6, 6), max_patches=200,
                             random_state=0)
    for image in data["noisy_train"]:
        denoiser.partial_fit(image[None])
    assert denoiser.estimator_.n_features_in_ == 36
    if hasattr(denoiser.estimator_, "n_samples_seen_"):
        assert denoiser.estimator_.n_samples_seen_ == 800
    denoised = denoiser.transform(data["noisy_test"])
    assert psnr(data["clean_test"], denoised) > psnr(data["clean_test"],
                                                     data["noisy_test"])


def test_partial_fit_needs_a_model_with_partial_fit(data):
    """Check that partial_fit with PCA, or a batch of other channels, is refused."""
    with pytest.raises(ValueError, match=r"partial_fit needs.*got PCA"):
        PatchDenoiser(PCA(4), patch_size=(6, 6)).partial_fit(data["noisy_train"])
    denoiser = PatchDenoiser(IncrementalPCA(4), patch_size=(6, 6))
    denoiser.partial_fit(data["noisy_train"])
    with pytest.raises(ValueError, match=r"image 0 has shape \(40, 40, 3\)"):
        denoiser.partial_fit(colour_images(1, 40, 0))


def test_verbose_reports_progress_in_plain_lines(data, capsys, monkeypatch):
    """Check that verbose prints patches done, rate and time left without tqdm."""
    import sys

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    denoiser = PatchDenoiser(PCA(4), patch_size=(6, 6), verbose=1)
    denoiser.fit(data["noisy_train"]).transform(data["noisy_test"])
    err = capsys.readouterr().err
    assert "PatchDenoiser.transform: 3675/3675 patches (100%)" in err
    assert "patches/s" in err
    assert "s left" in err


def test_verbose_uses_tqdm_when_installed(data, capsys):
    """Check that verbose draws a tqdm bar on stderr when tqdm is there."""
    pytest.importorskip("tqdm")
    denoiser = PatchDenoiser(PCA(4), patch_size=(6, 6), verbose=1, n_jobs=2)
    denoiser.fit(data["noisy_train"]).transform(data["noisy_test"])
    assert "PatchDenoiser.transform" in capsys.readouterr().err


def test_partial_fit_after_fit_goes_on_training(data):
    """Check that partial_fit after fit updates the fitted model."""
    denoiser = PatchDenoiser(IncrementalPCA(4), patch_size=(6, 6), max_patches=100,
                             random_state=0)
    denoiser.fit(data["noisy_train"])
    seen = denoiser.estimator_.n_samples_seen_
    denoiser.partial_fit(data["noisy_test"])
    assert denoiser.estimator_.n_samples_seen_ == seen + 300


def test_dictionary_estimate_is_error_constrained_omp(data):
    """Check the dictionary path against coding every patch by hand."""
    from skpatch import error_constrained_omp, reconstruct_from_patches

    dico = MiniBatchDictionaryLearning(24, alpha=0.5, max_iter=2, fit_algorithm="cd",
                                       random_state=0)
    denoiser = PatchDenoiser(dico, patch_size=(6, 6), max_patches=300,
                             noise_sigma=SIGMA, random_state=0).fit(data["noisy_train"])
    image = data["noisy_test"][0]
    patches = extract_patches(image, (6, 6))
    rows = patches.reshape(len(patches), -1)
    means = rows.mean(axis=1, keepdims=True)
    dictionary = denoiser.estimator_.components_
    codes = error_constrained_omp(rows - means, dictionary, SIGMA)
    assert 0 < np.mean(np.any(codes != 0, axis=1)) < 1
    estimate = (codes @ dictionary + means).reshape(patches.shape)
    expected = reconstruct_from_patches(estimate, image.shape)
    np.testing.assert_allclose(denoiser.transform(image[None])[0], expected, rtol=0,
                               atol=1e-12)
