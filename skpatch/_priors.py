"""Patch priors for denoising: Gaussian-mixture Wiener filtering and sparse coding.

Plain functions on patch matrices of shape ``(n_patches, n_features)``. They are
the numerical core of :class:`PatchDenoiser`, usable on their own with patches
from :func:`extract_patches`.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from . import _omp

# Rows of patches processed at once: keeps the per-component work arrays
# (batch x n_features, batch x n_components) around a few MiB.
DEFAULT_BATCH_SIZE = 8192
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass(frozen=True)
class MixtureSpectra:
    """Eigendecomposition of every component covariance of a Gaussian mixture.

    ``covariance_k = vectors[k] @ diag(values[k]) @ vectors[k].T``; computed once
    and reused for any noise level (the noisy covariance ``C_k + sigma^2 I`` has
    the same eigenvectors and eigenvalues ``values[k] + sigma^2``).
    """

    log_weights: np.ndarray
    means: np.ndarray
    values: np.ndarray
    vectors: np.ndarray

    @property
    def n_features(self):
        return self.means.shape[1]


def mixture_spectra(mixture):
    """Eigendecompose the covariances of a fitted Gaussian mixture.

    ``mixture`` is a fitted :class:`~sklearn.mixture.GaussianMixture` (or
    ``BayesianGaussianMixture``, or anything with ``weights_``, ``means_``,
    ``covariances_`` and ``covariance_type``), with any covariance type.
    """
    required = ("weights_", "means_", "covariances_")
    missing = [name for name in required if not hasattr(mixture, name)]
    if missing:
        raise ValueError(
            f"a Gaussian-mixture prior needs a fitted mixture with weights_, means_ "
            f"and covariances_; {type(mixture).__name__} has no {', '.join(missing)}"
        )
    means = np.asarray(mixture.means_, dtype=np.float64)
    covariances = _full_covariances(
        np.asarray(mixture.covariances_, dtype=np.float64),
        getattr(mixture, "covariance_type", "full"),
        means.shape,
    )
    values, vectors = np.linalg.eigh(covariances)
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(mixture.weights_, dtype=np.float64))
    return MixtureSpectra(log_weights, means, np.clip(values, 0, None), vectors)


def _full_covariances(covariances, covariance_type, means_shape):
    n_components, n_features = means_shape
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return covariances[:, :, np.newaxis] * np.eye(n_features)
    if covariance_type == "spherical":
        return covariances[:, np.newaxis, np.newaxis] * np.eye(n_features)
    raise ValueError(
        f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
    )


def gaussian_mixture_wiener(
    patches, mixture, noise_sigma, *, batch_size=None, return_labels=False
):
    """Denoise patches with a Gaussian-mixture prior: best component, then Wiener.

    Each noisy patch :math:`y` is assigned the component :math:`k` of highest
    posterior probability under the noisy model
    :math:`y \\sim \\mathcal{N}(\\mu_k, C_k + \\sigma^2 I)`, and estimated with
    that component's Wiener filter (the posterior mean of the clean patch)

    .. math:: \\hat{x} = \\mu_k + C_k (C_k + \\sigma^2 I)^{-1} (y - \\mu_k).

    Parameters
    ----------
    patches : array-like of shape (n_patches, n_features)
        Noisy patches, flattened, in the space the mixture was fitted in (for
        example with their means removed).
    mixture : GaussianMixture
        A fitted :class:`~sklearn.mixture.GaussianMixture` (or anything with
        ``weights_``, ``means_``, ``covariances_`` and ``covariance_type``,
        such as ``BayesianGaussianMixture``) trained on clean patches, with any
        ``covariance_type``.
    noise_sigma : float
        Standard deviation of the additive white Gaussian noise, >= 0.
    batch_size : int, default=None
        Patches processed at once (memory is about ``batch_size * (n_features +
        n_components)`` floats); 8192 by default.
    return_labels : bool, default=False
        Also return the component chosen for every patch.

    Returns
    -------
    denoised : ndarray of shape (n_patches, n_features)
        Float64, or float32 for float32 patches.
    labels : ndarray of shape (n_patches,)
        Returned when ``return_labels``.

    Notes
    -----
    Each covariance is eigendecomposed once, :math:`C_k = U_k S_k U_k^T`, so both
    the log-likelihood and the filter cost two products by :math:`U_k` per patch:
    ``O(n_patches * n_components * n_features**2)`` operations in all.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.mixture import GaussianMixture
    >>> from skpatch import gaussian_mixture_wiener
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.standard_normal((500, 2)) @ [[1.0, 0.9], [0.0, 0.1]]
    >>> mixture = GaussianMixture(n_components=2, random_state=0).fit(clean)
    >>> noisy = clean + 0.3 * rng.standard_normal(clean.shape)
    >>> denoised, labels = gaussian_mixture_wiener(noisy, mixture, 0.3,
    ...                                            return_labels=True)
    >>> denoised.shape, labels.shape
    ((500, 2), (500,))
    >>> bool(np.mean((denoised - clean) ** 2) < np.mean((noisy - clean) ** 2))
    True
    """
    # Callers that filter many batches (denoise_image) pass the spectra directly.
    if isinstance(mixture, MixtureSpectra):
        spectra = mixture
    else:
        spectra = mixture_spectra(mixture)
    patches = _check_patches(patches, spectra.n_features, "the mixture's means_")
    noise_sigma = _check_sigma(noise_sigma)
    batch_size = _check_batch_size(batch_size)
    denoised = np.empty_like(patches)
    labels = np.empty(len(patches), dtype=np.intp)
    for start in range(0, len(patches), batch_size):
        rows = slice(start, start + batch_size)
        labels[rows] = _most_likely_components(patches[rows], spectra, noise_sigma)
        denoised[rows] = _wiener(patches[rows], labels[rows], spectra, noise_sigma)
    return (denoised, labels) if return_labels else denoised


def _most_likely_components(patches, spectra, noise_sigma):
    """argmax_k of log w_k + log N(y; mu_k, C_k + sigma^2 I), per patch."""
    log_prob = np.empty((len(patches), len(spectra.means)))
    for k, (mean, values, vectors) in enumerate(
        zip(spectra.means, spectra.values, spectra.vectors, strict=True)
    ):
        noisy_values = values + noise_sigma**2
        if noisy_values.min() <= 0:
            raise ValueError(
                f"component {k} of the mixture has a singular covariance and "
                f"noise_sigma is 0; use noise_sigma > 0 or a mixture with reg_covar > 0"
            )
        dtype = patches.dtype
        projected = (patches - mean.astype(dtype)) @ vectors.astype(dtype)
        projected *= (1 / np.sqrt(noisy_values)).astype(dtype)
        log_prob[:, k] = -0.5 * np.einsum("ij,ij->i", projected, projected)
        log_prob[:, k] += spectra.log_weights[k] - 0.5 * np.log(noisy_values).sum()
    return np.argmax(log_prob, axis=1)


def _wiener(patches, labels, spectra, noise_sigma):
    """Apply each patch's component Wiener filter."""
    out = np.empty_like(patches)
    for k in np.unique(labels):
        rows = labels == k
        mean = spectra.means[k].astype(patches.dtype)
        vectors = spectra.vectors[k].astype(patches.dtype)
        values = spectra.values[k]
        shrink = (values / (values + noise_sigma**2)) if noise_sigma > 0 else 1.0
        projected = (patches[rows] - mean) @ vectors
        projected *= np.asarray(shrink, dtype=patches.dtype)
        out[rows] = projected @ vectors.T + mean
    return out


def error_constrained_omp(
    patches,
    dictionary,
    noise_sigma,
    *,
    tol_factor=1.15,
    max_atoms=None,
    batch_size=None,
):
    """Sparse-code patches with as few atoms as bring the residual to the noise level.

    Orthogonal matching pursuit that stops, for each patch :math:`y`, as soon as
    :math:`\\|y - D^T c\\|^2 \\le n_{features} (\\text{tol\\_factor} \\cdot
    \\sigma)^2` (the error-constrained coding of K-SVD denoising). Patches already
    within the tolerance get no atom. scikit-learn's dictionary estimators only
    offer a fixed number of atoms (``transform_alpha`` is not a tolerance for
    ``'omp'``); this is the noise-adaptive alternative.

    Parameters
    ----------
    patches : array-like of shape (n_patches, n_features)
        Flattened patches, in the space the dictionary was learned in.
    dictionary : array-like of shape (n_components, n_features)
        Atoms in rows, as ``components_`` of scikit-learn's dictionary learners.
        They need not have unit norm.
    noise_sigma : float
        Standard deviation of the noise, >= 0.
    tol_factor : float, default=1.15
        Gain on the noise level in the residual target (1.15 in K-SVD denoising).
    max_atoms : int, default=None
        Upper bound on the number of atoms per patch; by default
        ``min(n_features, n_components)``.
    batch_size : int, default=None
        Patches coded at once; 8192 by default.

    Returns
    -------
    codes : ndarray of shape (n_patches, n_components)
        ``codes @ dictionary`` approximates ``patches``.

    Notes
    -----
    This is batch OMP (Rubinstein, Zibulevsky and Elad, 2008): the Gram matrix
    ``D D^T`` and each patch's correlations with the atoms are computed once, by
    BLAS, and a compiled loop then codes each patch with a Cholesky factor that
    grows by one row per atom, with the GIL released. It selects the same atoms as
    :func:`sklearn.linear_model.orthogonal_mp` with ``tol``, except that patches
    whose norm is already within the tolerance keep a zero code.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import error_constrained_omp
    >>> rng = np.random.default_rng(0)
    >>> dictionary = rng.standard_normal((32, 16))
    >>> patches = rng.standard_normal((5, 3)) @ dictionary[:3]
    >>> codes = error_constrained_omp(patches, dictionary, noise_sigma=0.01)
    >>> codes.shape, (codes != 0).sum(axis=1).tolist()
    ((5, 32), [3, 3, 3, 3, 3])
    """
    pursuit = _Pursuit.build(
        patches, dictionary, noise_sigma, tol_factor, max_atoms, batch_size
    )
    codes = np.zeros(
        (len(pursuit.patches), len(pursuit.atoms)), dtype=pursuit.patches.dtype
    )
    for start, block_codes in pursuit.batches():
        codes[start : start + len(block_codes)] = block_codes
    return codes / pursuit.norms.astype(codes.dtype)


def error_constrained_approximation(
    patches, dictionary, noise_sigma, *, tol_factor=1.15
):
    """``error_constrained_omp(...) @ dictionary``, summed over the chosen atoms only.

    The denoisers' estimate of every patch: the product with the codes, without
    the dense codes (most are zero) and their dense product.
    """
    pursuit = _Pursuit.build(patches, dictionary, noise_sigma, tol_factor, None, None)
    estimate = np.zeros(pursuit.patches.shape)
    for _ in pursuit.batches(estimate):
        pass
    return estimate.astype(pursuit.patches.dtype, copy=False)


@dataclass(frozen=True)
class _Pursuit:
    """The checked input of an error-constrained OMP, coded batch by batch."""

    patches: np.ndarray
    atoms: np.ndarray  # unit-norm atoms in rows
    norms: np.ndarray  # the dictionary's atom norms (1 for a zero atom)
    tol: float
    max_atoms: int
    batch_size: int

    @classmethod
    def build(cls, patches, dictionary, noise_sigma, tol_factor, max_atoms, batch_size):
        dictionary = np.asarray(dictionary, dtype=np.float64)
        if dictionary.ndim != 2:
            raise ValueError(
                f"dictionary must be a 2-D array (n_components, n_features), got "
                f"shape {dictionary.shape}"
            )
        patches = _check_patches(patches, dictionary.shape[1], "the dictionary")
        n_components, n_features = dictionary.shape
        limit = min(n_features, n_components)
        norms = np.linalg.norm(dictionary, axis=1)
        norms[norms == 0] = 1.0
        return cls(
            patches,
            np.ascontiguousarray(dictionary / norms[:, np.newaxis]),
            norms,
            n_features * (tol_factor * _check_sigma(noise_sigma)) ** 2,
            limit if max_atoms is None else _check_max_atoms(max_atoms, limit),
            _check_batch_size(batch_size),
        )

    def batches(self, approximation=None):
        """Yield ``(start, codes)`` per batch, codes of the unit-norm atoms.

        With ``approximation`` (float64 zeros shaped as the patches), every
        batch's ``codes @ atoms`` is written into it too.
        """
        gram = self.atoms @ self.atoms.T
        for start in range(0, len(self.patches), self.batch_size):
            block = self.patches[start : start + self.batch_size].astype(np.float64)
            codes = np.zeros((len(block), len(self.atoms)))
            _omp.batch_omp(
                codes,
                block @ self.atoms.T,
                np.einsum("ij,ij->i", block, block),
                gram,
                self.tol,
                self.max_atoms,
                None if approximation is None else self.atoms,
                None if approximation is None else approximation[start:][: len(block)],
            )
            yield start, codes


def _check_patches(patches, n_features, source):
    patches = np.asarray(patches)
    if patches.dtype.kind not in "biuf":
        raise TypeError(f"patches must hold real numbers, got dtype {patches.dtype}")
    if patches.ndim != 2 or patches.shape[1] != n_features:
        raise ValueError(
            f"patches must have shape (n_patches, {n_features}) to match {source}; "
            f"got shape {patches.shape}"
        )
    if not np.all(np.isfinite(patches)):
        raise ValueError("patches contain NaN or infinite values")
    dtype = np.float32 if patches.dtype == np.float32 else np.float64
    return patches.astype(dtype, copy=False)


def _check_sigma(noise_sigma):
    if (
        not isinstance(noise_sigma, numbers.Real)
        or isinstance(noise_sigma, bool)
        or not np.isfinite(noise_sigma)
        or noise_sigma < 0
    ):
        raise ValueError(f"noise_sigma must be a finite real >= 0, got {noise_sigma!r}")
    return float(noise_sigma)


def _check_batch_size(batch_size):
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _check_max_atoms(max_atoms, limit):
    if not isinstance(max_atoms, numbers.Integral) or not 1 <= max_atoms <= limit:
        raise ValueError(
            f"max_atoms must be an int between 1 and min(n_features, n_components) "
            f"= {limit}, got {max_atoms!r}"
        )
    return int(max_atoms)
