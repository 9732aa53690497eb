"""Image denoising with a patch model: the functional core and its estimator."""

import math
from dataclasses import dataclass
from functools import partial
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._extract import extract_patches
from ._grid import PatchGrid
from ._parallel import (
    BATCH_BYTES,
    THREAD_BATCH_BYTES,
    Progress,
    resolve_n_jobs,
    run_tasks,
    thread_chunks,
    tile_average,
)
from ._priors import (
    error_constrained_approximation,
    gaussian_mixture_wiener,
    mixture_spectra,
)
from ._tiling import covers_every_pixel, iter_tiles, source_block
from ._transformers import _GEOMETRY_CONSTRAINTS, _MAX_PATCHES_CONSTRAINT
from ._validation import as_axis_tuple, is_dask_array, output_float_dtype
from ._windows import WINDOW_NAMES
from .metrics import psnr_scorer


def denoise_image(
    image,
    model,
    *,
    patch_size,
    step=1,
    offset=0,
    padding=None,
    remove_mean=True,
    weights="uniform",
    noise_sigma=None,
    n_iter=1,
    tol_factor=1.15,
    n_jobs=None,
    verbose=0,
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
    image : ndarray or dask array of shape (*spatial_shape) or (*spatial_shape, \
n_channels)
        A grey image (or volume), or a colour image with its channels last
        (one axis more than ``patch_size``). A dask array gives a lazy dask
        array back, see :ref:`large_images`.
    model : estimator
        A patch model fitted on flattened patches of ``prod(patch_size) *
        n_channels`` values (channels last inside a patch, as
        :class:`PatchExtractor` lays them out).
    patch_size : int or tuple of int
        Spatial patch shape; an int is used on every axis of ``image`` (so a
        colour image needs a tuple).
    step : int or tuple of int, default=1
        Stride between patches.
    offset : int or tuple of int, default=0
        Origin of the first regular patch, see :class:`PatchGrid`.
    padding : {None, 'valid', 'reflect', 'symmetric', 'edge', 'constant', 'wrap'}, \
default=None
        Edge policy, see :class:`PatchGrid`; every pixel must be covered.
    remove_mean : bool, default=True
        Remove each patch's mean (per channel) before the model sees it, add it
        back after.
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
    n_jobs : int, default=None
        Threads denoising tiles of the image at once: ``None`` means 1 (unless
        in a :func:`joblib.parallel_config` context), ``-1`` every core. The
        result is the same to float rounding for any ``n_jobs``.
    verbose : int, default=0
        Report progress (patches done, rate, time left) on stderr: a tqdm bar
        when tqdm is installed, plain lines otherwise.

    Returns
    -------
    denoised : ndarray (or dask array) of the shape of ``image``
        The overlap average of the patch estimates (after ``n_iter``
        iterations); float32 for a float32 image, float64 otherwise.

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

    With ``n_jobs`` the image is cut into tiles; each tile is denoised from the
    patches of the global grid that cover it (read from the tile plus a halo of
    ``patch_size - 1``), so tiling changes nothing but the float rounding.
    Patches are processed in batches of about 16 MiB per tile, so besides the
    model's own work arrays memory stays a few image-sized arrays.

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
    ...                          noise_sigma=0.2, n_jobs=2)
    >>> denoised.shape
    (40, 50)
    >>> bool(np.abs(denoised - clean).mean() < np.abs(noisy - clean).mean() / 2)
    True
    """
    n_spatial = len(patch_size) if isinstance(patch_size, tuple) else np.ndim(image)
    denoiser = TileDenoiser(
        as_axis_tuple(patch_size, n_spatial, "patch_size", minimum=1),
        step,
        offset,
        padding,
        _patch_denoiser(model, noise_sigma, tol_factor, n_iter),
        remove_mean,
        weights,
    )
    if is_dask_array(image):
        from ._dask import denoise_dask

        return denoise_dask(image[None], denoiser, noise_sigma, n_iter)[0]
    (image,), _ = _check_images([image], n_spatial)
    _check_image_sizes([image.shape], denoiser.patch_size)
    return denoise_images(
        [image], denoiser, noise_sigma, n_iter, n_jobs=n_jobs, verbose=verbose
    )[0]


def _beta_multiplier(iteration):
    """Zoran and Weiss' schedule of beta * sigma^2: 1, 4, 8, 16, 32, ..."""
    return 1 if iteration == 0 else 2 ** (iteration + 1)


def iteration_schedule(noise_sigma, n_iter):
    """Per EPLL iteration, the multiplier ``m_t`` and the noise level of the pass."""
    for iteration in range(n_iter):
        multiplier = _beta_multiplier(iteration)
        sigma = None if noise_sigma is None else noise_sigma / math.sqrt(multiplier)
        yield multiplier, sigma


def denoise_images(
    images,
    denoiser,
    noise_sigma,
    n_iter,
    *,
    n_jobs=None,
    verbose=0,
    description="denoising",
):
    """Denoise in-memory images tile by tile, the tiles of all images in threads.

    Each EPLL iteration is one tiled pass over the current estimates (the
    threads meet between passes: the halos of the next pass read the finished
    estimate), then the estimates are blended with the noisy images.
    """
    n_workers = resolve_n_jobs(n_jobs)
    images = [
        image.astype(output_float_dtype(image.dtype), copy=False) for image in images
    ]
    grids = [denoiser.grid(image.shape) for image in images]
    tilings = [
        list(
            iter_tiles(
                grid, thread_chunks(grid.image_shape, grid.patch_size, n_workers)
            )
        )
        for grid in grids
    ]
    total = n_iter * sum(tile.n_patches for tiles in tilings for _, tile in tiles)
    progress = Progress(total, description, verbose=verbose)
    estimates = images
    try:
        for multiplier, sigma in iteration_schedule(noise_sigma, n_iter):
            averages = [np.empty_like(image) for image in images]
            tasks = [
                partial(
                    _average_into,
                    average,
                    estimate,
                    tile,
                    denoiser,
                    sigma,
                    progress.update,
                    THREAD_BATCH_BYTES if n_workers > 1 else BATCH_BYTES,
                )
                for average, estimate, tiles in zip(
                    averages, estimates, tilings, strict=True
                )
                for _, tile in tiles
            ]
            run_tasks(tasks, n_workers)
            if n_iter == 1:
                return averages
            estimates = [
                (image + multiplier * average) / (1 + multiplier)
                for image, average in zip(images, averages, strict=True)
            ]
    finally:
        progress.close()
    return estimates


def _average_into(out, image, tile, denoiser, sigma, on_batch, batch_bytes):
    source, source_start = source_block(image, tile.grid, tile)
    index = tuple(slice(a, b) for a, b in zip(tile.start, tile.stop, strict=True))
    out[index] = denoiser.average(
        source, source_start, tile, sigma, on_batch, batch_bytes=batch_bytes
    )


@dataclass(frozen=True)
class TileDenoiser:
    """Everything one tile needs to be denoised, in one picklable object.

    Threads and dask tasks call :meth:`average` on a tile of the global grid
    that :meth:`grid` lays on an image.
    """

    patch_size: tuple
    step: object
    offset: object
    padding: object
    row_denoiser: object
    remove_mean: bool
    weights: object

    def grid(self, image_shape):
        """The global grid of an image (channels, if any, after the spatial axes)."""
        grid = PatchGrid(
            tuple(image_shape[: len(self.patch_size)]),
            self.patch_size,
            step=self.step,
            offset=self.offset,
            padding=self.padding,
        )
        if not covers_every_pixel(grid):
            raise ValueError(
                f"some pixels are not covered by any patch for {grid._describe()}; "
                f"denoising needs every pixel covered: use a step <= patch_size or "
                f"another padding"
            )
        return grid

    def average(
        self, source, source_start, tile, sigma, on_batch=None, batch_bytes=BATCH_BYTES
    ):
        """The tile's pixels: the overlap average of its denoised patches."""
        return tile_average(
            source,
            source_start,
            tile,
            partial(self.denoise_patches, sigma=sigma),
            weights=self.weights,
            on_batch=on_batch,
            batch_bytes=batch_bytes,
        )

    def denoise_patches(self, patches, sigma):
        """Estimate every patch (means per channel removed and put back).

        ``patches`` (a fresh float copy, as :func:`extract_patches` gives) is
        centred in place: every batch allocates as little as it can, since
        fresh memory costs page faults (all the more in dask workers, whose
        ``MALLOC_TRIM_THRESHOLD_`` hands freed memory straight back).
        """
        n_patches = len(patches)
        values = patches.reshape(n_patches, math.prod(self.patch_size), -1)
        means = values.mean(axis=1, keepdims=True) if self.remove_mean else None
        if means is not None:
            values -= means
        rows = values.reshape(n_patches, -1)
        estimate = np.asarray(self.row_denoiser(rows, sigma)).reshape(values.shape)
        if means is not None:
            estimate += means
        return estimate.reshape(patches.shape)


@dataclass(frozen=True)
class RowDenoiser:
    """``f(rows, sigma) -> denoised rows`` for one kind of model; picklable."""

    kind: str
    model: object
    tol_factor: float = 1.15

    def __call__(self, rows, sigma):
        if self.kind == "mixture":
            return gaussian_mixture_wiener(rows, self.model, sigma)
        if self.kind == "dictionary":
            return _sparse_estimate(rows, self.model, sigma, self.tol_factor)
        return self.model.inverse_transform(self.model.transform(rows))


def _sparse_estimate(rows, dictionary, sigma, tol_factor):
    """``codes @ dictionary`` of the error-constrained coding of ``rows``.

    Rows already within the residual target get no atom (a zero estimate), so
    only the others are handed to :func:`error_constrained_omp`: on smooth or
    flat regions most patches are skipped before the dense correlation with
    every atom is computed.
    """
    estimate = np.zeros_like(rows)
    target = rows.shape[1] * (tol_factor * sigma) ** 2
    # error_constrained_omp applies this test itself (in float64); the margin
    # only hands it the rows whose float32 norm is too close to call.
    active = np.einsum("ij,ij->i", rows, rows) > target * (1 - 1e-5)
    if active.any():
        estimate[active] = error_constrained_approximation(
            rows[active], dictionary, sigma, tol_factor=tol_factor
        )
    return estimate


def _patch_denoiser(model, noise_sigma, tol_factor, n_iter):
    """Return the :class:`RowDenoiser` for the kind of ``model``."""
    if is_mixture(model):
        if noise_sigma is None:
            raise ValueError(
                f"a Gaussian-mixture prior ({_name(model)}) needs noise_sigma, the "
                f"standard deviation of the noise; got noise_sigma=None"
            )
        return RowDenoiser("mixture", mixture_spectra(model))
    if is_dictionary(model) and noise_sigma is not None:
        return RowDenoiser(
            "dictionary", np.asarray(model.components_), tol_factor=tol_factor
        )
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
    return RowDenoiser("model", model)


def is_mixture(model):
    """Whether ``model`` looks like a fitted Gaussian mixture."""
    return all(hasattr(model, a) for a in ("means_", "covariances_", "weights_"))


def is_dictionary(model):
    """Whether ``model`` looks like a fitted scikit-learn dictionary model."""
    return hasattr(model, "components_") and hasattr(model, "transform_algorithm")


def _name(model):
    model = model.estimator if isinstance(model, FrozenEstimator) else model
    return type(model).__name__


class DenoiserMixin:
    """``predict`` and ``score`` of the image denoisers.

    ``predict`` is ``transform`` (a denoiser predicts the clean images) and
    ``score`` the mean PSNR against the clean images, which makes the
    denoisers' parameters tunable by :class:`~sklearn.model_selection.GridSearchCV`
    with the noisy images as ``X`` and the clean ones as ``y``.
    """

    def predict(self, X):
        """Denoise every image of ``X``; the same as :meth:`transform`.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape[, n_channels]), list of \
ndarray, or dask array
            Noisy images.

        Returns
        -------
        denoised : ndarray of shape X.shape, list of ndarray, or dask array
            An array for an array input, a list of images for a list, a lazy
            dask array for a dask array.
        """
        return self.transform(X)

    def score(self, X, y):
        """Mean PSNR (dB) of the denoised ``X`` against the clean images ``y``.

        The estimates are clipped to [0, 1] and the data range is 1, the
        protocol for images scaled to [0, 1].

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape[, n_channels]) or list \
of ndarray
            Noisy images.
        y : ndarray or list of ndarray
            The clean images, with the same shapes.

        Returns
        -------
        score : float
            Mean peak signal-to-noise ratio over the images, in dB.
        """
        return psnr_scorer(self, X, y)


class PatchDenoiser(DenoiserMixin, TransformerMixin, BaseEstimator):
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
        Spatial patch shape; an int is used on every axis of an image after the
        first (batch) axis, so colour images need a tuple.
    step : int or tuple of int, default=1
        Stride between patches, when fitting and denoising. Larger steps are
        faster (``prod(step)`` times fewer patches) and a little worse.
    offset : int or tuple of int, default=0
        Origin of the first regular patch, see :class:`PatchGrid`.
    padding : {None, 'valid', 'reflect', 'symmetric', 'edge', 'constant', 'wrap'}, \
default=None
        Edge policy of the grid, see :class:`PatchGrid`. Denoising needs every
        pixel covered.
    remove_mean : bool, default=True
        Remove each patch's mean (per channel) before the model sees it (when
        fitting and denoising) and add it back after, so the model only
        describes texture.
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
    n_jobs : int, default=None
        Threads denoising tiles of the images at once (in-memory input):
        ``None`` means 1 (unless in a :func:`joblib.parallel_config` context),
        ``-1`` every core. BLAS runs one thread per worker meanwhile. Dask
        input runs on dask's scheduler instead.
    verbose : int, default=0
        Report the progress of ``transform`` (patches done, rate, time left) on
        stderr, with tqdm when it is installed. Dask work reports through
        ``dask.diagnostics.ProgressBar`` or the distributed dashboard.
    random_state : int, RandomState instance or None, default=None
        Draws the patches of ``max_patches`` (and seeds the default estimator).

    Attributes
    ----------
    estimator_ : estimator
        The fitted patch model.
    patch_size_ : tuple of int
        The spatial patch shape, one int per spatial axis.
    n_channels_ : int or None
        Channels of the images seen in ``fit`` (None for grey images).
    n_patch_features_ : int
        Values per flattened patch, ``prod(patch_size_) * n_channels_``.

    See Also
    --------
    denoise_image : The function doing the work, for one image.
    gaussian_mixture_wiener : The Gaussian-mixture patch estimate.
    error_constrained_omp : The noise-adaptive sparse coding.

    Notes
    -----
    Images are grey ``(n_images, *spatial_shape)`` or colour ``(n_images,
    *spatial_shape, n_channels)`` with the channels last (one axis more than
    ``patch_size``). A colour patch is one row of ``prod(patch_size) *
    n_channels`` values, channels last (as :class:`PatchExtractor` lays them
    out): the model is fitted on, and denoises, whole colour patches, so it
    learns the correlations between channels; ``remove_mean`` removes the mean
    of every channel of a patch. ``transform`` keeps the container: an array
    gives an array back, a list of images of different shapes gives a list, a
    dask array gives a lazy dask array (see :ref:`large_images`). float32
    images give float32; everything else float64.

    Fitting holds the sampled patch matrix, ``n_images * max_patches *
    n_patch_features_`` values; denoising works in batches of about 16 MiB of
    patches per tile. With ``n_jobs`` each image is cut into tiles, each
    denoised from the patches of the global grid covering it, so the result
    does not depend on ``n_jobs`` (nor on a dask array's chunks) but for the
    float rounding.

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
    >>> colour = rng.random((2, 32, 40, 3))
    >>> denoiser.fit(colour).n_patch_features_, denoiser.transform(colour).shape
    (108, (2, 32, 40, 3))
    """

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [HasMethods(["fit"]), None],
        "patch_size": _GEOMETRY_CONSTRAINTS["patch_size"],
        "step": _GEOMETRY_CONSTRAINTS["step"],
        "offset": _GEOMETRY_CONSTRAINTS["offset"],
        "padding": _GEOMETRY_CONSTRAINTS["padding"],
        "remove_mean": ["boolean"],
        "weights": [StrOptions(set(WINDOW_NAMES)), tuple, np.ndarray],
        "max_patches": _MAX_PATCHES_CONSTRAINT,
        "noise_sigma": [Interval(Real, 0, None, closed="neither"), None],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "tol_factor": [Interval(Real, 0, None, closed="neither")],
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        patch_size=(8, 8),
        step=1,
        offset=0,
        padding=None,
        remove_mean=True,
        weights="uniform",
        max_patches=None,
        noise_sigma=None,
        n_iter=1,
        tol_factor=1.15,
        n_jobs=None,
        verbose=0,
        random_state=None,
    ):
        self.estimator = estimator
        self.patch_size = patch_size
        self.step = step
        self.offset = offset
        self.padding = padding
        self.remove_mean = remove_mean
        self.weights = weights
        self.max_patches = max_patches
        self.noise_sigma = noise_sigma
        self.n_iter = n_iter
        self.tol_factor = tol_factor
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    @_fit_context(
        # The wrapped estimator validates its own parameters when it is fitted.
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None):
        """Fit a clone of ``estimator`` on patches of the images ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape[, n_channels]), list of \
ndarray, or dask array
            Training images (usually the noisy images themselves). Of a dask
            array only the chunks holding sampled patches (with their halos)
            are computed.
        y : None
            Ignored; present for API consistency (``GridSearchCV`` passes the
            clean images here to score with).

        Returns
        -------
        self : PatchDenoiser
            The fitted denoiser.
        """
        self._fit_geometry(X)
        estimator = self._make_estimator()
        if isinstance(estimator, FrozenEstimator):
            self.estimator_ = estimator
        else:
            rows = self._training_rows(X, check_random_state(self.random_state))
            self.estimator_ = clone(estimator).fit(rows)
        _check_model_features(self.estimator_, self.n_patch_features_, self.patch_size_)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def partial_fit(self, X, y=None):
        """Update the model with the (sampled) patches of one batch of images.

        For patch models with ``partial_fit`` (such as
        :class:`~sklearn.decomposition.MiniBatchDictionaryLearning` or
        :class:`~sklearn.decomposition.IncrementalPCA`): a stream of frames or
        slices, each batch drawn ``max_patches`` per image, trains one model.
        The first call fixes the geometry; later batches must match it.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape[, n_channels]), list of \
ndarray, or dask array
            One batch of training images.
        y : None
            Ignored.

        Returns
        -------
        self : PatchDenoiser
            The updated denoiser.
        """
        estimator = self._make_estimator()
        if not hasattr(estimator, "partial_fit"):
            raise ValueError(
                f"partial_fit needs a patch model with partial_fit (such as "
                f"MiniBatchDictionaryLearning or IncrementalPCA); got "
                f"{_name(estimator)}, which has none: use fit"
            )
        if not hasattr(self, "estimator_"):
            self._fit_geometry(X)
            self.estimator_ = clone(estimator)
        else:
            self._check_fitted_geometry(X)
        if not hasattr(self, "_partial_fit_rng"):
            # One stream of draws across the calls, as scikit-learn's own
            # partial_fit keeps its random state.
            self._partial_fit_rng = check_random_state(self.random_state)
        rows = self._training_rows(X, self._partial_fit_rng)
        self.estimator_.partial_fit(rows)
        _check_model_features(self.estimator_, self.n_patch_features_, self.patch_size_)
        return self

    def transform(self, X):
        """Denoise every image of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape[, n_channels]), list of \
ndarray, or dask array
            Noisy images, each of any shape at least ``patch_size``, with the
            channels seen in ``fit``.

        Returns
        -------
        denoised : ndarray of shape X.shape, list of ndarray, or dask array
            An array for an array input, a list of images for a list, a lazy
            dask array with the chunks of ``X`` for a dask array.
        """
        check_is_fitted(self)
        self._validate_params()
        denoiser = TileDenoiser(
            self.patch_size_,
            self.step,
            self.offset,
            self.padding,
            _patch_denoiser(
                self.estimator_, self.noise_sigma, self.tol_factor, self.n_iter
            ),
            self.remove_mean,
            self.weights,
        )
        if is_dask_array(X):
            from ._dask import denoise_dask

            self._check_dask_input(X)
            return denoise_dask(X, denoiser, self.noise_sigma, self.n_iter)
        images, as_array = _check_images(X, len(self.patch_size_))
        self._check_channels(images)
        _check_image_sizes([i.shape for i in images], self.patch_size_)
        denoised = denoise_images(
            images,
            denoiser,
            self.noise_sigma,
            self.n_iter,
            n_jobs=self.n_jobs,
            verbose=self.verbose,
            description=f"{type(self).__name__}.transform",
        )
        return np.stack(denoised) if as_array else denoised

    def _fit_geometry(self, X):
        """Check the training images; set patch_size_, n_channels_ and the features."""
        n_spatial = _n_spatial(self.patch_size, X)
        if is_dask_array(X):
            from ._dask import check_dask_images

            shapes = [check_dask_images(X, n_spatial).shape[1:]]
        else:
            shapes = [image.shape for image in _check_images(X, n_spatial)[0]]
            if len({shape[n_spatial:] for shape in shapes}) > 1:
                raise ValueError(
                    f"every image must have the same channels; got images of shapes "
                    f"{sorted(set(shapes))}"
                )
        self.patch_size_ = as_axis_tuple(
            self.patch_size, n_spatial, "patch_size", minimum=1
        )
        self.n_channels_ = shapes[0][n_spatial] if len(shapes[0]) > n_spatial else None
        self.n_patch_features_ = math.prod(self.patch_size_) * (self.n_channels_ or 1)
        _check_image_sizes(shapes, self.patch_size_)

    def _check_fitted_geometry(self, X):
        if is_dask_array(X):
            self._check_dask_input(X)
            return
        images, _ = _check_images(X, len(self.patch_size_))
        self._check_channels(images)
        _check_image_sizes([i.shape for i in images], self.patch_size_)

    def _check_channels(self, images):
        expected = () if self.n_channels_ is None else (self.n_channels_,)
        n_spatial = len(self.patch_size_)
        for i, image in enumerate(images):
            if image.shape[n_spatial:] != expected:
                raise ValueError(
                    f"{type(self).__name__} was fitted on images with "
                    f"{n_spatial} spatial axes and "
                    f"{self.n_channels_ or 'no'} channels (patches of "
                    f"{self.n_patch_features_} values); image {i} has shape "
                    f"{image.shape}"
                )

    def _check_dask_input(self, X):
        from ._dask import check_dask_images

        check_dask_images(X, len(self.patch_size_))
        self._check_channels([X[0]])
        _check_image_sizes([X.shape[1:]], self.patch_size_)

    def _training_rows(self, X, rng):
        geometry = {"step": self.step, "offset": self.offset, "padding": self.padding}
        if is_dask_array(X):
            from ._dask import training_patches_dask

            return training_patches_dask(
                X,
                self.patch_size_,
                geometry,
                max_patches=self.max_patches,
                remove_mean=self.remove_mean,
                random_state=rng,
            )
        images, _ = _check_images(X, len(self.patch_size_))
        return training_patches(
            images,
            self.patch_size_,
            **geometry,
            max_patches=self.max_patches,
            remove_mean=self.remove_mean,
            random_state=rng,
        )

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
    images,
    patch_size,
    *,
    step=1,
    offset=0,
    padding=None,
    max_patches=None,
    remove_mean=True,
    random_state=None,
):
    """Flattened (and centred) patches sampled from every image, as one matrix.

    Images may carry channels after their spatial axes (one row per colour
    patch, channels last). An int ``max_patches`` is capped at each image's
    number of patches.
    """
    rng = check_random_state(random_state)
    rows = []
    for image in images:
        grid = PatchGrid(
            image.shape[: len(patch_size)],
            patch_size,
            step=step,
            offset=offset,
            padding=padding,
        )
        n_draw = sample_size(max_patches, grid)
        channel_axis = -1 if image.ndim > grid.ndim else None
        patches = extract_patches(
            image,
            patch_size,
            step=step,
            offset=offset,
            padding=padding,
            channel_axis=channel_axis,
            max_patches=n_draw,
            random_state=rng,
        )
        rows.append(patches.reshape(len(patches), -1))
    return centre_rows(np.concatenate(rows), patch_size, remove_mean)


def sample_size(max_patches, grid):
    """``max_patches`` for one image: an int is capped at its number of patches."""
    if isinstance(max_patches, Integral):
        return min(max_patches, grid.n_patches)
    return max_patches


def centre_rows(rows, patch_size, remove_mean):
    """Remove every row's mean per channel (channels last in a row) if asked."""
    if not remove_mean:
        return rows
    values = rows.reshape(len(rows), math.prod(patch_size), -1)
    return (values - values.mean(axis=1, keepdims=True)).reshape(rows.shape)


def _n_spatial(patch_size, X):
    """Spatial axes per image: from a tuple patch_size, else from the input."""
    if isinstance(patch_size, tuple):
        return len(patch_size)
    if isinstance(X, np.ndarray) or is_dask_array(X):
        return X.ndim - 1
    first = np.asarray(X[0]) if len(X) else np.empty((0, 0))
    return first.ndim


def _check_images(X, n_spatial):
    """Return the images of ``X`` as a list, and whether ``X`` was one array.

    An image has ``n_spatial`` axes, or one more for its channels (last).
    """
    as_array = not isinstance(X, list | tuple)
    if as_array:
        X = np.asarray(X)
        if X.ndim not in (n_spatial + 1, n_spatial + 2):
            raise ValueError(
                f"X must be an array of shape (n_images, *spatial_shape) with "
                f"{n_spatial} spatial axes (as patch_size), or (n_images, "
                f"*spatial_shape, n_channels), or a list of images; got an array of "
                f"shape {X.shape}"
            )
    images = [np.asarray(image) for image in X]
    if not images:
        raise ValueError("X contains no image: got an empty batch")
    for i, image in enumerate(images):
        if image.ndim not in (n_spatial, n_spatial + 1):
            raise ValueError(
                f"every image must have {n_spatial} spatial axes (as patch_size), "
                f"plus optionally a last channel axis; image {i} has shape "
                f"{image.shape}"
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


def _check_image_sizes(shapes, patch_size):
    for i, shape in enumerate(shapes):
        spatial = shape[: len(patch_size)]
        if any(s < p for s, p in zip(spatial, patch_size, strict=True)):
            raise ValueError(
                f"patch_size {patch_size} is larger than image {i}'s shape {shape}"
            )


def _check_model_features(model, n_features, patch_size):
    """The model must have been fitted on patches of ``n_features`` values."""
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
