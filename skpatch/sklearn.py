"""Drop-in replacements for ``sklearn.feature_extraction.image``'s patch tools.

:func:`extract_patches_2d`, :func:`reconstruct_from_patches_2d` and
:class:`PatchExtractor` have scikit-learn's signatures and give scikit-learn's
results (shapes, dtypes, patch order and, for ``max_patches``, the same random
draw for the same ``random_state``), but run on the skpatch engine:
reconstruction is vectorised instead of a Python loop over patches and pixels.
Replace ``from sklearn.feature_extraction.image import ...`` with
``from skpatch.sklearn import ...``.

Differences, all stricter: :func:`reconstruct_from_patches_2d` refuses a patch
count that does not match the image (scikit-learn silently uses the first
patches), and :class:`PatchExtractor` validates its parameters in ``transform``
too. For strides, padding, volumes and weighted averaging, use
:func:`skpatch.extract_patches`, :func:`skpatch.reconstruct_from_patches` and
:class:`skpatch.PatchExtractor`.
"""

from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    RealNotInt,
    validate_params,
)
from sklearn.utils.validation import validate_data

from ._extract import patch_view
from ._reconstruct import reconstruct_from_patches

__all__ = ["PatchExtractor", "extract_patches_2d", "reconstruct_from_patches_2d"]

_MAX_PATCHES = [
    Interval(RealNotInt, 0, 1, closed="neither"),
    Interval(Integral, 1, None, closed="left"),
    None,
]


def _n_patches_to_draw(n_all, max_patches):
    """scikit-learn's count: an int is capped at the total, a float is a fraction."""
    if not max_patches:
        return n_all
    if isinstance(max_patches, Integral):
        return min(int(max_patches), n_all)
    return int(max_patches * n_all)


@validate_params(
    {
        "image": [np.ndarray],
        "patch_size": [tuple, list],
        "max_patches": _MAX_PATCHES,
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def extract_patches_2d(image, patch_size, *, max_patches=None, random_state=None):
    """Reshape a 2-D image into a collection of patches (scikit-learn drop-in).

    Same signature and results as
    ``sklearn.feature_extraction.image.extract_patches_2d``: every patch at
    step 1, in row-major order of their top-left corners, or ``max_patches``
    patches drawn at random *with* replacement, in the order scikit-learn draws
    them.

    Parameters
    ----------
    image : ndarray of shape (image_height, image_width) or \
(image_height, image_width, n_channels)
        The image; colour channels last.
    patch_size : tuple of int (patch_height, patch_width)
        The dimensions of one patch.
    max_patches : int or float, default=None
        The number of patches to draw (capped at the total), or a fraction of
        them in (0, 1). None extracts all patches.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw of ``max_patches``.

    Returns
    -------
    patches : ndarray of shape (n_patches, patch_height, patch_width) or \
(n_patches, patch_height, patch_width, n_channels)
        A copy with the image's dtype; a single channel is dropped, as in
        scikit-learn.

    See Also
    --------
    skpatch.extract_patches : Any step, padding and number of dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch.sklearn import extract_patches_2d
    >>> image = np.arange(5 * 6 * 3).reshape(5, 6, 3)
    >>> extract_patches_2d(image, (2, 2)).shape
    (20, 2, 2, 3)
    >>> extract_patches_2d(image, (2, 2), max_patches=4, random_state=0).shape
    (4, 2, 2, 3)
    """
    i_h, i_w = image.shape[:2]
    p_h, p_w = patch_size
    if p_h > i_h:
        raise ValueError(
            f"patch height {p_h} is larger than the image height {i_h} "
            f"(patch_size {tuple(patch_size)}, image shape {image.shape})"
        )
    if p_w > i_w:
        raise ValueError(
            f"patch width {p_w} is larger than the image width {i_w} "
            f"(patch_size {tuple(patch_size)}, image shape {image.shape})"
        )
    image = check_array(image, allow_nd=True)
    image = image.reshape((i_h, i_w, -1))
    n_colors = image.shape[-1]
    view = patch_view(image, (p_h, p_w), channel_axis=-1)
    n_patches = _n_patches_to_draw(view.shape[0] * view.shape[1], max_patches)
    if max_patches:
        rng = check_random_state(random_state)
        rows = rng.randint(i_h - p_h + 1, size=n_patches)
        cols = rng.randint(i_w - p_w + 1, size=n_patches)
        patches = view[rows, cols]
    else:
        patches = view.reshape(-1, p_h, p_w, n_colors)
    if n_colors == 1:
        return patches.reshape(n_patches, p_h, p_w)
    return patches


@validate_params(
    {"patches": [np.ndarray], "image_size": [tuple, Hidden(list)]},
    prefer_skip_nested_validation=True,
)
def reconstruct_from_patches_2d(patches, image_size):
    """Reconstruct an image from all of its patches (scikit-learn drop-in).

    Same signature and result as
    ``sklearn.feature_extraction.image.reconstruct_from_patches_2d``: the mean
    of the overlapping patch values at every pixel, as float64, computed with
    vectorised scatter-adds instead of a loop over patches.

    Parameters
    ----------
    patches : ndarray of shape (n_patches, patch_height, patch_width) or \
(n_patches, patch_height, patch_width, n_channels)
        Every patch at step 1, in the order of :func:`extract_patches_2d`.
    image_size : tuple of int (image_height, image_width) or \
(image_height, image_width, n_channels)
        The size of the image to rebuild.

    Returns
    -------
    image : ndarray of shape image_size
        The reconstructed image, float64.

    Raises
    ------
    ValueError
        If the number of patches is not that of the full grid (scikit-learn
        would silently use only the first ones).

    See Also
    --------
    skpatch.reconstruct_from_patches : Any step, padding, dimensions and weights.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch.sklearn import extract_patches_2d, reconstruct_from_patches_2d
    >>> image = np.random.default_rng(0).random((6, 7))
    >>> patches = extract_patches_2d(image, (3, 3))
    >>> rebuilt = reconstruct_from_patches_2d(patches, image.shape)
    >>> rebuilt.shape, bool(np.allclose(rebuilt, image))
    ((6, 7), True)
    """
    image_size = tuple(image_size)
    channel_axis = -1 if len(image_size) == 3 else None
    return reconstruct_from_patches(
        np.asarray(patches, dtype=np.float64),
        image_size,
        channel_axis=channel_axis,
        padding="valid",
    )


class PatchExtractor(TransformerMixin, BaseEstimator):
    """Extract patches from a collection of images (scikit-learn drop-in).

    Same parameters and results as
    ``sklearn.feature_extraction.image.PatchExtractor``: ``transform`` returns a
    float64 array of patches (not a 2-D matrix), image after image, with
    ``max_patches`` drawn per image from one random stream. Unlike
    scikit-learn's, ``transform`` validates the parameters too.

    Parameters
    ----------
    patch_size : tuple of int (patch_height, patch_width), default=None
        The dimensions of one patch; None uses ``(img_height // 10,
        img_width // 10)``.
    max_patches : int or float, default=None
        Patches per image: a number (capped at the total) or a fraction in
        (0, 1). None extracts all of them.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw of ``max_patches``.

    See Also
    --------
    skpatch.PatchExtractor : Any step and padding, a 2-D patch matrix and an
        ``inverse_transform``.

    Notes
    -----
    The estimator is stateless: ``fit`` only validates the parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch.sklearn import PatchExtractor
    >>> X = np.random.default_rng(0).random((2, 20, 30, 3))
    >>> PatchExtractor(patch_size=(4, 4)).transform(X).shape
    (918, 4, 4, 3)
    """

    _parameter_constraints: ClassVar[dict] = {
        "patch_size": [tuple, None],
        "max_patches": _MAX_PATCHES,
        "random_state": ["random_state"],
    }

    def __init__(self, *, patch_size=None, max_patches=None, random_state=None):
        self.patch_size = patch_size
        self.max_patches = max_patches
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Only validate the parameters of the estimator.

        Parameters
        ----------
        X : ndarray of shape (n_samples, image_height, image_width) or \
(n_samples, image_height, image_width, n_channels)
            Images.
        y : None
            Ignored.

        Returns
        -------
        self : PatchExtractor
            The estimator itself.
        """
        return self

    def transform(self, X):
        """Transform the images in ``X`` into an array of patches.

        Parameters
        ----------
        X : ndarray of shape (n_samples, image_height, image_width) or \
(n_samples, image_height, image_width, n_channels)
            Images.

        Returns
        -------
        patches : ndarray of shape (n_patches, patch_height, patch_width) or \
(n_patches, patch_height, patch_width, n_channels)
            float64 patches, ``n_samples * max_patches`` of them or all.
        """
        if not get_config()["skip_parameter_validation"]:
            self._validate_params()
        X = validate_data(
            self,
            X=X,
            ensure_2d=False,
            allow_nd=True,
            ensure_min_samples=1,
            ensure_min_features=1,
            reset=False,
        )
        if X.ndim not in (3, 4):
            raise ValueError(
                f"X must have shape (n_samples, image_height, image_width) or "
                f"(n_samples, image_height, image_width, n_channels), got shape "
                f"{X.shape}"
            )
        patch_size = self._patch_size(X.shape[1:3])
        random_state = check_random_state(self.random_state)
        blocks = [
            extract_patches_2d(
                image,
                patch_size,
                max_patches=self.max_patches,
                random_state=random_state,
            )
            for image in X
        ]
        return np.concatenate(blocks).astype(np.float64, copy=False)

    def _patch_size(self, image_size):
        if self.patch_size is None:
            return image_size[0] // 10, image_size[1] // 10
        if len(self.patch_size) != 2:
            raise ValueError(
                f"patch_size must be a tuple of two integers, got {self.patch_size}"
            )
        return self.patch_size

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = False
        return tags
