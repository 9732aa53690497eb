"""Tests of the patch priors: Gaussian-mixture Wiener filtering and sparse coding."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.linear_model import orthogonal_mp
from sklearn.mixture import GaussianMixture

from skpatch import error_constrained_omp, gaussian_mixture_wiener
from skpatch._priors import error_constrained_approximation


def _full_covariances(mixture):
    n_components, n_features = mixture.means_.shape
    cov = mixture.covariances_
    if mixture.covariance_type == "tied":
        return np.repeat(cov[np.newaxis], n_components, axis=0)
    if mixture.covariance_type == "diag":
        return np.array([np.diag(c) for c in cov])
    if mixture.covariance_type == "spherical":
        return np.array([c * np.eye(n_features) for c in cov])
    return cov


def brute_force_wiener(patches, mixture, sigma):
    """Per patch: most likely component under C_k + sigma^2 I, then its Wiener."""
    covariances = _full_covariances(mixture)
    noise = sigma**2 * np.eye(patches.shape[1])
    labels, out = [], []
    for y in patches:
        scores = [
            np.log(w) + multivariate_normal(mean=mu, cov=cov + noise).logpdf(y)
            for w, mu, cov in zip(mixture.weights_, mixture.means_, covariances,
                                  strict=True)
        ]
        k = int(np.argmax(scores))
        mu, cov = mixture.means_[k], covariances[k]
        labels.append(k)
        out.append(mu + cov @ np.linalg.solve(cov + noise, y - mu))
    return np.array(out), np.array(labels)


@pytest.fixture(scope="module")
def clean_rows():
    """Correlated 6-D samples from three clusters."""
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((3, 6, 6)) * [[1.0], [0.5], [0.2], [0.1], [0.1],
                                               [0.05]]
    centres = 3 * rng.standard_normal((3, 6))
    parts = [rng.standard_normal((150, 6)) @ m + c
             for m, c in zip(mixing, centres, strict=True)]
    return np.concatenate(parts)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_gaussian_mixture_wiener_matches_brute_force(
    clean_rows, covariance_type, batch_size
):
    """Check that labels and estimates equal a per-patch scipy/numpy computation."""
    mixture = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    mixture.fit(clean_rows)
    rng = np.random.default_rng(1)
    noisy = clean_rows[::9] + 0.7 * rng.standard_normal(clean_rows[::9].shape)
    denoised, labels = gaussian_mixture_wiener(
        noisy, mixture, 0.7, batch_size=batch_size, return_labels=True
    )
    expected, expected_labels = brute_force_wiener(noisy, mixture, 0.7)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(denoised, expected, rtol=1e-9, atol=1e-9)


def test_gaussian_mixture_wiener_reduces_error(clean_rows):
    """Check that the Wiener estimate is closer to the clean samples than the noisy."""
    mixture = GaussianMixture(3, random_state=0).fit(clean_rows)
    noisy = clean_rows + 0.5 * np.random.default_rng(2).standard_normal(
        clean_rows.shape)
    denoised = gaussian_mixture_wiener(noisy, mixture, 0.5)
    assert np.mean((denoised - clean_rows) ** 2) < 0.7 * np.mean(
        (noisy - clean_rows) ** 2)


def test_gaussian_mixture_wiener_zero_noise_is_identity(clean_rows):
    """Check that with noise_sigma=0 every patch is returned unchanged."""
    mixture = GaussianMixture(3, random_state=0).fit(clean_rows)
    np.testing.assert_allclose(
        gaussian_mixture_wiener(clean_rows, mixture, 0.0), clean_rows, atol=1e-9
    )


def test_gaussian_mixture_wiener_preserves_float32(clean_rows):
    """Check that float32 patches give float32 estimates close to float64 ones."""
    mixture = GaussianMixture(3, random_state=0).fit(clean_rows)
    out32 = gaussian_mixture_wiener(clean_rows.astype(np.float32), mixture, 0.3)
    out64 = gaussian_mixture_wiener(clean_rows, mixture, 0.3)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-3, atol=1e-3)


def test_gaussian_mixture_wiener_bad_input(clean_rows):
    """Check that wrong shapes, NaN, bad sigma and unfitted mixtures are refused."""
    mixture = GaussianMixture(3, random_state=0).fit(clean_rows)
    with pytest.raises(ValueError, match=r"\(n_patches, 6\).*got shape \(4, 5\)"):
        gaussian_mixture_wiener(np.zeros((4, 5)), mixture, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        gaussian_mixture_wiener(np.full((4, 6), np.nan), mixture, 0.1)
    with pytest.raises(ValueError, match="noise_sigma must be a finite real >= 0"):
        gaussian_mixture_wiener(clean_rows, mixture, -1.0)
    with pytest.raises(ValueError, match=r"needs a fitted mixture.*means_"):
        gaussian_mixture_wiener(clean_rows, GaussianMixture(3), 0.1)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        gaussian_mixture_wiener(clean_rows, mixture, 0.1, batch_size=0)


def _unit_dictionary(n_components, n_features, seed):
    atoms = np.random.default_rng(seed).standard_normal((n_components, n_features))
    return atoms / np.linalg.norm(atoms, axis=1, keepdims=True)


def reference_omp(patches, dictionary, tol):
    """sklearn's orthogonal_mp patch by patch; zero code for patches within tol."""
    codes = np.zeros((len(patches), len(dictionary)))
    for i, y in enumerate(patches):
        if y @ y > tol:
            codes[i] = orthogonal_mp(dictionary.T, y, tol=tol)
    return codes


@pytest.mark.parametrize("tol_factor", [0.5, 1.15, 3.0])
@pytest.mark.parametrize("batch_size", [None, 13])
def test_error_constrained_omp_matches_orthogonal_mp(tol_factor, batch_size):
    """Check that the codes equal sklearn's orthogonal_mp with the same tolerance."""
    rng = np.random.default_rng(3)
    dictionary = _unit_dictionary(24, 10, seed=4)
    sparse = rng.standard_normal((60, 3)) @ dictionary[:3] * rng.random((60, 1))
    patches = sparse + 0.1 * rng.standard_normal(sparse.shape)
    codes = error_constrained_omp(
        patches, dictionary, 0.1, tol_factor=tol_factor, batch_size=batch_size
    )
    tol = 10 * (tol_factor * 0.1) ** 2
    np.testing.assert_allclose(codes, reference_omp(patches, dictionary, tol),
                               atol=1e-10)
    residual = np.sum((patches - codes @ dictionary) ** 2, axis=1)
    assert np.all(residual <= tol * (1 + 1e-9))


def test_error_constrained_omp_atom_norms_do_not_matter():
    """Check that scaling the atoms rescales the codes but not the approximation."""
    rng = np.random.default_rng(5)
    dictionary = _unit_dictionary(16, 8, seed=6)
    scaled = dictionary * rng.uniform(0.5, 3.0, (16, 1))
    patches = rng.standard_normal((30, 8))
    codes = error_constrained_omp(patches, dictionary, 0.2)
    scaled_codes = error_constrained_omp(patches, scaled, 0.2)
    np.testing.assert_allclose(scaled_codes @ scaled, codes @ dictionary, atol=1e-10)


def test_error_constrained_omp_small_patches_get_no_atom():
    """Check that patches already within the tolerance keep a zero code."""
    dictionary = _unit_dictionary(16, 8, seed=7)
    patches = np.zeros((3, 8))
    patches[1] = 0.01
    assert not error_constrained_omp(patches, dictionary, 0.1).any()


def test_error_constrained_omp_max_atoms():
    """Check that max_atoms bounds the number of atoms of every patch."""
    rng = np.random.default_rng(8)
    dictionary = _unit_dictionary(16, 8, seed=9)
    codes = error_constrained_omp(rng.standard_normal((40, 8)), dictionary, 0.001,
                                  max_atoms=2)
    counts = (codes != 0).sum(axis=1)
    assert counts.max() == 2


def test_error_constrained_omp_more_atoms_than_features():
    """Check codes against orthogonal_mp when the tolerance asks for every feature.

    With a tiny noise level each patch takes as many atoms as it has values; an
    overcomplete dictionary's extra atoms then depend on the chosen ones.
    """
    rng = np.random.default_rng(10)
    dictionary = _unit_dictionary(20, 6, seed=11)
    patches = rng.standard_normal((25, 6))
    codes = error_constrained_omp(patches, dictionary, 1e-6)
    assert ((codes != 0).sum(axis=1) == 6).all()
    np.testing.assert_allclose(codes @ dictionary, patches, atol=1e-8)
    np.testing.assert_allclose(
        codes, reference_omp(patches, dictionary, 6 * (1.15e-6) ** 2), atol=1e-8
    )


def test_error_constrained_omp_stops_on_a_repeated_atom():
    """Check that an atom equal to a chosen one ends the pursuit, with finite codes."""
    rng = np.random.default_rng(12)
    dictionary = _unit_dictionary(8, 5, seed=13)
    dictionary = np.concatenate([dictionary, dictionary[:3]])
    patches = rng.standard_normal((20, 5))
    codes = error_constrained_omp(patches, dictionary, 1e-3)
    assert np.isfinite(codes).all()
    assert ((codes[:, :3] != 0) & (codes[:, 8:] != 0)).sum() == 0


def test_error_constrained_omp_in_threads():
    """Check that batches coded in 4 threads at once give the single-thread codes."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(14)
    dictionary = _unit_dictionary(64, 16, seed=15)
    batches = [rng.standard_normal((300, 16)) for _ in range(6)]
    alone = [error_constrained_omp(b, dictionary, 0.3) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda b: error_constrained_omp(b, dictionary, 0.3),
                                 batches * 2))
    for k, codes in enumerate(together):
        np.testing.assert_array_equal(codes, alone[k % len(batches)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_approximation_is_the_codes_times_the_dictionary(dtype):
    """Check the denoisers' sparse estimate against the dense product of the codes.

    The dictionary is Fortran-ordered with atoms of any norm, as estimators give.
    """
    rng = np.random.default_rng(16)
    dictionary = np.asfortranarray(_unit_dictionary(40, 12, seed=17)
                                   * rng.uniform(0.5, 2, (40, 1)))
    patches = rng.standard_normal((70, 12)).astype(dtype)
    approximation = error_constrained_approximation(patches, dictionary, 0.2)
    expected = error_constrained_omp(patches, dictionary, 0.2).astype(np.float64)
    assert approximation.dtype == dtype
    np.testing.assert_allclose(approximation, expected @ dictionary,
                               rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-12)


def test_error_constrained_omp_bad_input():
    """Check that mismatched shapes and bad parameters are refused."""
    dictionary = _unit_dictionary(16, 8, seed=10)
    with pytest.raises(ValueError, match=r"\(n_patches, 8\).*got shape \(3, 9\)"):
        error_constrained_omp(np.zeros((3, 9)), dictionary, 0.1)
    with pytest.raises(ValueError, match="2-D array"):
        error_constrained_omp(np.zeros((3, 8)), dictionary[0], 0.1)
    with pytest.raises(ValueError, match="max_atoms must be an int between 1 and"):
        error_constrained_omp(np.zeros((3, 8)), dictionary, 0.1, max_atoms=9)
    with pytest.raises(ValueError, match="noise_sigma"):
        error_constrained_omp(np.zeros((3, 8)), dictionary, np.nan)

