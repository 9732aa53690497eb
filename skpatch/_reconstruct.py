"""Putting images back together from patches: weighted mean, median, streaming."""

import math

import numpy as np

from ._extract import prepare_grid
from ._validation import (
    check_fits_in_memory,
    check_numeric_array,
    output_float_dtype,
)
from ._windows import axis_windows, patch_window

# Patches are scattered in blocks of about this many values: large enough to make
# the per-block Python cost negligible, small enough for the block, its indices and
# its weighted copy to stay in the CPU cache.
BLOCK_VALUES = 2**17
AGGREGATES = ("mean", "median")


def reconstruct_from_patches(
    patches,
    image_shape,
    *,
    step=1,
    offset=0,
    padding=None,
    channel_axis=None,
    origins=None,
    weights="uniform",
    aggregate="mean",
    fill_value=np.nan,
    return_weights=False,
):
    """Rebuild an image from its patches by (weighted) overlap averaging.

    Parameters
    ----------
    patches : array-like of shape (n_patches, *patch_size) or (n_patches, \
*patch_size, n_channels)
        Patches in the order of :func:`extract_patches` with the same geometry,
        or any subset of patches whose ``origins`` are given.
    image_shape : tuple of int
        Shape of the image to rebuild, including the channel axis if any.
    step, offset, padding, channel_axis
        The geometry the patches were extracted with; see :func:`extract_patches`.
    origins : array-like of shape (n_patches, n_spatial_dims), default=None
        Image coordinates of each patch, as returned by
        ``extract_patches(..., return_origins=True)``. Needed when ``patches`` is
        not the full grid (for example drawn with ``max_patches``).
    weights : {'uniform', 'gaussian', 'hann', 'triangular'}, tuple or array-like, \
default='uniform'
        Weighting window for the average, see :func:`patch_window`.
    aggregate : {'mean', 'median'}, default='mean'
        How overlapping values are merged. ``'median'`` takes, for every pixel,
        the median of the values of the patches covering it (robust to outliers,
        and the right merge for label images); it needs ``weights='uniform'``.
    fill_value : float or None, default=nan
        Value of pixels that no patch covers (possible with ``step > patch_size``,
        ``padding='valid'`` or a subset of patches). ``None`` raises instead.
    return_weights : bool, default=False
        Also return the total weight of every pixel (the coverage count with
        uniform weights).

    Returns
    -------
    image : ndarray of shape image_shape
        float32 for float32 patches, float64 otherwise.
    weight_sum : ndarray
        Returned when ``return_weights``; the spatial shape of the image (plus
        channels for a per-channel weight array).

    See Also
    --------
    extract_patches : The inverse operation.
    PatchAccumulator : The same reconstruction fed batch by batch.

    Notes
    -----
    With weights :math:`w` the mean merge computes, for every pixel :math:`x`,

    .. math:: \\hat{I}(x) = \\frac{\\sum_i w(x - o_i) P_i(x - o_i)}
                                 {\\sum_i w(x - o_i)}

    over the patches :math:`i` with origin :math:`o_i` that cover :math:`x`.
    Sums are taken in float64. Patches are scattered block by block, so besides
    the patches the mean merge allocates only a few image-sized arrays. The
    median merge sorts every value with its pixel index, which needs about four
    times the memory of the patch matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import extract_patches, reconstruct_from_patches
    >>> image = np.random.default_rng(0).random((97, 131, 3))
    >>> patches = extract_patches(image, (8, 8), step=(3, 5), channel_axis=-1)
    >>> patches.shape
    (806, 8, 8, 3)
    >>> rebuilt = reconstruct_from_patches(patches, image.shape, step=(3, 5),
    ...                                    channel_axis=-1)
    >>> rebuilt.shape, bool(np.allclose(rebuilt, image))
    ((97, 131, 3), True)
    """
    patches = check_numeric_array(patches, "patches")
    patch_size = _patch_size_from(patches, image_shape, channel_axis)
    accumulator = PatchAccumulator(
        image_shape,
        patch_size,
        step=step,
        offset=offset,
        padding=padding,
        channel_axis=channel_axis,
        weights=weights,
    )
    if aggregate == "mean":
        accumulator.add(patches, origins)
        image = accumulator.result(fill_value=fill_value)
        return (image, accumulator.weight_sum) if return_weights else image
    if aggregate == "median":
        return _median_reconstruct(
            accumulator, patches, origins, weights, fill_value, return_weights
        )
    raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")


class PatchAccumulator:
    """Rebuild an image from patches that arrive in batches.

    Holds only image-sized sums, so an image whose full patch matrix would not
    fit in memory can be processed batch by batch from :func:`iter_patches`.

    Parameters
    ----------
    image_shape : tuple of int
        Shape of the image to rebuild, including the channel axis if any.
    patch_size : int or tuple of int
        Spatial patch shape.
    step, offset, padding, channel_axis
        The geometry; see :func:`extract_patches`.
    weights : {'uniform', 'gaussian', 'hann', 'triangular'}, tuple or array-like, \
default='uniform'
        Weighting window, see :func:`patch_window`.

    Attributes
    ----------
    grid : PatchGrid
        The geometry.
    weight_sum : ndarray
        Total weight per pixel so far, in the image's spatial shape.

    See Also
    --------
    iter_patches : Produces the batches.
    reconstruct_from_patches : The one-shot equivalent.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import PatchAccumulator, iter_patches
    >>> image = np.random.default_rng(0).random((300, 200))
    >>> accumulator = PatchAccumulator(image.shape, 16, step=4, weights="hann")
    >>> for patches, origins in iter_patches(image, 16, step=4, batch_size=500):
    ...     _ = accumulator.add(patches, origins)
    >>> rebuilt = accumulator.result()
    >>> rebuilt.shape, bool(np.allclose(rebuilt, image))
    ((300, 200), True)
    """

    def __init__(
        self,
        image_shape,
        patch_size,
        *,
        step=1,
        offset=0,
        padding=None,
        channel_axis=None,
        weights="uniform",
    ):
        self.image_shape = tuple(image_shape)
        self.grid, self.n_channels, self.channel_axis = prepare_grid(
            self.image_shape, patch_size, step, offset, padding, channel_axis
        )
        self.weights = weights
        self._window = patch_window(weights, self.grid.patch_size, self.n_channels)
        self._axis_windows = axis_windows(weights, self.grid.patch_size)
        channels = () if self.n_channels is None else (self.n_channels,)
        check_fits_in_memory(
            16 * math.prod(self.grid.padded_shape + channels),
            f"reconstructing an image of shape {self.image_shape}",
            "check image_shape",
        )
        self._sum = np.zeros(self.grid.padded_shape + channels)
        self._weight_sum = np.zeros(
            self.grid.padded_shape + self._window.shape[self.grid.ndim :]
        )
        self._dtype = None

    @property
    def weight_sum(self):
        return self._weight_sum[self.grid.crop].copy()

    def add(self, patches, origins=None):
        """Add a batch of patches at ``origins`` (image coordinates).

        ``origins=None`` means the whole grid, in order. Returns ``self``.
        """
        patches = self._check_patches(patches)
        canvas_origins = _canvas_origins(self.grid, patches, origins)
        self._dtype = np.result_type(*(d for d in (self._dtype, patches.dtype) if d))
        self._add_values(patches, canvas_origins)
        self._add_weights(len(patches), canvas_origins)
        return self

    def result(self, fill_value=np.nan):
        """Return the image averaged so far; uncovered pixels get ``fill_value``.

        ``fill_value=None`` raises a ValueError if any pixel is uncovered.
        """
        total = self._sum[self.grid.crop]
        if not np.all(np.isfinite(total)):
            raise ValueError(
                "patches contain NaN or infinite values; reconstruction needs finite "
                "patches (NaN is also how uncovered pixels are reported)"
            )
        weight_sum = self.weight_sum
        if weight_sum.ndim < total.ndim:
            weight_sum = weight_sum[..., np.newaxis]
        covered = np.broadcast_to(weight_sum > 0, total.shape)
        image = np.divide(total, weight_sum, out=np.zeros_like(total), where=covered)
        _fill_uncovered(image, covered, fill_value)
        return self._to_image(image)

    def _to_image(self, canvas_image):
        dtype = output_float_dtype(self._dtype or np.float64)
        if self.channel_axis is not None:
            canvas_image = np.moveaxis(canvas_image, -1, self.channel_axis)
        return np.ascontiguousarray(canvas_image, dtype=dtype)

    def _check_patches(self, patches):
        patches = check_numeric_array(patches, "patches")
        channels = () if self.n_channels is None else (self.n_channels,)
        expected = self.grid.patch_size + channels
        if patches.ndim != 1 + len(expected) or patches.shape[1:] != expected:
            raise ValueError(
                f"patches must have shape (n_patches, *{expected}) for image_shape "
                f"{self.image_shape} with channel_axis={self.channel_axis}; got "
                f"{patches.shape}"
            )
        return patches

    def _add_values(self, patches, canvas_origins):
        weights = None if self.weights == "uniform" else self._window.ravel()
        if (
            weights is not None
            and self._window.ndim == self.grid.ndim
            and self.n_channels
        ):
            weights = np.repeat(weights, self.n_channels)
        inpatch = self._inpatch_offsets(self._sum)
        block = (
            None
            if canvas_origins is not None
            else _row_aligned_block(self.grid, len(inpatch))
        )
        _scatter_add(
            self._sum,
            patches,
            self._origin_offsets(self._sum, canvas_origins),
            inpatch,
            weights,
            block,
        )

    def _add_weights(self, n_patches, canvas_origins):
        if canvas_origins is None and self._axis_windows is not None:
            self._weight_sum += _outer(self.grid.axis_weight_sums(self._axis_windows))
            return
        window = np.broadcast_to(self._window, (n_patches, *self._window.shape))
        _scatter_add(
            self._weight_sum,
            window,
            self._origin_offsets(self._weight_sum, canvas_origins),
            self._inpatch_offsets(self._weight_sum),
            None,
        )

    def _origin_offsets(self, target, canvas_origins):
        """Flat offsets of patch origins in ``target`` (full grid when None)."""
        strides = _element_strides(target)[: self.grid.ndim]
        if canvas_origins is None:
            per_axis = [
                o * s for o, s in zip(self.grid.axis_origins, strides, strict=True)
            ]
            return _outer(per_axis, np.add).ravel()
        return canvas_origins @ np.asarray(strides, dtype=np.intp)

    def _inpatch_offsets(self, target):
        """Flat offsets in ``target`` of every value inside one patch."""
        extent = self.grid.patch_size + target.shape[self.grid.ndim :]
        per_axis = [
            np.arange(n) * s
            for n, s in zip(extent, _element_strides(target), strict=True)
        ]
        return _outer(per_axis, np.add).ravel()


def _scatter_add(target, patches, origin_offsets, inpatch_offsets, weights, block=None):
    """Add every patch value, times ``weights``, to ``target`` at its flat position.

    ``np.add.at`` handles the overlaps (repeated indices) correctly, and does it in
    one C loop per block; looping over in-patch offsets instead would read the
    patch matrix with a large stride once per offset. Indices are relative to the
    block's first origin, so blocks laid out alike (whole rows of a grid) reuse
    them and only the start of the target view moves.
    """
    flat = target.reshape(-1)
    n_patches = len(patches)
    if block is None:
        block = max(1, BLOCK_VALUES // len(inpatch_offsets))
    values = patches.reshape(n_patches, -1) if patches.flags.c_contiguous else None
    relative, indices = None, None
    for start in range(0, n_patches, block):
        stop = min(start + block, n_patches)
        rows = (
            values[start:stop]
            if values is not None
            else patches[start:stop].reshape(stop - start, -1)
        )
        if weights is not None or rows.dtype != np.float64:
            rows = np.multiply(
                rows, 1.0 if weights is None else weights, dtype=np.float64
            )
        base = origin_offsets[start]
        block_relative = origin_offsets[start:stop] - base
        if relative is None or not np.array_equal(block_relative, relative):
            relative = block_relative
            indices = (relative[:, np.newaxis] + inpatch_offsets).reshape(-1)
        np.add.at(flat[base:], indices, rows.reshape(-1))


def _row_aligned_block(grid, values_per_patch):
    """Patches per block, a multiple of a grid row when one fits, so blocks repeat."""
    cap = max(1, BLOCK_VALUES // values_per_patch)
    unit = 1
    for n in reversed(grid.grid_shape[1:]):
        if unit * n > cap:
            break
        unit *= n
    return cap // unit * unit


def _median_reconstruct(
    accumulator, patches, origins, weights, fill_value, return_weights
):
    if not (isinstance(weights, str) and weights == "uniform"):
        raise ValueError(f"aggregate='median' needs weights='uniform', got {weights!r}")
    if not np.all(np.isfinite(patches)):
        raise ValueError(
            "patches contain NaN or infinite values; the median needs finite patches"
        )
    check_fits_in_memory(
        4 * patches.size * 8,
        "the median of the patch values",
        "use aggregate='mean', or fewer patches",
    )
    grid, target = accumulator.grid, accumulator._sum
    patches = accumulator._check_patches(patches)
    canvas_origins = _canvas_origins(grid, patches, origins)
    index = (
        accumulator._origin_offsets(target, canvas_origins)[:, np.newaxis]
        + accumulator._inpatch_offsets(target)
    ).ravel()
    values = patches.reshape(-1)
    order = np.lexsort((values, index))
    sorted_values = values[order].astype(np.float64)
    counts = np.bincount(index, minlength=target.size)
    ends = np.cumsum(counts)
    covered = counts > 0
    lower = (ends - counts + (counts - 1) // 2)[covered]
    upper = (ends - counts + counts // 2)[covered]
    median = np.zeros(target.size)
    median[covered] = 0.5 * (sorted_values[lower] + sorted_values[upper])
    median = median.reshape(target.shape)[grid.crop]
    covered = covered.reshape(target.shape)[grid.crop]
    _fill_uncovered(median, covered, fill_value)
    accumulator._dtype = patches.dtype
    image = accumulator._to_image(median)
    if not return_weights:
        return image
    coverage = counts.reshape(target.shape)[grid.crop]
    if accumulator.n_channels is not None:
        coverage = coverage[..., 0]
    return image, coverage.astype(np.float64)


def _fill_uncovered(image, covered, fill_value):
    uncovered = ~covered
    if not uncovered.any():
        return
    if fill_value is None:
        first = tuple(int(i) for i in np.argwhere(uncovered)[0])
        raise ValueError(
            f"{int(uncovered.sum())} values are not covered by any patch (the first at "
            f"{first}); use a step <= patch_size, another padding, or pass a fill_value"
        )
    image[uncovered] = fill_value


def _patch_size_from(patches, image_shape, channel_axis):
    image_shape = tuple(image_shape)
    n_spatial = len(image_shape) - (channel_axis is not None)
    if patches.ndim != 1 + len(image_shape):
        raise ValueError(
            f"patches for an image of shape {image_shape} (channel_axis="
            f"{channel_axis}) must have {1 + len(image_shape)} axes, (n_patches, "
            f"*patch_size{', n_channels' if channel_axis is not None else ''}); got "
            f"shape {patches.shape}"
        )
    return patches.shape[1 : 1 + n_spatial]


def _canvas_origins(grid, patches, origins):
    """Check ``origins`` against ``patches``; canvas origins, None for the full grid."""
    if origins is None:
        _check_full_grid(patches, grid)
        return None
    canvas_origins = grid.to_canvas(origins)
    if len(canvas_origins) != len(patches):
        raise ValueError(
            f"got {len(patches)} patches but {len(canvas_origins)} origins"
        )
    return canvas_origins


def _check_full_grid(patches, grid):
    if len(patches) != grid.n_patches:
        raise ValueError(
            f"expected {grid.n_patches} patches (grid {grid.grid_shape}) for "
            f"{grid.describe()}; got {len(patches)}. To reconstruct from a subset of "
            f"patches, pass their origins=."
        )


def _element_strides(array):
    return [s // array.itemsize for s in array.strides]


def _outer(vectors, ufunc=np.multiply):
    result = vectors[0]
    for v in vectors[1:]:
        result = ufunc.outer(result, v)
    return result
