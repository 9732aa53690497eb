"""Image denoising with a patch model: the functional core and its estimator."""

import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._extract import extract_patches, iter_patches
from ._grid import PatchGrid
from ._priors import error_constrained_omp, gaussian_mixture_wiener, mixture_spectra
from ._reconstruct import PatchAccumulator
from ._transformers import _GEOMETRY_CONSTRAINTS, _MAX_PATCHES_CONSTRAINT
from ._validation import as_axis_tuple, output_float_dtype
from ._windows import WINDOW_NAMES
from .metrics import psnr_scorer


def denoise_image(
    image,
    model,
    *,
    patch_size,
    step=1,
    remove_mean=True,
    weights="uniform",
    noise_sigma=None,
    n_iter=1,
    tol_factor=1.15,
):
    """Denoise one image with a fitted patch model, by overlap-averaging its patches.

    Every patch (flattened, its mean removed if ``remove_mean``) is replaced by
    the model's estimate of it, and the estimates are averaged back into an
    image. How a patch is estimated depends on the model:

    - a Gaussian mixture (``means_``, ``covariances_``, ``weights_``, e.g.
      :class:`~sklearn.mixture.GaussianMixture`): the Wiener filter of the most
      likely component, see :func:`gaussian_mixture_wiener` (needs
      ``noise_sigma``);
    - a dictionary model (``components_`` and ``transform_algorithm``, e.g.
      :class:`~sklearn.decomposition.MiniBatchDictionaryLearning`) with
      ``noise_sigma``: error-constrained sparse coding, see
      :func:`error_constrained_omp`;
    - anything else (PCA, a dictionary without ``noise_sigma``):
      ``model.inverse_transform(model.transform(patches))``.

    Parameters
    ----------
    image : ndarray of shape (*spatial_shape)
        A single-channel image (or volume), float.
    model : estimator
        A patch model fitted on flattened patches of ``prod(patch_size)`` values.
    patch_size : tuple of int
        Spatial patch shape.
    step : int or tuple of int, default=1
        Stride between patches.
    remove_mean : bool, default=True
        Remove each patch's mean before the model sees it, add it back after.
    weights : {'uniform', 'gaussian', 'hann', 'triangular'}, tuple or array-like, \
default='uniform'
        Window of the overlap average, see :func:`patch_window`.
    noise_sigma : float, default=None
        Standard deviation of the noise, in the units of ``image``.
    n_iter : int, default=1
        Number of half-quadratic splitting iterations (EPLL, Zoran and Weiss
        2011); needs ``noise_sigma`` when > 1.
    tol_factor : float, default=1.15
        Residual gain of the error-constrained sparse coding.

    Returns
    -------
    denoised : ndarray of the shape of ``image``
        The overlap average of the patch estimates (after ``n_iter`` iterations).

    Notes
    -----
    Iteration :math:`t` (from 0) denoises the patches of the current estimate
    :math:`x` (at first the noisy image :math:`y`) at the effective noise level
    :math:`\\sigma / \\sqrt{m_t}`, with Zoran and Weiss' schedule
    :math:`m = 1, 4, 8, 16, 32, \\dots`, and averages them into :math:`\\bar{z}`.
    With ``n_iter=1`` the result is :math:`\\bar{z}`; otherwise each iteration
    sets :math:`x = (y + m_t \\bar{z}) / (1 + m_t)`. For ``step=1`` and uniform
    weights this is EPLL's update
    :math:`x = (\\lambda y + \\beta \\sum_i P_i^T z_i) / (\\lambda + \\beta
    \\sum_i P_i^T P_i)` with :math:`\\lambda = n_{features} / \\sigma^2` and
    :math:`\\beta = m_t / \\sigma^2` away from the borders; here the balance is
    kept the same at the borders and for any step.

    Patches are processed in batches of about 16 MiB (:func:`iter_patches`), so
    besides the model's own work arrays memory stays a few image-sized arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.mixture import GaussianMixture
    >>> from skpatch import denoise_image, extract_patches
    >>> rng = np.random.default_rng(0)
    >>> clean = np.add.outer(np.sin(np.arange(40) / 5), np.cos(np.arange(50) / 7))
    >>> rows = extract_patches(clean, (5, 5)).reshape(-1, 25)
    >>> prior = GaussianMixture(2, random_state=0).fit(rows)
    >>> noisy = clean + 0.2 * rng.standard_normal(clean.shape)
    >>> denoised = denoise_image(noisy, prior, patch_size=(5, 5), remove_mean=False,
    ...                          noise_sigma=0.2)
    >>> denoised.shape
    (40, 50)
    >>> bool(np.abs(denoised - clean).mean() < np.abs(noisy - clean).mean() / 2)
    True
    """
    patch_denoiser = _patch_denoiser(model, noise_sigma, tol_factor, n_iter)
    estimate = image
    for iteration in range(n_iter):
        multiplier = _beta_multiplier(iteration)
        sigma = None if noise_sigma is None else noise_sigma / math.sqrt(multiplier)
        average = _denoise_patches_once(
            estimate, patch_denoiser, sigma, patch_size, step, remove_mean, weights
        )
        if n_iter == 1:
            return average
        estimate = (image + multiplier * average) / (1 + multiplier)
    return estimate


def _beta_multiplier(iteration):
    """Zoran and Weiss' schedule of beta * sigma^2: 1, 4, 8, 16, 32, ..."""
    return 1 if iteration == 0 else 2 ** (iteration + 1)


def _denoise_patches_once(image, patch_denoiser, sigma, patch_size, step,
                          remove_mean, weights):
    accumulator = PatchAccumulator(image.shape, patch_size, step=step, weights=weights)
    for patches, origins in iter_patches(image, patch_size, step=step):
        rows = patches.reshape(len(patches), -1)
        means = rows.mean(axis=1, keepdims=True) if remove_mean else 0.0
        estimate = np.asarray(patch_denoiser(rows - means, sigma)) + means
        accumulator.add(estimate.reshape(patches.shape), origins)
    return accumulator.result(fill_value=None)


def _patch_denoiser(model, noise_sigma, tol_factor, n_iter):
    """Return ``f(rows, sigma) -> denoised rows`` for the kind of ``model``."""
    if is_mixture(model):
        if noise_sigma is None:
            raise ValueError(
                f"a Gaussian-mixture prior ({_name(model)}) needs noise_sigma, the "
                f"standard deviation of the noise; got noise_sigma=None"
            )
        spectra = mixture_spectra(model)
        return lambda rows, sigma: gaussian_mixture_wiener(rows, spectra, sigma)
    if is_dictionary(model) and noise_sigma is not None:
        dictionary = np.asarray(model.components_)
        return lambda rows, sigma: error_constrained_omp(
            rows, dictionary, sigma, tol_factor=tol_factor
        ) @ dictionary
    if noise_sigma is not None:
        raise ValueError(
            f"noise_sigma is used by Gaussian-mixture priors (means_, covariances_) "
            f"and dictionary models (components_ and transform_algorithm); "
            f"{_name(model)} is neither, so set noise_sigma=None; got "
            f"noise_sigma={noise_sigma}"
        )
    if n_iter > 1:
        raise ValueError(
            f"n_iter > 1 (EPLL iterations) needs noise_sigma and a Gaussian-mixture "
            f"or dictionary model; got n_iter={n_iter} with {_name(model)}"
        )
    for method in ("transform", "inverse_transform"):
        if not hasattr(model, method):
            raise ValueError(
                f"{_name(model)} is not a Gaussian mixture nor a dictionary with "
                f"noise_sigma, so it needs transform and inverse_transform; it has "
                f"no {method}"
            )
    return lambda rows, sigma: model.inverse_transform(model.transform(rows))


def is_mixture(model):
    """Whether ``model`` looks like a fitted Gaussian mixture."""
    return all(hasattr(model, a) for a in ("means_", "covariances_", "weights_"))


def is_dictionary(model):
    """Whether ``model`` looks like a fitted scikit-learn dictionary model."""
    return hasattr(model, "components_") and hasattr(model, "transform_algorithm")


def _name(model):
    model = model.estimator if isinstance(model, FrozenEstimator) else model
    return type(model).__name__


class PatchDenoiser(TransformerMixin, BaseEstimator):
    """Denoise images with a patch model learned by any scikit-learn estimator.

    ``fit`` trains a clone of ``estimator`` on (a sample of) the flattened
    patches of the images; ``transform`` and ``predict`` replace every patch of
    each image by the model's estimate and overlap-average the estimates back
    into an image (see :func:`denoise_image` for how each kind of model is used).
    ``score`` is the mean PSNR against clean images, so :class:`GridSearchCV
    <sklearn.model_selection.GridSearchCV>` can tune ``patch_size``, ``step``
    and ``estimator__<param>`` in image space.

    Parameters
    ----------
    estimator : estimator, default=None
        Patch model: a dictionary learner, PCA, a Gaussian mixture, ... It is
        cloned and fitted on patches, unless wrapped in
        :class:`~sklearn.frozen.FrozenEstimator` (a model trained elsewhere, for
        example ``make_pipeline(PatchExtractor(...), GaussianMixture(...))``
        fitted on clean images, plugged in as ``FrozenEstimator(pipe[-1])``),
        which is used as it is; such a model must have seen patches prepared
        as ``remove_mean`` says (:class:`PatchExtractor` keeps the means: add a
        mean-removing step to the pipeline, or set ``remove_mean=False``).
        ``None`` means
        ``MiniBatchDictionaryLearning(n_components=100, alpha=0.2, max_iter=3,
        batch_size=256, fit_algorithm='cd', random_state=random_state)``.
    patch_size : int or tuple of int, default=(8, 8)
        Spatial patch shape; an int is used on every spatial axis.
    step : int or tuple of int, default=1
        Stride between patches, when fitting and denoising. Larger steps are
        faster (``prod(step)`` times fewer patches) and a little worse.
    remove_mean : bool, default=True
        Remove each patch's mean before the model sees it (when fitting and
        denoising) and add it back after, so the model only describes texture.
    weights : {'uniform', 'gaussian', 'hann', 'triangular'}, tuple or array-like, \
default='uniform'
        Window of the overlap average, see :func:`patch_window`.
    max_patches : int or float, default=None
        Patches per image to fit the model on: a number (capped at the image's
        number of patches) or a fraction in (0, 1]; ``None`` uses them all.
    noise_sigma : float, default=None
        Standard deviation of the noise, in the units of the images. Required
        by a Gaussian-mixture model; makes a dictionary model code each patch
        with as few atoms as bring its residual to the noise level
        (:func:`error_constrained_omp`) instead of its own ``transform``.
    n_iter : int, default=1
        Iterations of EPLL's half-quadratic splitting (needs ``noise_sigma``);
        1 is a single pass of patch denoising and averaging.
    tol_factor : float, default=1.15
        Residual target of the error-constrained coding,
        ``n_features * (tol_factor * noise_sigma) ** 2``.
    random_state : int, RandomState instance or None, default=None
        Draws the patches of ``max_patches`` (and seeds the default estimator).

    Attributes
    ----------
    estimator_ : estimator
        The fitted patch model.
    patch_size_ : tuple of int
        The spatial patch shape, one int per spatial axis.
    n_patch_features_ : int
        Values per flattened patch, ``prod(patch_size_)``.

    See Also
    --------
    denoise_image : The function doing the work, for one image.
    gaussian_mixture_wiener : The Gaussian-mixture patch estimate.
    error_constrained_omp : The noise-adaptive sparse coding.

    Notes
    -----
    Images are single-channel (grey images, volumes); denoise colour images
    channel by channel, or in a decorrelated colour space. ``transform`` keeps
    the container: a 3-D array ``(n_images, height, width)`` gives one back, a
    list of images of different shapes gives a list. float32 images give
    float32; everything else float64.

    Fitting holds the sampled patch matrix, ``n_images * max_patches *
    n_patch_features_`` values; denoising works in batches of about 16 MiB of
    patches per image.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skpatch import PatchDenoiser
    >>> rng = np.random.default_rng(0)
    >>> noisy = rng.random((3, 32, 40))
    >>> denoiser = PatchDenoiser(PCA(n_components=8), patch_size=(6, 6))
    >>> denoiser.fit(noisy).transform(noisy).shape
    (3, 32, 40)
    >>> [image.shape for image in denoiser.predict([noisy[0], noisy[1, :20]])]
    [(32, 40), (20, 40)]
    """

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [HasMethods(["fit"]), None],
        "patch_size": _GEOMETRY_CONSTRAINTS["patch_size"],
        "step": _GEOMETRY_CONSTRAINTS["step"],
        "remove_mean": ["boolean"],
        "weights": [StrOptions(set(WINDOW_NAMES)), tuple, np.ndarray],
        "max_patches": _MAX_PATCHES_CONSTRAINT,
        "noise_sigma": [Interval(Real, 0, None, closed="neither"), None],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "tol_factor": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        patch_size=(8, 8),
        step=1,
        remove_mean=True,
        weights="uniform",
        max_patches=None,
        noise_sigma=None,
        n_iter=1,
        tol_factor=1.15,
        random_state=None,
    ):
        self.estimator = estimator
        self.patch_size = patch_size
        self.step = step
        self.remove_mean = remove_mean
        self.weights = weights
        self.max_patches = max_patches
        self.noise_sigma = noise_sigma
        self.n_iter = n_iter
        self.tol_factor = tol_factor
        self.random_state = random_state

    @_fit_context(
        # The wrapped estimator validates its own parameters when it is fitted.
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None):
        """Fit a clone of ``estimator`` on patches of the images ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape) or list of ndarray
            Training images (usually the noisy images themselves).
        y : None
            Ignored; present for API consistency (``GridSearchCV`` passes the
            clean images here to score with).

        Returns
        -------
        self : PatchDenoiser
            The fitted denoiser.
        """
        images, _ = _check_images(X, _n_spatial(self.patch_size, X))
        self.patch_size_ = as_axis_tuple(
            self.patch_size, images[0].ndim, "patch_size", minimum=1
        )
        self.n_patch_features_ = math.prod(self.patch_size_)
        _check_image_sizes(images, self.patch_size_)
        estimator = self._make_estimator()
        if isinstance(estimator, FrozenEstimator):
            self.estimator_ = estimator
        else:
            rows = training_patches(
                images,
                self.patch_size_,
                step=self.step,
                max_patches=self.max_patches,
                remove_mean=self.remove_mean,
                random_state=self.random_state,
            )
            self.estimator_ = clone(estimator).fit(rows)
        _check_model_features(self.estimator_, self.n_patch_features_, self.patch_size_)
        return self

    def transform(self, X):
        """Denoise every image of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape) or list of ndarray
            Noisy images, each of any shape at least ``patch_size``.

        Returns
        -------
        denoised : ndarray of shape X.shape, or list of ndarray
            An array for an array input, a list of images for a list.
        """
        check_is_fitted(self)
        self._validate_params()
        images, as_array = _check_images(X, len(self.patch_size_))
        _check_image_sizes(images, self.patch_size_)
        denoised = [self._denoise(image) for image in images]
        return np.stack(denoised) if as_array else denoised

    def predict(self, X):
        """Denoise every image of ``X``; the same as :meth:`transform`.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape) or list of ndarray
            Noisy images.

        Returns
        -------
        denoised : ndarray of shape X.shape, or list of ndarray
            An array for an array input, a list of images for a list.
        """
        return self.transform(X)

    def score(self, X, y):
        """Mean PSNR (dB) of the denoised ``X`` against the clean images ``y``.

        The estimates are clipped to [0, 1] and the data range is 1, the
        protocol for images scaled to [0, 1].

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape) or list of ndarray
            Noisy images.
        y : ndarray or list of ndarray
            The clean images, with the same shapes.

        Returns
        -------
        score : float
            Mean peak signal-to-noise ratio over the images, in dB.
        """
        return psnr_scorer(self, X, y)

    def _denoise(self, image):
        dtype = output_float_dtype(image.dtype)
        denoised = denoise_image(
            image.astype(dtype, copy=False),
            self.estimator_,
            patch_size=self.patch_size_,
            step=self.step,
            remove_mean=self.remove_mean,
            weights=self.weights,
            noise_sigma=self.noise_sigma,
            n_iter=self.n_iter,
            tol_factor=self.tol_factor,
        )
        return denoised.astype(dtype, copy=False)

    def _make_estimator(self):
        if self.estimator is not None:
            return self.estimator
        return MiniBatchDictionaryLearning(
            n_components=100,
            alpha=0.2,
            max_iter=3,
            batch_size=256,
            fit_algorithm="cd",
            random_state=self.random_state,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = False
        return tags


def training_patches(
    images, patch_size, *, step=1, max_patches=None, remove_mean=True, random_state=None
):
    """Flattened (and centred) patches sampled from every image, as one matrix.

    An int ``max_patches`` is capped at each image's number of patches.
    """
    rng = check_random_state(random_state)
    rows = []
    for image in images:
        n_draw = max_patches
        if isinstance(max_patches, Integral):
            grid = PatchGrid(image.shape, patch_size, step=step)
            n_draw = min(max_patches, grid.n_patches)
        patches = extract_patches(
            image, patch_size, step=step, max_patches=n_draw, random_state=rng
        )
        rows.append(patches.reshape(len(patches), -1))
    rows = np.concatenate(rows)
    if remove_mean:
        rows = rows - rows.mean(axis=1, keepdims=True)
    return rows


def _n_spatial(patch_size, X):
    """Spatial axes per image: from a tuple patch_size, else from the input."""
    if isinstance(patch_size, tuple):
        return len(patch_size)
    if isinstance(X, np.ndarray):
        return X.ndim - 1
    first = np.asarray(X[0]) if len(X) else np.empty((0, 0))
    return first.ndim


def _check_images(X, n_spatial):
    """Return the images of ``X`` as a list, and whether ``X`` was one array."""
    as_array = not isinstance(X, list | tuple)
    if as_array:
        X = np.asarray(X)
        if X.ndim != n_spatial + 1:
            raise ValueError(
                f"X must be an array of shape (n_images, *spatial_shape) with "
                f"{n_spatial} spatial axes (as patch_size), or a list of images; "
                f"got an array of shape {X.shape}"
            )
    images = [np.asarray(image) for image in X]
    if not images:
        raise ValueError("X contains no image: got an empty batch")
    for i, image in enumerate(images):
        if image.ndim != n_spatial:
            raise ValueError(
                f"every image must have {n_spatial} spatial axes (as patch_size); "
                f"image {i} has shape {image.shape}"
            )
        if image.dtype.kind not in "biuf":
            raise TypeError(
                f"images must hold real numbers; image {i} has dtype {image.dtype}"
            )
        if not np.all(np.isfinite(image)):
            raise ValueError(
                f"image {i} contains NaN or infinite values; denoising needs finite "
                f"images"
            )
    return images, as_array


def _check_image_sizes(images, patch_size):
    for i, image in enumerate(images):
        if any(s < p for s, p in zip(image.shape, patch_size, strict=True)):
            raise ValueError(
                f"patch_size {patch_size} is larger than image {i}'s shape "
                f"{image.shape}"
            )


def _check_model_features(model, n_features, patch_size):
    """The model must have been fitted on patches of ``prod(patch_size)`` values."""
    fitted = None
    if is_mixture(model):
        fitted = np.shape(model.means_)[-1]
    elif hasattr(model, "components_"):
        fitted = np.shape(model.components_)[-1]
    elif hasattr(model, "n_features_in_"):
        fitted = model.n_features_in_
    if fitted is not None and fitted != n_features:
        raise ValueError(
            f"the estimator was fitted on patches of {fitted} values but "
            f"patch_size {patch_size} gives {n_features}"
        )
