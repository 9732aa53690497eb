"""Image-quality metrics and scorers for model selection in image space.

:func:`peak_signal_noise_ratio` follows the conventions of
``skimage.metrics.peak_signal_noise_ratio``; :func:`mean_peak_signal_noise_ratio`
averages it over a batch of images; :data:`psnr_scorer` and
:func:`make_psnr_scorer` plug it into ``GridSearchCV(scoring=...)``.
"""

import numbers

import numpy as np

from ._validation import check_finite, check_numeric_array

__all__ = [
    "make_psnr_scorer",
    "mean_peak_signal_noise_ratio",
    "peak_signal_noise_ratio",
    "psnr_scorer",
]


def peak_signal_noise_ratio(image_true, image_test, *, data_range=None):
    """Compute the peak signal-to-noise ratio (PSNR) of an image, in decibels.

    ``PSNR = 10 * log10(data_range ** 2 / MSE)``, the convention of
    ``skimage.metrics.peak_signal_noise_ratio``.

    Parameters
    ----------
    image_true : array-like
        Ground-truth image, any number of dimensions.
    image_test : array-like of the same shape as ``image_true``
        Image to assess.
    data_range : float, default=None
        Distance between the smallest and largest possible values. By default it
        is read off the dtype of ``image_true`` as scikit-image does: the dtype's
        maximum if ``image_true`` has no negative value (1 for floats, 255 for
        uint8), else the width of the dtype's range (2 for floats); floats are
        assumed to lie in [-1, 1].

    Returns
    -------
    psnr : float
        The PSNR in dB; ``inf`` when the images are equal.

    Raises
    ------
    ValueError
        If the shapes differ, an image holds NaN or infinity, ``data_range`` is
        not positive, or ``data_range`` is None and ``image_true`` has values
        outside the range of its dtype.

    See Also
    --------
    mean_peak_signal_noise_ratio : The mean over a batch of images.
    make_psnr_scorer : A scorer for ``GridSearchCV``.

    Notes
    -----
    Unlike scikit-image, images of different dtypes give no warning (the data
    range still comes from ``image_true``), and equal images give ``inf`` without
    a division-by-zero warning. The squared error is averaged in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch.metrics import peak_signal_noise_ratio
    >>> clean = np.full((4, 4), 0.5)
    >>> round(peak_signal_noise_ratio(clean, clean + 0.1), 6)
    20.0
    """
    image_true, image_test = _check_pair(image_true, image_test)
    if data_range is None:
        data_range = _dtype_data_range(image_true)
    else:
        data_range = _check_data_range(data_range)
    mse = np.mean((image_true.astype(np.float64) - image_test.astype(np.float64)) ** 2)
    return _psnr_from_mse(mse, data_range)


def mean_peak_signal_noise_ratio(images_true, images_test, *, data_range=None):
    """Compute the mean PSNR over a batch of images.

    Each image (index along the first axis) gets its own PSNR, as
    :func:`peak_signal_noise_ratio` computes it; the result is their mean. This
    differs from the PSNR of the whole batch, which would average the squared
    errors first.

    Parameters
    ----------
    images_true : array-like of shape (n_images, ...) or list of array-like
        Ground-truth images, first axis indexing images; a list may hold images
        of different shapes.
    images_test : array-like or list of array-like
        Images to assess, each of the shape of its ground truth.
    data_range : float, default=None
        As in :func:`peak_signal_noise_ratio`; when None it is read off each
        ground-truth image.

    Returns
    -------
    psnr : float
        The mean PSNR in dB (``inf`` if any image is reproduced exactly).

    See Also
    --------
    peak_signal_noise_ratio : The PSNR of one image.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch.metrics import mean_peak_signal_noise_ratio
    >>> clean = np.full((2, 4, 4), 0.5)
    >>> noisy = clean + np.array([0.1, 0.01])[:, None, None]
    >>> round(mean_peak_signal_noise_ratio(clean, noisy, data_range=1), 6)
    30.0
    """
    images_true = _image_list(images_true, "images_true")
    images_test = _image_list(images_test, "images_test")
    if len(images_true) != len(images_test):
        raise ValueError(
            f"images_true and images_test must hold as many images, got "
            f"{len(images_true)} and {len(images_test)}"
        )
    values = [
        peak_signal_noise_ratio(true, test, data_range=data_range)
        for true, test in zip(images_true, images_test, strict=True)
    ]
    return float(np.mean(values))


def _image_list(images, name):
    """A batch of images as a list: the first axis of an array, or a sequence."""
    if isinstance(images, list | tuple):
        return list(images)
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(
            f"{name} must have shape (n_images, ...) with at least 2 axes, or be a "
            f"list of images, got shape {images.shape}"
        )
    return list(images)


def make_psnr_scorer(*, data_range=1.0, clip=(0.0, 1.0)):
    """Make a scorer that rates an image estimator by its mean PSNR.

    The scorer is a callable ``scorer(estimator, X, y)`` for
    ``GridSearchCV(scoring=...)`` and ``cross_val_score``: it computes the
    estimate ``estimator.predict(X)`` (or ``estimator.transform(X)`` when there
    is no ``predict``), clips it, and returns
    ``mean_peak_signal_noise_ratio(y, estimate)``. ``y`` holds the clean images
    matching the noisy images ``X``. Greater is better.

    Parameters
    ----------
    data_range : float or None, default=1.0
        Passed to :func:`mean_peak_signal_noise_ratio`. The default suits images
        scaled to [0, 1].
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        Clip the estimate to ``[clip[0], clip[1]]`` before scoring (the usual
        denoising protocol for images in [0, 1]); None leaves it as it is.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``.

    See Also
    --------
    psnr_scorer : The scorer with the default parameters.

    Examples
    --------
    >>> from skpatch.metrics import make_psnr_scorer
    >>> make_psnr_scorer(data_range=255, clip=(0, 255))
    make_psnr_scorer(data_range=255, clip=(0, 255))
    """
    if data_range is not None:
        _check_data_range(data_range)
    if clip is not None:
        _check_clip(clip)
    return _PSNRScorer(data_range, clip)


class _PSNRScorer:
    """Callable ``scorer(estimator, X, y)`` returning the mean PSNR of the estimate."""

    def __init__(self, data_range, clip):
        self.data_range = data_range
        self.clip = clip

    def __call__(self, estimator, X, y, sample_weight=None):
        if y is None:
            raise ValueError(
                "the PSNR scorer needs the clean images as y (the reference the "
                "estimate is compared with), got y=None"
            )
        if sample_weight is not None:
            raise ValueError("the PSNR scorer does not support sample_weight")
        predict = getattr(estimator, "predict", None) or estimator.transform
        estimate = _image_list(predict(X), "the estimate")
        if self.clip is not None:
            estimate = [np.clip(image, *self.clip) for image in estimate]
        return mean_peak_signal_noise_ratio(y, estimate, data_range=self.data_range)

    def __repr__(self):
        return f"make_psnr_scorer(data_range={self.data_range!r}, clip={self.clip!r})"


def _check_pair(image_true, image_test):
    image_true = _check_image(image_true, "image_true")
    image_test = _check_image(image_test, "image_test")
    if image_true.shape != image_test.shape:
        raise ValueError(
            f"image_true and image_test must have the same shape, got "
            f"{image_true.shape} and {image_test.shape}"
        )
    return image_true, image_test


def _check_image(image, name):
    image = check_numeric_array(image, name)
    check_finite(image, name, "PSNR")
    return image


def _check_data_range(data_range):
    if (
        not isinstance(data_range, numbers.Real)
        or isinstance(data_range, bool)
        or not np.isfinite(data_range)
        or data_range <= 0
    ):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    return float(data_range)


def _check_clip(clip):
    if (
        not isinstance(clip, tuple | list)
        or len(clip) != 2
        or not all(isinstance(c, numbers.Real) for c in clip)
        or not clip[0] < clip[1]
    ):
        raise ValueError(
            f"clip must be None or a pair (low, high) with low < high, got {clip!r}"
        )


def _dtype_data_range(image_true):
    """scikit-image's rule: the data range implied by the dtype of ``image_true``."""
    if image_true.dtype.kind == "b":
        return 1.0
    if image_true.dtype.kind == "f":
        dmin, dmax = -1.0, 1.0
    else:
        info = np.iinfo(image_true.dtype)
        dmin, dmax = float(info.min), float(info.max)
    true_min, true_max = image_true.min(), image_true.max()
    if true_min < dmin or true_max > dmax:
        raise ValueError(
            f"image_true has values in [{true_min}, {true_max}], outside the range "
            f"[{dmin}, {dmax}] assumed for its dtype {image_true.dtype}; pass "
            f"data_range explicitly"
        )
    return dmax if true_min >= 0 else dmax - dmin


def _psnr_from_mse(mse, data_range):
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(data_range**2 / mse))


psnr_scorer = make_psnr_scorer()
"""Mean-PSNR scorer for images in [0, 1]: data range 1, estimate clipped to [0, 1].

Use as ``GridSearchCV(estimator, param_grid, scoring=psnr_scorer)`` with the
noisy images as ``X`` and the clean images as ``y``.
"""
