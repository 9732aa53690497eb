"""Non-local Bayes denoising (NL-Bayes): the functional core and its estimator."""

import math
from dataclasses import dataclass, replace
from functools import partial
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from threadpoolctl import threadpool_limits

from ._denoise import DenoiserMixin
from ._extract import extract_patches
from ._neighbors import Claims, WindowSearch, _channels_last
from ._parallel import Progress, iter_tasks, resolve_n_jobs
from ._reconstruct import PatchAccumulator
from ._tiling import GroupLayout, GroupTile, group_tile
from ._validation import (
    check_finite,
    check_numeric_array,
    is_dask_array,
    output_float_dtype,
    spatial_shape_and_channels,
)

# Orthonormal opponent colour transform (rows Y, U, V): white Gaussian noise of
# deviation sigma stays white with deviation sigma in every channel.
OPPONENT = np.array(
    [
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
        [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
        [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)],
    ]
)
COLOUR_SPACES = ("opponent", "rgb")
BASIC_ESTIMATES = ("auto", "gaussian", "threshold", "both")
FINAL_ESTIMATES = ("auto", "bayes", "wiener", "mean")
# From this noise level (8-bit units) 'auto' averages the Bayes and Wiener final
# estimates of grey 2-D images: at s = 50 the mean measured 0.1 to 0.5 dB above
# either alone on camera, brick and gravel; at s = 15 and 25 0.1 dB below the
# Bayes estimate alone on most images.
MEAN_FINAL_FROM = 40
# Widest default search window: wider ones (IPOL's 45 at high noise) measured worse.
MAX_WINDOW = 23
# Groups estimated per batch: a batch of groups of 5x5 patches is a few MB.
GROUP_BATCH = 512
# The risk (SURE) of the final step takes the pilot as fixed, but the Gaussian
# basic estimate follows the noise of the very patches the final step filters
# more than the thresholding one does, which SURE cannot see: a claim block
# keeps the thresholded pilot unless its risk is higher by more than this, per
# value and in units of sigma ** 2 (0.01 measured 0.05 to 0.15 dB worse on
# brick, 0 0.26 dB at s = 25; 0.03 0.1 dB worse on coins at s = 50).
THRESHOLD_RISK_MARGIN = 0.02


@dataclass(frozen=True)
class StepSettings:
    """The parameters of one NL-Bayes step, resolved."""

    patch_size: int
    n_neighbors: int
    search_window: int
    step: tuple
    beta: float
    flat_threshold: float | None
    weighted: bool = False
    window: str = "uniform"
    shrinkage: float | None = None
    # Basic steps: "gaussian" (NL-Bayes' estimate of the group) or "threshold"
    # (hard thresholding in a fixed transform of the group, BM3D's first step);
    # final steps: "bayes" (NL-Bayes' second step) or "wiener" (BM3D's second).
    estimator: str = "gaussian"


def estimate_noise_sigma(image, *, channel_axis=None):
    """Estimate the standard deviation of white Gaussian noise in an image.

    The median absolute value of the image's finest Haar wavelet detail
    coefficients (high-pass along every spatial axis), divided by 0.6745
    (Donoho and Johnstone's robust estimator): fine texture is sparse in that
    band, noise is not. Colour images give the root mean square over channels.

    Parameters
    ----------
    image : array-like of shape (*spatial_shape) or with one channel axis
        The noisy image, at least 2 pixels along every spatial axis.
    channel_axis : int or None, default=None
        The axis of ``image`` holding channels.

    Returns
    -------
    sigma : float
        The estimated standard deviation, in the units of ``image``.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import estimate_noise_sigma
    >>> noisy = 0.5 + 0.1 * np.random.default_rng(0).standard_normal((128, 128))
    >>> round(estimate_noise_sigma(noisy), 2)
    0.1
    """
    image, _, channel_axis = _check_image(image, channel_axis)
    work = _channels_last(image, channel_axis).astype(np.float64, copy=False)
    for axis in range(work.ndim - 1):
        if work.shape[axis] < 2:
            raise ValueError(
                f"estimating the noise needs at least 2 pixels along every spatial "
                f"axis; got an image of shape {image.shape}"
            )
        even = work.shape[axis] // 2 * 2
        pairs = np.take(work, np.arange(even), axis=axis)
        shape = (*pairs.shape[:axis], even // 2, 2, *pairs.shape[axis + 1 :])
        pairs = pairs.reshape(shape)
        work = np.take(pairs, 0, axis=axis + 1) - np.take(pairs, 1, axis=axis + 1)
        work = work / math.sqrt(2)
    detail = work.reshape(-1, work.shape[-1])
    per_channel = np.median(np.abs(detail), axis=0) / 0.6745
    return float(np.sqrt(np.mean(per_channel**2)))


def _settings(
    sigma255,
    n_channels,
    ndim,
    *,
    patch_size=None,
    n_neighbors=None,
    search_window=None,
    step=None,
    beta=None,
    flat_threshold=1.0,
    shrinkage=None,
    basic="gaussian",
    final="bayes",
):
    """The settings of the steps, the user's else the noise-dependent defaults.

    Returns ``(gaussian, threshold, bayes, wiener)``: the settings of the basic
    estimates and of the final estimates, None for those not made (as
    ``basic`` and the resolved ``final`` say).
    """
    first, second = default_settings(sigma255, n_channels, ndim)
    if shrinkage is not None:
        first = replace(first, shrinkage=_check_shrinkage(shrinkage))
    resolved = []
    for index, default in enumerate((first, second)):
        p = _pick(patch_size, index, default.patch_size, "patch_size")
        settings = StepSettings(
            patch_size=p,
            n_neighbors=_pick(n_neighbors, index, default.n_neighbors, "n_neighbors"),
            search_window=_pick(
                search_window, index, default.search_window, "search_window"
            ),
            step=_default_step(p, ndim) if step is None else step,
            beta=_pick(beta, index, default.beta, "beta", integer=False),
            flat_threshold=flat_threshold if index == 0 else None,
            weighted=default.weighted,
            window=default.window,
            shrinkage=default.shrinkage,
            estimator=default.estimator,
        )
        resolved.append(settings)
    gaussian, bayes = resolved
    threshold = threshold_settings(ndim) if basic in ("threshold", "both") else None
    wiener = wiener_settings(ndim) if final in ("wiener", "mean") else None
    return (
        None if basic == "threshold" else gaussian,
        threshold,
        None if final == "wiener" else bayes,
        wiener,
    )


def threshold_settings(ndim):
    """The thresholding basic estimate: BM3D's first step, 8x8 patches.

    16 patches a group from a window of 39 origins, a reference every 3
    origins, the threshold 2.7 sigma (Dabov et al. 2007). The wider window
    than the Gaussian step's is what finds the repeats of a regular texture.
    """
    return StepSettings(
        patch_size=8,
        n_neighbors=16,
        search_window=39,
        step=(3,) * ndim,
        beta=2.7,
        flat_threshold=None,
        window="gaussian",
        estimator="threshold",
    )


def wiener_settings(ndim):
    """The Wiener final estimate: BM3D's second step, 8x8 patches.

    32 patches a group from a window of 39 origins, a reference every 3
    origins, on the thresholded basic estimate (Dabov et al. 2007).
    """
    return StepSettings(
        patch_size=8,
        n_neighbors=32,
        search_window=39,
        step=(3,) * ndim,
        beta=1.0,
        flat_threshold=None,
        weighted=True,
        window="gaussian",
        estimator="wiener",
    )


def _resolve_basic(basic, n_channels, spatial):
    """``basic`` with ``'auto'`` resolved: both estimates for grey 2-D images."""
    if basic not in BASIC_ESTIMATES:
        raise ValueError(f"basic must be one of {BASIC_ESTIMATES}, got {basic!r}")
    if basic != "auto":
        return basic
    side = threshold_settings(len(spatial)).patch_size
    grey_2d = n_channels == 1 and len(spatial) == 2 and min(spatial) >= side
    return "both" if grey_2d else "gaussian"


def _resolve_final(final, basic, sigma255, n_channels, spatial):
    """``final`` with ``'auto'`` resolved, for the resolved ``basic``.

    ``'auto'`` is the mean of both final estimates for grey 2-D images from
    ``MEAN_FINAL_FROM``, the Bayes estimate otherwise.
    """
    if final not in FINAL_ESTIMATES:
        raise ValueError(f"final must be one of {FINAL_ESTIMATES}, got {final!r}")
    thresholded = basic in ("threshold", "both")
    if final == "auto":
        grey_2d = n_channels == 1 and len(spatial) == 2
        noisy = sigma255 >= MEAN_FINAL_FROM
        return "mean" if thresholded and grey_2d and noisy else "bayes"
    if final != "bayes" and not thresholded:
        raise ValueError(
            f"final={final!r} filters with the statistics of the thresholded basic "
            f"estimate; pass basic='threshold' or 'both', got basic={basic!r}"
        )
    return final


def _check_shrinkage(shrinkage):
    """The first step's ``StepSettings.shrinkage`` for a user's ``shrinkage``."""
    if isinstance(shrinkage, str) and shrinkage == "ipol":
        return None
    positive = isinstance(shrinkage, Real) and not isinstance(shrinkage, bool)
    if positive and math.isfinite(shrinkage) and shrinkage > 0:
        return float(shrinkage)
    raise ValueError(
        f"shrinkage must be None, 'ipol' or a positive number, got {shrinkage!r}"
    )


def _pick(value, index, default, name, *, integer=True):
    """``value`` for both steps, its ``index``-th item for a pair, else ``default``."""
    if value is None:
        return default
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be a number or a pair (basic, final), got {value!r}"
            )
        value = value[index]
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        expected = "a positive int" if integer else "a positive number"
        raise ValueError(
            f"{name} must be {expected} or a pair of them (basic, final), got {value!r}"
        )
    return int(value) if integer else float(value)


def _default_step(patch_size, ndim):
    """IPOL's reference layout: every row, every (patch // 2)-th column."""
    return (1,) * (ndim - 1) + (max(1, patch_size // 2),)


def default_settings(sigma255, n_channels, ndim, *, beta_boost=0.2):
    """The noise-dependent parameters of both steps, for a noise level in 8-bit units.

    IPOL's tables (Lebrun, Buades and Morel 2013), changed where this
    implementation measured better: the final step has 6x6 patches and 30
    neighbours below s = 20 (IPOL: 5x5 and 15), 7x7 and 50 from 40 to 80
    (IPOL: 5x5 and 30); the final step searches the
    basic estimate in the first step's window, which is at most 23 origins wide
    (IPOL: up to 51); both betas are raised by 0.2; the flat-area threshold
    is 1.0 (IPOL: 1.05, given by the caller); both steps
    aggregate with a Gaussian window and skip only the references that belong
    to a group (no paste boost); the final step weights every group by the
    inverse of the number of dimensions its filter keeps.

    Colour images shrink the eigenvalues of the first step optimally
    (:func:`_optimal_gain`, noise scaled by 0.65) instead of with IPOL's gain,
    which measured +0.07 dB on ``coffee`` and ``rocket`` at s = 25. Grey images
    keep IPOL's gain (the user's ``shrinkage`` overrides either): 0.65 measured
    +0.08 dB on ``moon``, ``cell``, a grey ``astronaut``, ``text`` and ``page``
    at s = 15, 25 and 50, but costs ``camera`` 0.1 dB at 15 and 25.
    """
    s = sigma255
    if n_channels == 1:
        p1 = 5 if s < 30 else 7
        k1 = 35 if s < 10 else 45 if s < 30 else 90 if s < 80 else 100
        p2, k2 = (
            (6, 30) if s < 20 else (5, 25) if s < 40 else (7, 50) if s < 80 else (5, 45)
        )
        b1 = 1.1 if s < 15 else 1.0 if s < 70 else 0.9
        b2 = 1.1 if s < 15 else 1.0 if s < 35 else 0.9
    else:
        p1 = 3 if s < 20 else 5 if s < 50 else 7
        p2 = 3 if s < 50 else 5 if s < 70 else 7
        k1, k2 = 3 * p1 * p1, 3 * p2 * p2
        b1, b2 = 1.0, 1.2 if s < 50 else 1.0
    window = min((k1 // 2) | 1, MAX_WINDOW)
    first = StepSettings(
        p1,
        k1,
        window,
        _default_step(p1, ndim),
        b1 + beta_boost,
        1.0,
        window="gaussian",
        shrinkage=None if n_channels == 1 else 0.65,
    )
    final = StepSettings(
        p2,
        k2,
        window,
        _default_step(p2, ndim),
        b2 + beta_boost,
        None,
        weighted=True,
        window="gaussian",
        estimator="bayes",
    )
    return first, final


def denoise_nl_bayes(
    image,
    noise_sigma,
    *,
    channel_axis=None,
    patch_size=None,
    n_neighbors=None,
    search_window=None,
    step=None,
    beta=None,
    flat_threshold=1.0,
    shrinkage=None,
    colour_space="opponent",
    basic="auto",
    final="auto",
    data_range=None,
    n_jobs=None,
    verbose=0,
):
    """Denoise an image with the two-step non-local Bayes algorithm (NL-Bayes).

    Every reference patch gathers its most similar patches within a search
    window (:func:`search_similar_patches`); the group is modelled as Gaussian,
    every patch of it is replaced by its Bayesian (Wiener) estimate, and the
    estimates of all groups are averaged back into an image
    (:class:`PatchAccumulator`). The first step takes each group's mean and
    covariance from the noisy patches themselves and gives a *basic* estimate;
    the second searches the groups again on the basic estimate and takes their
    statistics from it, which gives the *final* estimate. Lebrun, Buades and
    Morel, "A Nonlocal Bayesian Image Denoising Algorithm", SIAM J. Imaging
    Sciences 6(3), 2013, and "Implementation of the Non-Local Bayes (NL-Bayes)
    Image Denoising Algorithm", IPOL 2013.

    Parameters
    ----------
    image : array-like or dask array of shape (*spatial_shape) or with one \
channel axis
        The noisy image (a signal, a 2-D image, a volume, ...), real numbers. A
        dask array gives a lazy dask array with its chunks (see Notes).
    noise_sigma : float or None
        Standard deviation of the (white, Gaussian) noise, in the units of
        ``image``; ``None`` estimates it (:func:`estimate_noise_sigma`; not for
        a dask array). 0 returns the image (as float) unchanged.
    channel_axis : int or None, default=None
        The axis of ``image`` holding channels (colour).
    patch_size : int or pair of int, default=None
        Side of the (square, cubic, ...) patches of both steps, or the pair
        ``(basic, final)``. ``None`` picks it from the noise level (see Notes),
        as do the other ``None`` defaults.
    n_neighbors : int or pair of int, default=None
        Similar patches per group (the reference included), both steps or
        ``(basic, final)``; capped at the number of patches in a search window.
    search_window : int or pair of int, default=None
        Candidate origins along each axis of the search window, which is
        shifted at the image's edge (see :func:`search_similar_patches`).
    step : int or tuple of int, default=None
        Stride of the grid of reference patches along each spatial axis, both
        steps. ``None`` is 1 along every axis but the last and half the patch
        side along the last. A reference patch that already belongs to a group
        formed in its claim block is skipped (IPOL's paste trick, see Notes).
    beta : float or pair of float, default=None
        Factor of the noise variance in the estimates (``beta * sigma ** 2``),
        both steps or ``(basic, final)``.
    flat_threshold : float or None, default=1.0
        In the first step, a group whose noisy values have a variance below
        ``flat_threshold * noise_sigma ** 2`` (per channel) is a flat area and
        every patch of it becomes the group's mean (IPOL uses 1.05, which
        measured worse here); ``None`` turns this off.
    shrinkage : float, 'ipol' or None, default=None
        How the first step shrinks the eigenvalues of a group's covariance (see
        Notes). A positive number is the optimal shrinker of Gavish and Donoho
        for noise of variance ``shrinkage * noise_sigma ** 2``; ``'ipol'`` is
        IPOL's gain; ``None`` is 0.65 for colour images and ``'ipol'`` for grey
        ones, the better of the two on the images this implementation was tuned
        on (see :doc:`/nonlocal`).
    colour_space : {'opponent', 'rgb'}, default='opponent'
        For 3-channel images: ``'opponent'`` runs the first step in an
        orthonormal opponent colour space, searching on its luminance and
        estimating every channel on its own; ``'rgb'`` searches on all channels
        and estimates them together. The second step estimates all channels
        together either way (which no orthonormal colour transform changes).
        Images with another number of channels are treated as ``'rgb'``.
    basic : {'auto', 'gaussian', 'threshold', 'both'}, default='auto'
        The basic estimate(s) the second step takes its statistics from:
        NL-Bayes' Gaussian estimate of the first step, BM3D's hard
        thresholding of groups of 8x8 patches in a 3-D DCT (``'threshold'``,
        which finds the repeats of regular textures), or both, when every
        claim block takes the one whose final estimate has the lower risk
        (SURE); the second step then searches the thresholded one. ``'auto'``
        is ``'both'`` for single-channel 2-D images, ``'gaussian'`` otherwise
        (volumes and colour images, where it measured no better or too slow).
        The thresholding step is not tuned by ``patch_size`` and the other
        per-step parameters, which set the Gaussian and the final step.
    final : {'auto', 'bayes', 'wiener', 'mean'}, default='auto'
        The final estimate: NL-Bayes' second step (``'bayes'``), BM3D's
        empirical Wiener filter of groups of 8x8 patches in a 3-D DCT with the
        statistics of the thresholded basic estimate (``'wiener'``), or the
        mean of the two images (``'mean'``). ``'auto'`` is ``'mean'`` for
        single-channel 2-D images from a noise of 40/255 of the data range
        when ``basic`` includes ``'threshold'``, ``'bayes'`` otherwise. The
        Wiener step needs the thresholded basic estimate and, like it, is not
        tuned by the per-step parameters.
    data_range : float, default=None
        The intensity range the noise level is measured against to pick the
        defaults (``noise_sigma / data_range``): 1 for float images, the
        dtype's maximum for integer images when None.
    n_jobs : int, default=None
        Threads: rows of claim blocks are denoised ``n_jobs`` at once. ``None``
        means 1 (unless inside a :func:`joblib.parallel_config` context), -1
        every core. The result is the same, value for value, for any
        ``n_jobs``. Unused for a dask array, whose chunks are the tasks.
    verbose : int, default=0
        Report the progress over the reference patches on stderr (``tqdm``
        if installed).

    Returns
    -------
    denoised : ndarray of the shape of ``image``
        float32 for float32 input, float64 otherwise.

    Raises
    ------
    ValueError
        If ``noise_sigma`` is negative or not finite, the image holds NaN or
        infinity, or the patches are larger than the image.

    See Also
    --------
    NonLocalBayes : The estimator, for batches of images and grid searches.
    search_similar_patches : The search behind the groups.

    Notes
    -----
    For a group of patches :math:`P_i` (flattened) with mean :math:`m` and
    covariance :math:`C = U \\operatorname{diag}(\\lambda) U^T`, the first step
    estimates

    .. math:: \\hat{P}_i = m + U \\operatorname{diag}\\left(
              \\frac{(\\lambda_j - \\beta\\sigma^2)_+}{\\lambda_j}\\right)
              U^T (P_i - m),

    IPOL's :math:`(C - \\beta\\sigma^2 I) C^{-1}` with its negative eigenvalues
    set to 0. With a numeric ``shrinkage`` (colour images by default) these
    gains are those of the optimal shrinkage of the group's singular values
    (Gavish and Donoho 2017; see :doc:`/nonlocal`). The second step uses the
    mean :math:`m_b` and covariance :math:`C_b` of the same patches in the
    basic estimate,
    :math:`\\hat{P}_i = m_b + C_b (C_b + \\beta\\sigma^2 I)^{-1} (P_i - m_b)`,
    and weights each group by the inverse of the number of dimensions its
    filter keeps. Both steps aggregate with a Gaussian window. Pixels that no
    group reaches (rare) keep the noisy value after the first step and the
    basic one after the second.

    The defaults follow IPOL's tables with a few changes measured on this
    implementation; they depend on :math:`s = 255 \\sigma / \\text{data
    range}`, see :doc:`/nonlocal`. Memory is a few images plus one batch of
    512 groups per thread; time grows with ``n_neighbors``,
    ``search_window ** ndim`` and ``patch_size ** ndim``.

    A group claims the reference patches it holds only inside its own
    reference's *claim block*, a box of 64 pixels per axis anchored at the
    image's origin; the references are taken in C order. Which groups are
    formed is thus decided block by block, so the image can be cut into tiles:
    each tile (a dask chunk) is denoised from the whole claim blocks whose
    groups reach it, reading the chunk plus a halo of 64 pixels, a search
    window and a patch, per step. Each row of claim blocks is
    summed on its own and the rows are added in order, which makes every
    pixel's sums the same, value for value, in memory, with threads and in any
    dask chunking.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import denoise_nl_bayes
    >>> rng = np.random.default_rng(0)
    >>> clean = np.add.outer(np.sin(np.arange(48) / 6), np.cos(np.arange(40) / 5))
    >>> clean = (clean + 2) / 4
    >>> noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    >>> denoised = denoise_nl_bayes(noisy, 0.1)
    >>> denoised.shape
    (48, 40)
    >>> bool(np.abs(denoised - clean).mean() < np.abs(noisy - clean).mean() / 2)
    True
    """
    if colour_space not in COLOUR_SPACES:
        raise ValueError(
            f"colour_space must be one of {COLOUR_SPACES}, got {colour_space!r}"
        )
    lazy = is_dask_array(image)
    if lazy:
        from ._dask import check_dask_image

        image, channel_axis = check_dask_image(image, channel_axis, noise_sigma)
        dtype = output_float_dtype(image.dtype)
        work = (
            image[..., None]
            if channel_axis is None
            else np.moveaxis(image, channel_axis, -1)
        ).astype(np.float64)
    else:
        image, dtype, channel_axis = _check_image(image, channel_axis)
        work = _channels_last(image, channel_axis).astype(np.float64, copy=False)
    spatial, n_channels = work.shape[:-1], work.shape[-1]
    basic = _resolve_basic(basic, n_channels, spatial)
    if noise_sigma is None:
        noise_sigma = estimate_noise_sigma(image, channel_axis=channel_axis)
    sigma = _check_sigma(noise_sigma)
    sigma255 = sigma / _data_range(data_range, image.dtype) * 255
    final = _resolve_final(final, basic, sigma255, n_channels, spatial)
    steps = _settings(
        sigma255,
        n_channels,
        len(spatial),
        patch_size=patch_size,
        n_neighbors=n_neighbors,
        search_window=search_window,
        step=step,
        beta=beta,
        flat_threshold=flat_threshold,
        shrinkage=shrinkage,
        basic=basic,
        final=final,
    )
    _check_patch_fits(spatial, steps)
    layouts = [None if s is None else _layout(spatial, s) for s in steps]
    if sigma == 0 or (not lazy and np.ptp(work) == 0):
        return _restore(work, image.shape, channel_axis, dtype)
    opponent = colour_space == "opponent" and n_channels == 3
    if lazy:
        from ._dask import nl_bayes_step_dask

        estimate = _two_steps(
            work,
            steps,
            layouts,
            opponent,
            partial(nl_bayes_step_dask, sigma=sigma),
        )
        estimate = _restore(estimate, image.shape, channel_axis, dtype)
        if estimate.chunks != image.chunks:
            estimate = estimate.rechunk(image.chunks)
        return estimate
    progress = Progress(
        sum(layout.references.n_patches for layout in layouts if layout is not None),
        "NL-Bayes",
        verbose=verbose,
        unit="references",
    )
    run_step = partial(
        _whole_image_step,
        sigma=sigma,
        n_workers=resolve_n_jobs(n_jobs),
        on_batch=progress.update,
    )
    # BLAS on one thread whatever n_jobs, so that n_jobs changes no bit (a
    # multi-threaded BLAS rounds the larger covariances of colour and volumes
    # differently); the threads of n_jobs are the parallelism.
    with threadpool_limits(limits=1, user_api="blas"):
        estimate = _two_steps(work, steps, layouts, opponent, run_step)
    progress.close()
    return _restore(estimate, image.shape, channel_axis, dtype)


def _two_steps(work, steps, layouts, opponent, run_step):
    """The basic estimates and the final estimate of a channels-last float64 image.

    ``steps`` are the settings of the Gaussian and thresholding basic
    estimates and of the Bayes and Wiener final estimates (any but one basic
    and one final may be None), ``layouts`` theirs.
    ``run_step(noisy, guide, pilot, settings, layout, joint)`` runs one step,
    in memory or on dask arrays. With two basic estimates the Bayes step
    searches the last and chooses its statistics per claim block; the Wiener
    step searches and filters with the thresholded one. Two final estimates
    are averaged.
    """
    noisy = _colour_transform(work, OPPONENT) if opponent else work
    guide = noisy[..., :1] if opponent else noisy
    basics = []
    for settings, layout in zip(steps[:2], layouts[:2], strict=True):
        if settings is not None:
            basic = run_step(noisy, guide, None, settings, layout, not opponent)
            if opponent:
                basic = _colour_transform(basic, OPPONENT.T)
            basics.append(basic)
    bayes, wiener = steps[2:]
    finals = []
    if bayes is not None:
        pilots = basics[0] if len(basics) == 1 else np.concatenate(basics, axis=-1)
        finals.append(run_step(work, basics[-1], pilots, bayes, layouts[2], True))
    if wiener is not None:
        thresholded = basics[-1]
        finals.append(
            run_step(work, thresholded, thresholded, wiener, layouts[3], True)
        )
    return finals[0] if len(finals) == 1 else (finals[0] + finals[1]) / 2


def _whole_image_step(
    noisy, guide, pilot, settings, layout, joint, *, sigma, n_workers, on_batch
):
    tile = group_tile(layout, (0,) * layout.ndim, layout.image_shape)
    return nl_bayes_step(
        noisy,
        guide,
        pilot,
        sigma,
        settings,
        tile,
        joint=joint,
        n_workers=n_workers,
        on_batch=on_batch,
    )


def _colour_transform(image, matrix):
    """``image @ matrix.T`` over the channels, one pixel at a time.

    Written out rather than a matrix product, whose rounding depends on how
    the array is cut: the same value for a pixel in memory and in a dask chunk.
    """
    return np.stack(
        [sum(image[..., c] * row[c] for c in range(len(row))) for row in matrix],
        axis=-1,
    )


def _layout(spatial, settings):
    ndim = len(spatial)
    return GroupLayout.of(
        spatial,
        (settings.patch_size,) * ndim,
        (settings.search_window,) * ndim,
        settings.step,
    )


def nl_bayes_step(
    noisy, guide, pilot, sigma, settings, tile, *, joint, n_workers=1, on_batch=None
):
    """One NL-Bayes step on the input box of ``tile``; return the tile's pixels.

    ``noisy``, ``guide`` and ``pilot`` are channels-last images of the tile's
    input box (``tile.input_shape``). ``guide`` is where similar patches are
    searched; ``pilot`` is None for the first step (group statistics from the
    noisy patches), else the basic estimate the statistics come from, or
    several stacked on the channel axis, among which each claim block picks
    the one of lowest risk (:meth:`_StepWork.row_sums`).
    ``joint`` estimates all channels of a patch together, else each channel on
    its own.

    The references are taken row of claim blocks by row (``n_workers`` rows at
    once), each row summed into a canvas of its own, and the canvases are
    added in order: the sums of every pixel are then the same, value for
    value, whatever the tile and the number of threads.
    """
    # Pixels no group reaches keep the noisy value, or the (first) pilot's.
    fallback = noisy if pilot is None else pilot[..., : noisy.shape[-1]]
    fallback = fallback[tile.output_crop]
    if tile.n_references == 0:
        return np.array(fallback, dtype=np.float64)
    noisy, guide = np.ascontiguousarray(noisy), np.ascontiguousarray(guide)
    pilot = None if pilot is None else np.ascontiguousarray(pilot)
    layout = tile.layout
    n_neighbors = min(settings.n_neighbors, math.prod(layout.window))
    search = WindowSearch(guide, layout.patch_size, layout.window, n_neighbors)
    claims = Claims(guide.shape[:-1], tile.claim_shift(), layout.block)
    work = _StepWork(noisy, pilot, search, claims, tile, sigma, settings, joint)
    rows = [partial(work.row_sums, run, on_batch) for run in tile.block_rows()]
    output_rows = (tile.output_crop[0].start, tile.output_crop[0].stop)
    values = np.zeros(fallback.shape)
    weights = np.zeros(fallback.shape[:-1])
    for (a, b), row_values, row_weights in iter_tasks(rows, n_workers):
        lo, hi = max(a, output_rows[0]), min(b, output_rows[1])
        if hi <= lo:
            continue
        crop = (slice(lo - a, hi - a), *tile.output_crop[1:])
        values[lo - output_rows[0] : hi - output_rows[0]] += row_values[crop]
        weights[lo - output_rows[0] : hi - output_rows[0]] += row_weights[crop]
    covered = weights > 0
    result = np.array(fallback, dtype=np.float64)
    result[covered] = values[covered] / weights[covered][:, None]
    return result


@dataclass(frozen=True)
class _StepWork:
    """What the rows of claim blocks of one step on one tile share (read only,
    but for the claims)."""

    noisy: np.ndarray
    pilot: np.ndarray | None
    search: WindowSearch
    claims: Claims
    tile: GroupTile
    sigma: float
    settings: StepSettings
    joint: bool

    def row_sums(self, run, on_batch=None):
        """The weighted sums of the groups of one row of claim blocks.

        Returns the row's pixels ``a:b`` along axis 0 (input-local; all of the
        input along the other axes), the sum of its weighted estimates
        (channels last) and the sum of their weights. With several candidate
        pilots, every group of a claim block is estimated with each, and the
        block adds the sums of the candidate of lowest total risk (see
        :meth:`_choose`): the choice is made block by block, as the groups are.
        """
        a, b = self.tile.row_box(*run)
        n_channels = self.noisy.shape[-1]
        values = np.zeros((b - a, *self.tile.input_shape[1:], n_channels))
        weights = np.zeros(values.shape[:-1])
        for block in self._claim_blocks(self.tile.references(*run)):
            starts = self.tile.window_starts(block)
            # The block's box: its rows' along axis 0, its windows' on the others.
            reach = [self.tile.layout.reach(axis) for axis in range(1, starts.shape[1])]
            lo = [a, *starts[:, 1:].min(axis=0)]
            hi = [b, *(starts[:, 1:].max(axis=0) + reach)]
            shape = tuple(int(stop - start) for start, stop in zip(lo, hi, strict=True))
            candidates = [
                _BlockSums(
                    shape, self.tile.layout.patch_size, n_channels, self.settings
                )
                for _ in range(self.n_candidates)
            ]
            for start in range(0, len(block), GROUP_BATCH):
                batch = self.search.positions_of(block[start : start + GROUP_BATCH])
                members, _, _ = self.search.nearest(
                    batch,
                    self.search.positions_of(starts[start : start + GROUP_BATCH]),
                    self.claims,
                )
                if len(members):
                    origins = self.search.origins_of(members.reshape(-1))
                    estimates = self._estimates(origins, members.shape)
                    for candidate, estimate in zip(candidates, estimates, strict=True):
                        candidate.add(*estimate, origins - np.array(lo))
                if on_batch is not None:
                    on_batch(len(batch))
            best = self._choose(candidates)
            box = (slice(0, b - a), *map(slice, lo[1:], hi[1:]))
            best.add_to(values[box], weights[box])
        return (a, b), values, weights

    def _choose(self, candidates):
        """The candidate of lowest risk, the later ones (thresholded) by a margin."""
        margin = THRESHOLD_RISK_MARGIN * self.sigma**2
        risks = [
            c.risk - (i > 0) * margin * c.n_values for i, c in enumerate(candidates)
        ]
        return candidates[int(np.argmin(risks))]

    @property
    def n_candidates(self):
        """How many pilots the final step chooses from (stacked on the channels)."""
        if self.pilot is None:
            return 1
        return self.pilot.shape[-1] // self.noisy.shape[-1]

    def _claim_blocks(self, references):
        """The input-local ``references`` of a row split by claim block, C order.

        The blocks come in C order of their place along the axes after the
        first, and each keeps its references' order.
        """
        if references.shape[1] == 1:
            return [references]
        shift = self.tile.claim_shift()[1:]
        places = (references[:, 1:] + shift) // self.tile.layout.block
        _, block_of, counts = np.unique(
            places, axis=0, return_inverse=True, return_counts=True
        )
        order = np.argsort(block_of.reshape(-1), kind="stable")
        return np.split(references[order], np.cumsum(counts)[:-1])

    def _estimates(self, origins, shape):
        """Per candidate, ``(estimate, weights, risk)`` of the groups at ``origins``.

        The first step has one candidate and no risk (``None``).
        """
        patch_size = self.tile.layout.patch_size
        noisy_groups = _groups(self.noisy, patch_size, origins, shape)
        if self.pilot is None:
            estimate = _basic_estimate(
                noisy_groups, self.sigma, self.settings, self.joint
            )
            return [(*estimate, None)]
        pilot_groups = _groups(self.pilot, patch_size, origins, shape)
        c = noisy_groups.shape[-1]
        return [
            _final_estimate(
                noisy_groups,
                pilot_groups[..., i : i + c],
                self.sigma,
                self.settings,
                self.joint,
            )
            for i in range(0, pilot_groups.shape[-1], c)
        ]


class _BlockSums:
    """One candidate's weighted sums of the estimates of a claim block's groups.

    On a box of ``shape`` pixels (channels last for the values); ``risk`` is
    the sum of the groups' risks.
    """

    def __init__(self, shape, patch_size, n_channels, settings):
        window = settings.window
        self.patch_size = patch_size
        self.values = PatchAccumulator(
            (*shape, n_channels), patch_size, channel_axis=-1, weights=window
        )
        self.weights = (
            PatchAccumulator(shape, patch_size, weights=window)
            if settings.weighted
            else None
        )
        self.risk = 0.0
        self.n_values = 0

    def add(self, estimate, group_weights, risk, origins):
        """Add the groups' ``estimate`` (n_groups, k, d, c) at box ``origins``."""
        k, n_channels = estimate.shape[1], estimate.shape[-1]
        if self.weights is not None:
            estimate = estimate * group_weights[:, None, None, None]
            per_patch = np.repeat(group_weights, k).reshape(
                (-1,) + (1,) * len(self.patch_size)
            )
            self.weights.add(
                np.broadcast_to(per_patch, (len(per_patch), *self.patch_size)),
                origins,
            )
        self.values.add(estimate.reshape((-1, *self.patch_size, n_channels)), origins)
        if risk is not None:
            self.risk += float(risk.sum())
        self.n_values += estimate.size

    def add_to(self, values, weights):
        """Add the sums to ``values`` and ``weights`` (arrays of the box's shape)."""
        if self.n_values == 0:
            return
        values += self.values.value_sum
        weights += (
            self.values.weight_sum if self.weights is None else self.weights.value_sum
        )


def _groups(image, patch_size, origins, shape):
    """Patches at ``origins`` as (n_groups, n_members, n_values_per_channel, C)."""
    patches = extract_patches(image, patch_size, origins=origins, channel_axis=-1)
    n_channels = image.shape[-1]
    return patches.reshape(shape[0], shape[1], -1, n_channels)


def _basic_estimate(groups, sigma, settings, joint):
    """First step: the estimate of the noisy groups, and the groups' weights."""
    if settings.estimator == "threshold":
        return _threshold_estimate(groups, sigma, settings, joint)
    return _gaussian_estimate(groups, sigma, settings, joint)


def _threshold_estimate(groups, sigma, settings, joint):
    """Hard thresholding of a group's coefficients in a fixed 3-D transform.

    BM3D's first step (Dabov, Foi, Katkovnik and Egiazarian, IEEE Trans. Image
    Process. 16(8), 2007) with an orthonormal DCT along every patch axis and
    along the group: coefficients below ``beta * sigma`` are set to zero (the
    group's mean, per channel, is always kept), and the group
    weighs the inverse of the number of coefficients kept. A regular texture
    is sparse in this transform with a few similar patches, where estimating
    a covariance needs many.
    """
    transform = _GroupDCT(groups.shape, settings.patch_size, joint)
    coefficients = transform.forward(groups)
    keep = np.abs(coefficients) > settings.beta * sigma
    keep[:, 0, : transform.n_joint] = True  # the means of the group's channels
    kept = keep.reshape(groups.shape[0], -1).sum(axis=1)
    return transform.inverse(coefficients * keep), 1 / kept


def _wiener_estimate(noisy_groups, pilot_groups, sigma, settings, joint):
    """Empirical Wiener filter of a group's coefficients in the 3-D DCT.

    BM3D's second step: a coefficient :math:`Z` of the noisy group is
    multiplied by :math:`B^2 / (B^2 + \\beta\\sigma^2)`, :math:`B` the same
    coefficient of the basic estimate's group; the group weighs the inverse
    of the sum of the squared gains (the variance its estimate keeps, in
    units of sigma ** 2). The risk is SURE with the basic estimate fixed, as
    :func:`_bayes_estimate`'s.
    """
    transform = _GroupDCT(noisy_groups.shape, settings.patch_size, joint)
    noisy = transform.forward(noisy_groups)
    pilot = transform.forward(pilot_groups) ** 2
    gain = pilot / (pilot + settings.beta * sigma**2)
    estimate = transform.inverse(gain * noisy)
    n_groups = len(noisy_groups)
    residual = ((1 - gain) * noisy).reshape(n_groups, -1)
    divergence = gain.reshape(n_groups, -1).sum(axis=1)
    risk = np.einsum("ij,ij->i", residual, residual) + 2 * sigma**2 * divergence
    variance = (gain**2).reshape(n_groups, -1).sum(axis=1)
    return estimate, 1 / np.maximum(variance, 1e-3), risk


class _GroupDCT:
    """The orthonormal DCT along the patch axes and along the group of groups
    of ``shape`` (n_groups, k, d, c), channels on their own."""

    def __init__(self, shape, patch_side, joint):
        _, k, d, _ = self.shape = shape
        self.joint = joint
        self.n_joint = shape[-1] if joint else 1  # channels per row
        self.along_patch = np.kron(_patch_dct(patch_side, d), np.eye(self.n_joint))
        self.along_group = _dct_matrix(k)

    def forward(self, groups):
        rows = _as_rows(groups, self.joint)
        return np.matmul(self.along_group, rows @ self.along_patch.T)

    def inverse(self, coefficients):
        rows = np.matmul(self.along_group.T, coefficients @ self.along_patch)
        return _from_rows(rows, self.shape, self.joint)


def _dct_matrix(n):
    """The orthonormal DCT-II of length ``n`` as a matrix (``D @ x``)."""
    j = np.arange(n)
    matrix = np.cos(np.pi * (j[None, :] + 0.5) * j[:, None] / n) * math.sqrt(2 / n)
    matrix[0] /= math.sqrt(2)
    return matrix


def _patch_dct(patch_side, n_values):
    """The separable DCT of a flattened patch of ``n_values`` values, C order."""
    matrix = np.ones((1, 1))
    while matrix.shape[0] < n_values:
        matrix = np.kron(matrix, _dct_matrix(patch_side))
    return matrix


def _gaussian_estimate(groups, sigma, settings, joint):
    """First step: Gaussian estimate from the noisy groups' own statistics.

    Flat groups (IPOL's homogeneous areas) become their mean without the
    eigendecomposition, which is most of the first step's time.
    """
    n_groups, k = groups.shape[:2]
    flat = _flat_groups(groups, sigma, settings.flat_threshold)
    estimate = np.broadcast_to(groups.mean(axis=(1, 2), keepdims=True), groups.shape)
    estimate = estimate.copy()
    kept = np.zeros(n_groups)
    busy = ~flat
    if busy.any():
        values = _as_rows(groups[busy], joint)
        mean = values.mean(axis=1, keepdims=True)
        centred = values - mean
        covariance = np.matmul(centred.transpose(0, 2, 1), centred) / max(k - 1, 1)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        if settings.shrinkage is None:
            noise = settings.beta * sigma**2
            gain = np.clip(eigenvalues - noise, 0, None)
            gain /= np.maximum(eigenvalues, 1e-300)
        else:
            gain = _optimal_gain(eigenvalues, k, settings.shrinkage * sigma**2)
        rows = mean + _filter(centred, eigenvectors, gain)
        estimate[busy] = _from_rows(rows, groups[busy].shape, joint)
        kept[busy] = gain.reshape(int(busy.sum()), -1).sum(axis=1)
    return estimate, 1 / np.maximum(kept, 1)


def _final_estimate(noisy_groups, pilot_groups, sigma, settings, joint):
    """Second step: ``(estimate, weights, risk)`` of the groups."""
    if settings.estimator == "wiener":
        return _wiener_estimate(noisy_groups, pilot_groups, sigma, settings, joint)
    return _bayes_estimate(noisy_groups, pilot_groups, sigma, settings, joint)


def _bayes_estimate(noisy_groups, pilot_groups, sigma, settings, joint):
    """Second step: Wiener filter with the statistics of the basic estimate.

    Returns the estimate, the groups' weights and their risk: Stein's unbiased
    estimate of the squared error (less the constant ``sigma ** 2`` per value),
    ``|P - P_hat| ** 2 + 2 sigma ** 2 div``, where the divergence of the filter
    of a group of ``k`` patches is ``k`` times the trace of
    :math:`C_b (C_b + \\beta\\sigma^2 I)^{-1}` (the basic estimate taken as
    fixed).
    """
    k = noisy_groups.shape[1]
    noisy = _as_rows(noisy_groups, joint)
    pilot = _as_rows(pilot_groups, joint)
    mean = pilot.mean(axis=1, keepdims=True)
    centred = pilot - mean
    covariance = np.matmul(centred.transpose(0, 2, 1), centred) / max(k - 1, 1)
    # C (C + tau I)^-1 = I - tau (C + tau I)^-1, and C + tau I is positive
    # definite: one inverse per group instead of an eigendecomposition.
    noise = settings.beta * sigma**2
    inverse = np.linalg.inv(covariance + noise * np.eye(covariance.shape[-1]))
    rows = noisy - noise * np.matmul(noisy - mean, inverse)
    kept = covariance.shape[-1] - noise * np.trace(inverse, axis1=1, axis2=2)
    kept = kept.reshape(noisy_groups.shape[0], -1).sum(axis=1)
    estimate = _from_rows(rows, noisy_groups.shape, joint)
    residual = (noisy_groups - estimate).reshape(len(kept), -1)
    risk = np.einsum("ij,ij->i", residual, residual) + 2 * sigma**2 * k * kept
    return estimate, 1 / np.maximum(kept, 1), risk


def _optimal_gain(eigenvalues, k, noise):
    """Gains of the optimal (Frobenius) shrinkage of a group's singular values.

    Gavish and Donoho, "Optimal Shrinkage of Singular Values", IEEE Trans.
    Inf. Theory 63(4), 2017: the ``k`` centred patches of ``d`` values are a
    low-rank signal plus white noise of variance ``noise``; with ``m, n`` the
    smaller and larger of ``d, k - 1``, ``r = m / n`` and ``y ** 2`` an
    eigenvalue in units of ``noise * n / (k - 1)``, a singular value is
    multiplied by ``sqrt((y**2 - r - 1)**2 - 4 r) / y**2`` above the noise's
    Marchenko-Pastur edge ``(1 + sqrt(r)) ** 2`` and killed below it.
    """
    d = eigenvalues.shape[-1]
    m, n = min(d, k - 1), max(d, k - 1, 1)
    ratio = m / n
    y2 = eigenvalues * max(k - 1, 1) / (n * noise)
    root = np.sqrt(np.clip((y2 - ratio - 1) ** 2 - 4 * ratio, 0, None))
    keep = y2 > (1 + math.sqrt(ratio)) ** 2
    return np.where(keep, root / np.maximum(y2, 1e-300), 0.0)


def _filter(centred, eigenvectors, gain):
    """``centred @ U diag(gain) U^T`` for every group."""
    projected = np.matmul(centred, eigenvectors)
    return np.matmul(projected * gain[:, None, :], eigenvectors.transpose(0, 2, 1))


def _flat_groups(groups, sigma, threshold):
    """Groups whose noisy values vary no more than the noise, channel by channel."""
    n_groups, c = groups.shape[0], groups.shape[-1]
    if threshold is None:
        return np.zeros(n_groups, dtype=bool)
    variance = groups.reshape(n_groups, -1, c).var(axis=1, ddof=1).sum(axis=-1)
    return variance <= threshold * c * sigma**2


def _as_rows(groups, joint):
    """(n_groups, k, d, c) as rows: (n_groups, k, d * c) or (n_groups * c, k, d)."""
    n_groups, k, d, c = groups.shape
    if joint:
        return groups.reshape(n_groups, k, d * c)
    return groups.transpose(0, 3, 1, 2).reshape(n_groups * c, k, d)


def _from_rows(rows, shape, joint):
    n_groups, k, d, c = shape
    if joint:
        return rows.reshape(shape)
    return rows.reshape(n_groups, c, k, d).transpose(0, 2, 3, 1)


def _check_image(image, channel_axis):
    """Validate an image; return it, its output dtype and its channel axis."""
    image = check_numeric_array(image, "image")
    check_finite(image, "image", "non-local Bayes denoising")
    if image.ndim == 0:
        raise ValueError("image must have at least one axis, got a scalar")
    _, _, channel_axis = spatial_shape_and_channels(image.shape, channel_axis)
    return image, output_float_dtype(image.dtype), channel_axis


def _check_sigma(noise_sigma):
    if isinstance(noise_sigma, bool) or not isinstance(noise_sigma, Real):
        raise TypeError(
            f"noise_sigma must be a real number or None, got {noise_sigma!r}"
        )
    if not math.isfinite(noise_sigma) or noise_sigma < 0:
        raise ValueError(
            f"noise_sigma must be a finite number >= 0 (the standard deviation of "
            f"the noise), got {noise_sigma}"
        )
    return float(noise_sigma)


def _data_range(data_range, dtype):
    if data_range is None:
        return float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0
    if (
        isinstance(data_range, bool)
        or not isinstance(data_range, Real)
        or not (math.isfinite(data_range) and data_range > 0)
    ):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    return float(data_range)


def _check_patch_fits(spatial, steps):
    names = ("basic", "thresholding basic", "final", "Wiener final")
    for name, settings in zip(names, steps, strict=True):
        if settings is not None and any(s < settings.patch_size for s in spatial):
            fixed = name in (names[1], names[3])  # BM3D's 8x8 patches
            remedy = "basic='gaussian'" if fixed else "a smaller patch_size"
            raise ValueError(
                f"the {name} step's patch size {settings.patch_size} is larger than "
                f"the image's spatial shape {spatial}; pass {remedy}"
            )


def _restore(work, shape, channel_axis, dtype):
    """Channels-last float64 work array back to the input's layout and dtype."""
    if channel_axis is None:
        work = work[..., 0]
    else:
        work = np.moveaxis(work, -1, channel_axis)
    if is_dask_array(work):
        return work.astype(dtype)
    return np.ascontiguousarray(work, dtype=dtype).reshape(shape)


class NonLocalBayes(DenoiserMixin, TransformerMixin, BaseEstimator):
    """Denoise images with the two-step non-local Bayes algorithm (NL-Bayes).

    A scikit-learn transformer around :func:`denoise_nl_bayes` for batches of
    images: nothing is learned, so ``fit`` only validates, and ``transform``
    (or ``predict``) denoises every image on its own. ``score`` is the mean
    PSNR against clean images, so :class:`~sklearn.model_selection.GridSearchCV`
    can tune the parameters with the noisy images as ``X`` and the clean ones
    as ``y``.

    Parameters
    ----------
    noise_sigma : float, default=None
        Standard deviation of the noise, in the units of the images; ``None``
        estimates it on every image (:func:`estimate_noise_sigma`). 0 returns
        the images unchanged.
    channel_axis : int or None, default=None
        The axis of every image (not of the batch) holding channels: ``-1`` for
        colour images ``(n_images, height, width, n_channels)``; ``None`` for
        single-channel images ``(n_images, height, width)`` or volumes.
    patch_size : int or pair of int, default=None
        Patch side of both steps or ``(basic, final)``; ``None`` depends on the
        noise level, as do the other ``None`` defaults (see
        :func:`denoise_nl_bayes`).
    n_neighbors : int or pair of int, default=None
        Similar patches per group.
    search_window : int or pair of int, default=None
        Candidate origins along each axis of the search window.
    step : int or tuple of int, default=None
        Stride of the grid of reference patches.
    beta : float or pair of float, default=None
        Factor of the noise variance in the estimates.
    flat_threshold : float or None, default=1.0
        Flat-area test of the first step; ``None`` turns it off.
    shrinkage : float, 'ipol' or None, default=None
        Eigenvalue shrinkage of the first step: the optimal shrinker for noise
        ``shrinkage * noise_sigma ** 2``, or IPOL's gain (``'ipol'``); ``None``
        picks by the number of channels (see :func:`denoise_nl_bayes`).
    colour_space : {'opponent', 'rgb'}, default='opponent'
        Where the first step works on 3-channel images.
    basic : {'auto', 'gaussian', 'threshold', 'both'}, default='auto'
        Which basic estimate(s) the second step learns its statistics from;
        ``'auto'`` is ``'both'`` (chosen per claim block) for single-channel
        2-D images, ``'gaussian'`` otherwise. See :func:`denoise_nl_bayes`.
    final : {'auto', 'bayes', 'wiener', 'mean'}, default='auto'
        The final estimate: NL-Bayes' second step, BM3D's Wiener filter, or the
        mean of both; ``'auto'`` is ``'mean'`` for single-channel 2-D images
        from a noise of 40/255 of the data range, ``'bayes'`` otherwise. See
        :func:`denoise_nl_bayes`.
    data_range : float, default=None
        Intensity range the noise level is measured against for the defaults;
        1 for float images, the dtype's maximum for integer images when None.
    n_jobs : int, default=None
        Threads denoising each image (rows of claim blocks at once); ``None``
        means 1 unless in a :func:`joblib.parallel_config` context, ``-1``
        every core. The result does not depend on it.
    verbose : int, default=0
        Report progress on stderr (``tqdm`` if installed).

    See Also
    --------
    denoise_nl_bayes : The function doing the work, for one image.
    PatchDenoiser : Denoising with a learned patch model.

    Notes
    -----
    Images have 2 or more spatial axes. ``transform`` keeps the container: an
    array gives an array, a list of images (of any shapes) gives a list, and a
    dask array ``(n_images, *spatial_shape[, n_channels])`` a lazy dask array
    of the same chunks, equal to the in-memory result for any chunking (see
    :func:`denoise_nl_bayes`; ``noise_sigma`` must then be given). float32
    images give float32; everything else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import NonLocalBayes
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0, 1, 32), (2, 24, 1))
    >>> noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    >>> denoiser = NonLocalBayes(noise_sigma=0.1).fit(noisy)
    >>> denoiser.transform(noisy).shape
    (2, 24, 32)
    >>> bool(denoiser.score(noisy, clean) > 30)
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        "noise_sigma": [Interval(Real, 0, None, closed="left"), None],
        "channel_axis": [Integral, None],
        "patch_size": [Interval(Integral, 1, None, closed="left"), tuple, None],
        "n_neighbors": [Interval(Integral, 1, None, closed="left"), tuple, None],
        "search_window": [Interval(Integral, 1, None, closed="left"), tuple, None],
        "step": [Interval(Integral, 1, None, closed="left"), tuple, None],
        "beta": [Interval(Real, 0, None, closed="neither"), tuple, None],
        "flat_threshold": [Interval(Real, 0, None, closed="left"), None],
        "shrinkage": [
            Interval(Real, 0, None, closed="neither"),
            StrOptions({"ipol"}),
            None,
        ],
        "colour_space": [StrOptions(set(COLOUR_SPACES))],
        "basic": [StrOptions(set(BASIC_ESTIMATES))],
        "final": [StrOptions(set(FINAL_ESTIMATES))],
        "data_range": [Interval(Real, 0, None, closed="neither"), None],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        noise_sigma=None,
        *,
        channel_axis=None,
        patch_size=None,
        n_neighbors=None,
        search_window=None,
        step=None,
        beta=None,
        flat_threshold=1.0,
        shrinkage=None,
        colour_space="opponent",
        basic="auto",
        final="auto",
        data_range=None,
        n_jobs=None,
        verbose=0,
    ):
        self.noise_sigma = noise_sigma
        self.channel_axis = channel_axis
        self.patch_size = patch_size
        self.n_neighbors = n_neighbors
        self.search_window = search_window
        self.step = step
        self.beta = beta
        self.flat_threshold = flat_threshold
        self.shrinkage = shrinkage
        self.colour_space = colour_space
        self.basic = basic
        self.final = final
        self.data_range = data_range
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the images; nothing is learned.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape[, n_channels]) or list
            Noisy images.
        y : None
            Ignored; present for API consistency (``GridSearchCV`` passes the
            clean images here to score with).

        Returns
        -------
        self : NonLocalBayes
            The estimator itself.
        """
        self._check_batch(X)
        return self

    def transform(self, X):
        """Denoise every image of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_images, *spatial_shape[, n_channels]) or list
            Noisy images.

        Returns
        -------
        denoised : ndarray of shape X.shape, or list of ndarray
            An array for an array input, a list of images for a list.
        """
        self._validate_params()
        images, as_array = self._check_batch(X)
        denoised = [self._denoise(image) for image in images]
        if is_dask_array(X):
            import dask.array as da

            return da.stack(denoised)
        return np.stack(denoised) if as_array else denoised

    def _denoise(self, image):
        return denoise_nl_bayes(
            image,
            self.noise_sigma,
            channel_axis=self.channel_axis,
            patch_size=self.patch_size,
            n_neighbors=self.n_neighbors,
            search_window=self.search_window,
            step=self.step,
            beta=self.beta,
            flat_threshold=self.flat_threshold,
            shrinkage=self.shrinkage,
            colour_space=self.colour_space,
            basic=self.basic,
            final=self.final,
            data_range=self.data_range,
            n_jobs=self.n_jobs,
            verbose=self.verbose,
        )

    def _check_batch(self, X):
        """The images of ``X`` as a list, and whether ``X`` was one array.

        The images of a dask array stay lazy: their values are checked when
        they are computed.
        """
        minimum = 2 if self.channel_axis is None else 3
        as_array = not isinstance(X, list | tuple)
        if is_dask_array(X):
            if X.ndim < minimum + 1 or X.shape[0] == 0:
                raise ValueError(
                    f"X must be a dask array of shape (n_images, *spatial_shape"
                    f"{'' if self.channel_axis is None else ', n_channels'}) with at "
                    f"least one image and 2 spatial axes (channel_axis="
                    f"{self.channel_axis}); got shape {X.shape}"
                )
            return [X[i] for i in range(X.shape[0])], True
        if as_array:
            X = np.asarray(X)
            if X.ndim < minimum + 1:
                raise ValueError(
                    f"X must be an array of shape (n_images, *spatial_shape"
                    f"{'' if self.channel_axis is None else ', n_channels'}) with at "
                    f"least 2 spatial axes (channel_axis={self.channel_axis}), or a "
                    f"list of images; got an array of shape {X.shape}"
                )
        images = [np.asarray(image) for image in X]
        if not images:
            raise ValueError("X contains no image: got an empty batch")
        for i, image in enumerate(images):
            if image.ndim < minimum:
                raise ValueError(
                    f"every image must have at least 2 spatial axes (plus a channel "
                    f"axis with channel_axis={self.channel_axis}); image {i} has "
                    f"shape {image.shape}"
                )
            _check_image(image, self.channel_axis)
        return images, as_array

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = False
        tags.requires_fit = False
        return tags
