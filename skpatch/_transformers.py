"""scikit-learn transformers between batches of images and patch matrices."""

import numbers
from typing import ClassVar

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._extract import _resolve_max_patches, extract_patches, prepare_grid
from ._reconstruct import AGGREGATES, reconstruct_from_patches
from ._validation import PAD_MODES, as_axis_tuple, check_finite, output_float_dtype
from ._windows import WINDOW_NAMES, is_uniform, patch_window

_GEOMETRY_CONSTRAINTS = {
    "patch_size": [Interval(numbers.Integral, 1, None, closed="left"), tuple],
    "step": [Interval(numbers.Integral, 1, None, closed="left"), tuple],
    "offset": [Interval(numbers.Integral, 0, None, closed="left"), tuple],
    "padding": [StrOptions({"valid", *PAD_MODES}), None],
    "weights": [StrOptions(set(WINDOW_NAMES)), tuple, "array-like"],
    "aggregate": [StrOptions(set(AGGREGATES))],
}
# A fraction of each image's patches, a number of them per image, or all.
_MAX_PATCHES_CONSTRAINT = [
    Interval(RealNotInt, 0, 1, closed="right"),
    Interval(numbers.Integral, 1, None, closed="left"),
    None,
]


def _n_spatial(patch_size):
    """Spatial axes per image: the length of a tuple ``patch_size``, 2 for an int."""
    return len(patch_size) if isinstance(patch_size, tuple) else 2


def _image_geometry(estimator, image_shape):
    """Check the geometry parameters against one image's shape.

    Returns the engine's grid for the spatial shape and the shape of one patch
    (channels last). This is the one place where both transformers turn their
    parameters into a geometry.
    """
    image_shape = as_axis_tuple(
        tuple(image_shape), len(image_shape), "image_shape", minimum=1
    )
    k = _n_spatial(estimator.patch_size)
    if len(image_shape) not in (k, k + 1):
        raise ValueError(
            f"an image must have {k} spatial axes, plus optionally a last channel "
            f"axis, for patch_size={estimator.patch_size!r}; got image shape "
            f"{image_shape} with {len(image_shape)} axes"
        )
    channel_axis = -1 if len(image_shape) == k + 1 else None
    grid, n_channels, _ = prepare_grid(
        image_shape,
        estimator.patch_size,
        estimator.step,
        estimator.offset,
        estimator.padding,
        channel_axis,
    )
    patch_window(estimator.weights, grid.patch_size, n_channels)
    if estimator.aggregate != "mean" and not is_uniform(estimator.weights):
        raise ValueError(
            f"aggregate={estimator.aggregate!r} needs weights='uniform', got "
            f"{estimator.weights!r}"
        )
    channels = () if n_channels is None else (n_channels,)
    return grid, grid.patch_size + channels


def _check_images(X, estimator):
    """Validate a batch of images ``(n_images, *spatial[, n_channels])``."""
    X = check_array(
        X,
        dtype="numeric",
        ensure_2d=False,
        allow_nd=True,
        ensure_all_finite=False,
        estimator=estimator,
    )
    k = _n_spatial(estimator.patch_size)
    if X.ndim not in (k + 1, k + 2):
        raise ValueError(
            f"X must have {k + 1} axes (n_images, {k} spatial axes) or {k + 2} axes "
            f"(n_images, {k} spatial axes, n_channels) for "
            f"patch_size={estimator.patch_size!r}; got an array of shape {X.shape} "
            f"with {X.ndim} axes"
        )
    check_finite(X, "X", type(estimator).__name__)
    return X


def _check_image_shape(X, image_shape, estimator):
    if X.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"X holds images of shape {X.shape[1:]}, but {type(estimator).__name__} "
            f"was fitted for images of shape {tuple(image_shape)}; call fit again to "
            f"change the image shape"
        )


def _check_rows(Xt, estimator, name="Xt"):
    """Check that a patch matrix has whole images of rows and the patch width."""
    n_rows, width = Xt.shape
    n_patches = estimator.n_patches_per_image_
    n_features = estimator.n_features_out_
    if width != n_features:
        raise ValueError(
            f"{name} has {width} columns but a patch of shape "
            f"{estimator.patch_shape_} has {n_features} values"
        )
    if n_rows == 0 or n_rows % n_patches:
        raise ValueError(
            f"{name} has {n_rows} rows, which is not a positive multiple of the "
            f"{n_patches} patches per image of shape {estimator.image_shape_} "
            f"(grid {estimator.grid_.grid_shape})"
        )
    check_finite(Xt, name, type(estimator).__name__)


def _batch_geometry(estimator):
    """Geometry keywords for the engine, for the whole batch at once.

    The batch axis becomes one more spatial axis with patch size, step and
    window 1 and no padding, so one engine call handles every image, with rows
    image by image and the engine's order within each image.
    """
    grid = estimator.grid_
    weights = estimator.weights
    if not isinstance(weights, str | tuple):
        weights = np.asarray(weights, dtype=np.float64)[np.newaxis]
    return {
        "step": (1, *grid.step),
        "offset": (0, *grid.offset),
        "padding": grid.padding,
        "channel_axis": _channel_axis(estimator),
        "weights": weights,
    }, (1, *grid.patch_size)


def _channel_axis(estimator):
    """-1 for images with a channel axis (always last), None for single-channel."""
    return -1 if len(estimator.patch_shape_) > estimator.grid_.ndim else None


def _images_to_rows(X, estimator):
    """The patch matrix of a batch of images, in the dtype of ``_row_dtype``."""
    geometry, patch_size = _batch_geometry(estimator)
    del geometry["weights"]
    patches = extract_patches(X, patch_size, **geometry)
    rows = patches.reshape(len(patches), -1)
    return rows.astype(_row_dtype(estimator, rows.dtype), copy=False)


def _row_dtype(estimator, dtype):
    """Float rows, except integer labels that ``aggregate='mode'`` will merge."""
    if estimator.aggregate == "mode" and dtype.kind in "biu":
        return dtype
    return output_float_dtype(dtype)


def _rows_to_images(Xt, estimator):
    """Overlap-average a patch matrix back into a batch of images."""
    geometry, patch_size = _batch_geometry(estimator)
    n_images = len(Xt) // estimator.n_patches_per_image_
    channels = estimator.patch_shape_[estimator.grid_.ndim :]
    patches = Xt.reshape(len(Xt), *patch_size, *channels)
    return reconstruct_from_patches(
        patches,
        (n_images, *estimator.image_shape_),
        aggregate=estimator.aggregate,
        **geometry,
    )


def _sampled_rows(X, estimator):
    """``max_patches`` random patches of every image, rows image by image."""
    random_state = check_random_state(estimator.random_state)
    kwargs = {
        "step": estimator.grid_.step,
        "offset": estimator.grid_.offset,
        "padding": estimator.grid_.padding,
        "channel_axis": _channel_axis(estimator),
        "max_patches": estimator.max_patches,
        "random_state": random_state,
    }
    blocks = [
        extract_patches(image, estimator.grid_.patch_size, **kwargs).reshape(
            -1, estimator.n_features_out_
        )
        for image in X
    ]
    rows = np.concatenate(blocks)
    return rows.astype(_row_dtype(estimator, rows.dtype), copy=False)


def _fit_geometry(estimator, image_shape):
    grid, patch_shape = _image_geometry(estimator, image_shape)
    estimator.image_shape_ = tuple(int(s) for s in image_shape)
    estimator.grid_ = grid
    estimator.patch_shape_ = patch_shape
    estimator.n_patches_per_image_ = grid.n_patches
    estimator.n_features_out_ = int(np.prod(patch_shape))


def _validate_params_unless_skipped(estimator):
    """Validate the parameters outside ``fit`` too, as ``_fit_context`` does in it."""
    if not get_config()["skip_parameter_validation"]:
        estimator._validate_params()


def _check_same_geometry(estimator):
    """Refuse geometry parameters changed by ``set_params`` since ``fit``."""
    grid, _ = _image_geometry(estimator, estimator.image_shape_)
    if grid != estimator.grid_:
        raise ValueError(
            f"the geometry parameters changed since fit (fitted: "
            f"{estimator.grid_._describe()}; now: {grid._describe()}); call fit again"
        )


class PatchExtractor(TransformerMixin, BaseEstimator):
    """Cut a batch of images into a matrix of patches, and put them back.

    ``transform`` turns images of shape ``(n_images, *spatial[, n_channels])``
    into the 2-D matrix ``(n_images * n_patches, n_features)`` that patch models
    (``MiniBatchDictionaryLearning``, ``PCA``, ``GaussianMixture``) take, one row
    per flattened patch. ``inverse_transform`` overlap-averages such a matrix
    back into images, so a pipeline ``make_pipeline(PatchExtractor(...), model)``
    works forward and backward.

    Parameters
    ----------
    patch_size : int or tuple of int, default=8
        Spatial shape of a patch. Its length sets the number of spatial axes of
        an image (a tuple of 3 for volumes); an int means 2-D images and is used
        on both axes.
    step : int or tuple of int, default=1
        Distance between neighbouring patch origins along each spatial axis.
    offset : int or tuple of int, default=0
        Origin of the first regular patch along each axis, ``0 <= offset < step``.
    padding : {None, 'valid', 'reflect', 'symmetric', 'edge', 'constant', 'wrap'}, \
default=None
        Edge policy, see :class:`PatchGrid`. The default covers every pixel by
        snapping a last patch to the far edge.
    weights : {'uniform', 'gaussian', 'hann', 'triangular'}, tuple or array-like, \
default='uniform'
        Weighting window of the overlap average in ``inverse_transform``, see
        :func:`patch_window`.
    aggregate : {'mean', 'median', 'mode'}, default='mean'
        How ``inverse_transform`` merges overlapping values, see
        :func:`reconstruct_from_patches`. With ``'mode'`` (label images),
        integer and boolean images keep their dtype in the patch matrix, and
        integer rows come back as integer labels.
    max_patches : int or float, default=None
        Patches per image that :meth:`fit_transform` returns, drawn at random
        without replacement: an int, or a fraction of the grid in (0, 1]. It
        does not affect :meth:`transform`; see Notes.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw of ``max_patches``.

    Attributes
    ----------
    image_shape_ : tuple of int
        Shape of one image seen in ``fit`` (spatial axes, then channels if any).
    grid_ : PatchGrid
        Where the patches sit on one image.
    patch_shape_ : tuple of int
        Shape of one patch, channels last: ``(*patch_size[, n_channels])``.
    n_patches_per_image_ : int
        Number of patches (rows) per image in ``transform``.
    n_features_out_ : int
        Number of columns of the patch matrix, ``prod(patch_shape_)``.

    See Also
    --------
    PatchReconstructor : The mirror transformer, from patch rows to images.
    extract_patches : The function that cuts one image.
    reconstruct_from_patches : The function that rebuilds one image.

    Notes
    -----
    ``max_patches`` subsamples only in :meth:`fit_transform`, which is what a
    ``Pipeline``'s ``fit`` feeds to the next step: the patch model is trained on
    a random subset. :meth:`transform` always returns the full grid, so that
    :meth:`inverse_transform` can rebuild the images. Hence, when
    ``max_patches`` is set, ``fit_transform(X)`` differs from
    ``fit(X).transform(X)`` on purpose.

    Rows are ordered image by image, and within an image in the order of
    :func:`extract_patches` (C order of the grid); columns are a patch flattened
    in C order with channels last. Floating-point images keep their dtype
    (float32 stays float32); integer and boolean images give float64 patches,
    except with ``aggregate='mode'``, where they keep their dtype (labels).

    ``inverse_transform`` computes, for every pixel :math:`x`,
    :math:`\\sum_i w(x - o_i) P_i(x - o_i) / \\sum_i w(x - o_i)` over the
    patches :math:`i` with origin :math:`o_i` covering it. Pixels no patch covers
    (``step > patch_size``, or ``padding='valid'``) come back as NaN.

    The patch matrix holds ``n_images * n_patches_per_image_ * n_features_out_``
    values: with ``step=1`` and 8x8 patches, 64 times the images. Larger steps
    divide it by ``prod(step)``.

    ``n_features_in_`` is not set: the input is not a 2-D feature matrix, and
    ``X.shape[1]`` (the image height) would be misleading. ``image_shape_``
    records the input geometry instead.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import PatchExtractor
    >>> X = np.random.default_rng(0).random((2, 20, 24, 3))
    >>> extractor = PatchExtractor(patch_size=(8, 8), step=4).fit(X)
    >>> patches = extractor.transform(X)
    >>> patches.shape
    (40, 192)
    >>> extractor.inverse_transform(patches).shape
    (2, 20, 24, 3)
    >>> extractor.get_feature_names_out()[:2]
    array(['patch_0_0_c0', 'patch_0_0_c1'], dtype=object)
    """

    _parameter_constraints: ClassVar[dict] = {
        **_GEOMETRY_CONSTRAINTS,
        "max_patches": _MAX_PATCHES_CONSTRAINT,
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        patch_size=8,
        *,
        step=1,
        offset=0,
        padding=None,
        weights="uniform",
        aggregate="mean",
        max_patches=None,
        random_state=None,
    ):
        self.patch_size = patch_size
        self.step = step
        self.offset = offset
        self.padding = padding
        self.weights = weights
        self.aggregate = aggregate
        self.max_patches = max_patches
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and record the geometry of the images in ``X``.

        Parameters
        ----------
        X : array-like of shape (n_images, *spatial_shape) or \
(n_images, *spatial_shape, n_channels)
            Images; the number of spatial axes is ``len(patch_size)`` (2 for an
            int ``patch_size``).
        y : None
            Ignored.

        Returns
        -------
        self : PatchExtractor
            The fitted transformer.
        """
        self._fit(X)
        return self

    def transform(self, X):
        """Cut every image into all the patches of the grid.

        Parameters
        ----------
        X : array-like of shape (n_images, *image_shape_)
            Images of the shape seen in ``fit``.

        Returns
        -------
        patches : ndarray of shape (n_images * n_patches_per_image_, \
n_features_out_)
            One flattened patch per row, image by image.
        """
        X = self._check_transform_input(X)
        return _images_to_rows(X, self)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit, then return the patches, subsampled if ``max_patches`` is set.

        Parameters
        ----------
        X : array-like of shape (n_images, *spatial_shape[, n_channels])
            Images.
        y : None
            Ignored.

        Returns
        -------
        patches : ndarray of shape (n_rows, n_features_out_)
            All patches (``n_rows = n_images * n_patches_per_image_``), or
            ``max_patches`` random patches per image in grid order.
        """
        X = self._fit(X)
        if self.max_patches is None:
            return _images_to_rows(X, self)
        return _sampled_rows(X, self)

    def inverse_transform(self, X):
        """Overlap-average patch rows back into images.

        Parameters
        ----------
        X : array-like of shape (n_images * n_patches_per_image_, n_features_out_)
            Patch rows in the order of :meth:`transform`, e.g. a patch model's
            reconstruction; a pandas DataFrame is accepted.

        Returns
        -------
        images : ndarray of shape (n_images, *image_shape_)
            float32 for float32 rows, float64 otherwise.
        """
        self._check_transform_input(None)
        X = check_array(X, dtype="numeric", ensure_all_finite=False, estimator=self)
        _check_rows(X, self, name="X")
        return _rows_to_images(X, self)

    def get_feature_names_out(self, input_features=None):
        """Name the columns of the patch matrix by their position in the patch.

        Parameters
        ----------
        input_features : None
            Must be None: images have no input feature names.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``patch_<i>_<j>`` for a pixel of a 2-D patch (one index per spatial
            axis), with a suffix ``_c<k>`` for channel ``k`` of colour patches.
        """
        check_is_fitted(self)
        if input_features is not None:
            raise ValueError(
                f"input_features must be None for {type(self).__name__}, whose "
                f"input is images without feature names; got {input_features!r}"
            )
        n_spatial = self.grid_.ndim
        names = [
            "patch_"
            + "_".join(map(str, index[:n_spatial]))
            + "".join(f"_c{c}" for c in index[n_spatial:])
            for index in np.ndindex(*self.patch_shape_)
        ]
        return np.asarray(names, dtype=object)

    def _fit(self, X):
        X = _check_images(X, self)
        _fit_geometry(self, X.shape[1:])
        if self.max_patches is not None:
            _resolve_max_patches(self.max_patches, self.n_patches_per_image_)
        return X

    def _check_transform_input(self, X):
        """Stateless checks done by ``transform`` as well as ``fit``."""
        check_is_fitted(self)
        _validate_params_unless_skipped(self)
        _check_same_geometry(self)
        if X is None:
            return None
        X = _check_images(X, self)
        _check_image_shape(X, self.image_shape_, self)
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class PatchReconstructor(TransformerMixin, BaseEstimator):
    """Rebuild a batch of images from patch rows, and cut them again.

    The mirror of :class:`PatchExtractor`: ``transform`` overlap-averages a patch
    matrix ``(n_images * n_patches, n_features)`` into images of shape
    ``(n_images, *image_shape)``, and ``inverse_transform`` cuts images into that
    matrix. It ends a pipeline in image space.

    Parameters
    ----------
    image_shape : tuple of int
        Shape of one image: its spatial axes (``len(patch_size)`` of them, 2 for
        an int ``patch_size``), then the number of channels if any.
    patch_size : int or tuple of int, default=8
        Spatial shape of a patch.
    step : int or tuple of int, default=1
        Distance between neighbouring patch origins along each spatial axis.
    offset : int or tuple of int, default=0
        Origin of the first regular patch along each axis, ``0 <= offset < step``.
    padding : {None, 'valid', 'reflect', 'symmetric', 'edge', 'constant', 'wrap'}, \
default=None
        Edge policy, see :class:`PatchGrid`.
    weights : {'uniform', 'gaussian', 'hann', 'triangular'}, tuple or array-like, \
default='uniform'
        Weighting window of the overlap average, see :func:`patch_window`.
    aggregate : {'mean', 'median', 'mode'}, default='mean'
        How overlapping values are merged, see :func:`reconstruct_from_patches`;
        ``'mode'`` merges integer label rows into integer label images.

    Attributes
    ----------
    image_shape_ : tuple of int
        Shape of one output image.
    grid_ : PatchGrid
        Where the patches sit on one image.
    patch_shape_ : tuple of int
        Shape of one patch, channels last.
    n_patches_per_image_ : int
        Number of patch rows per image.
    n_features_out_ : int
        Number of values per patch row, ``prod(patch_shape_)``.
    n_features_in_ : int
        Number of columns of the patch matrix seen in ``fit`` (equal to
        ``n_features_out_``).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``fit`` was given a DataFrame with string column names.

    See Also
    --------
    PatchExtractor : The mirror transformer, from images to patch rows.
    reconstruct_from_patches : The function that rebuilds one image.

    Notes
    -----
    Rows must come image by image in the order of :func:`extract_patches` with
    the same geometry; any number of whole images is accepted. Pixels no patch
    covers come back as NaN. Float32 rows give float32 images, others float64.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import PatchExtractor, PatchReconstructor
    >>> X = np.random.default_rng(0).random((3, 16, 16))
    >>> rows = PatchExtractor(patch_size=4, step=2).fit_transform(X)
    >>> rows.shape
    (147, 16)
    >>> reconstructor = PatchReconstructor((16, 16), patch_size=4, step=2)
    >>> images = reconstructor.fit_transform(rows)
    >>> images.shape, bool(np.allclose(images, X))
    ((3, 16, 16), True)
    """

    _parameter_constraints: ClassVar[dict] = {
        "image_shape": [tuple, list],
        **_GEOMETRY_CONSTRAINTS,
    }

    def __init__(
        self,
        image_shape,
        patch_size=8,
        *,
        step=1,
        offset=0,
        padding=None,
        weights="uniform",
        aggregate="mean",
    ):
        self.image_shape = image_shape
        self.patch_size = patch_size
        self.step = step
        self.offset = offset
        self.padding = padding
        self.weights = weights
        self.aggregate = aggregate

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters against patch rows and record the geometry.

        Parameters
        ----------
        X : array-like of shape (n_images * n_patches, n_features)
            Patch rows, image by image.
        y : None
            Ignored.

        Returns
        -------
        self : PatchReconstructor
            The fitted transformer.
        """
        _fit_geometry(self, self.image_shape)
        X = validate_data(self, X, dtype="numeric", ensure_all_finite=False)
        _check_rows(X, self, name="X")
        return self

    def transform(self, X):
        """Overlap-average patch rows into images.

        Parameters
        ----------
        X : array-like of shape (n_images * n_patches_per_image_, n_features_out_)
            Patch rows, image by image; a DataFrame is accepted.

        Returns
        -------
        images : ndarray of shape (n_images, *image_shape_)
            float32 for float32 rows, float64 otherwise.
        """
        self._check_fitted_params()
        X = validate_data(
            self, X, dtype="numeric", ensure_all_finite=False, reset=False
        )
        _check_rows(X, self, name="X")
        return _rows_to_images(X, self)

    def inverse_transform(self, X):
        """Cut images into patch rows.

        Parameters
        ----------
        X : array-like of shape (n_images, *image_shape_)
            Images.

        Returns
        -------
        patches : ndarray of shape (n_images * n_patches_per_image_, \
n_features_out_)
            One flattened patch per row, image by image.
        """
        self._check_fitted_params()
        X = _check_images(X, self)
        _check_image_shape(X, self.image_shape_, self)
        return _images_to_rows(X, self)

    def _check_fitted_params(self):
        check_is_fitted(self)
        _validate_params_unless_skipped(self)
        _check_same_geometry(self)
        if tuple(self.image_shape) != self.image_shape_:
            raise ValueError(
                f"image_shape changed since fit (fitted: {self.image_shape_}; now: "
                f"{tuple(self.image_shape)}); call fit again"
            )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
