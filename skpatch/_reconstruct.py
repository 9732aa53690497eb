"""Putting images back together from patches: weighted mean, median, mode, streaming.

The loops are compiled (``_kernels``); this module checks the input, asks the
geometry where every patch goes and chooses what to accumulate.
"""

import functools
import math
import numbers

import numpy as np

from . import _kernels
from ._extract import prepare_grid
from ._validation import check_fits_in_memory, check_numeric_array, output_float_dtype
from ._windows import axis_windows, is_uniform, patch_window

AGGREGATES = ("mean", "median", "mode")
# Canvas values per band of the median and mode merges: the band's values
# (coverage times this) stay within the CPU cache for 8x8 patches with step 1.
BAND_VALUES = 2**12
# Patches converted to float64 at a time when they come in another dtype.
CONVERT_BLOCK_VALUES = 2**20


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
    aggregate : {'mean', 'median', 'mode'}, default='mean'
        How overlapping values are merged. ``'median'`` takes, for every pixel,
        the median of the values of the patches covering it (robust to
        outliers). ``'mode'`` takes the most frequent value, the smallest on
        ties: the merge for label images (segmentation masks, classes), which
        needs integer or boolean patches and returns their dtype. Both need
        ``weights='uniform'``.
    fill_value : float or None, default=nan
        Value of pixels that no patch covers (possible with ``step > patch_size``,
        ``padding='valid'`` or a subset of patches). ``None`` raises instead.
        With ``aggregate='mode'`` it must be an integer the label dtype holds
        (the default NaN is refused when a pixel is uncovered).
    return_weights : bool, default=False
        Also return the total weight of every pixel (the coverage count with
        uniform weights).

    Returns
    -------
    image : ndarray of shape image_shape
        float32 for float32 patches, float64 otherwise; the dtype of the
        patches with ``aggregate='mode'``.
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
    Sums are taken in float64 by a compiled loop that reads the patch matrix
    once, in order (float32 patches are read as they are), so besides the
    patches the mean merge allocates a few image-sized arrays and never a
    second patch matrix. The median and the mode sort the covering values out
    band by band (a band is a few image rows) and select within each pixel's
    values; their memory is a few images plus one band's values.

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
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    accumulator = PatchAccumulator(
        image_shape,
        patch_size,
        step=step,
        offset=offset,
        padding=padding,
        channel_axis=channel_axis,
        weights=weights,
    )
    if aggregate != "mean":
        return _select_reconstruct(
            accumulator, patches, origins, aggregate, fill_value, return_weights
        )
    image = accumulator.add(patches, origins).result(fill_value)
    return (image, accumulator.weight_sum) if return_weights else image


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
    dtype : {None, float32, float64}, default=None
        dtype of the result. ``None`` follows the patches: float32 for float32
        patches, float64 otherwise. Sums are always accumulated in float64.

    Attributes
    ----------
    grid : PatchGrid
        The geometry.
    weight_sum : ndarray
        Total weight per pixel so far, in the image's spatial shape.
    value_sum : ndarray
        Weighted sum of the patch values per pixel so far, in the image's shape
        (float64): ``value_sum / weight_sum`` is the average.

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
        dtype=None,
    ):
        self.image_shape = tuple(image_shape)
        self.dtype = None if dtype is None else _check_result_dtype(dtype)
        self.grid, self.n_channels, self.channel_axis = prepare_grid(
            self.image_shape, patch_size, step, offset, padding, channel_axis
        )
        self.weights = weights
        self._window = patch_window(weights, self.grid.patch_size, self.n_channels)
        self._axis_windows = axis_windows(weights, self.grid.patch_size)
        self._canvas_shape = self.grid.padded_shape + (
            () if self.n_channels is None else (self.n_channels,)
        )
        check_fits_in_memory(
            16 * math.prod(self._canvas_shape),
            f"reconstructing an image of shape {self.image_shape}",
            "check image_shape",
        )
        # The sums are allocated on the first add. Weights of full-grid adds with a
        # separable window are kept as a count of such adds (their weight map is an
        # outer product of 1-D sums); a weight canvas is allocated only when patches
        # arrive at arbitrary origins or the window is an array.
        self._sum_canvas = None
        self._weights = None
        self._grid_adds = 0
        self._dtype = None
        self._value_window = (
            None if is_uniform(weights) else self._window_per_value().reshape(-1)
        )

    def _new_canvas(self, dtype=np.float64):
        return new_canvas(self._canvas_shape, self.grid.patch_size, dtype)

    @property
    def _sum(self):
        if self._sum_canvas is None:
            self._sum_canvas = self._new_canvas()
        return self._sum_canvas

    def _window_per_value(self):
        """The window with one weight per patch value (channels included)."""
        window = self._window
        if window.ndim < len(self._canvas_shape):
            window = np.broadcast_to(window[..., np.newaxis], self._inpatch_shape)
        return np.ascontiguousarray(window)

    @property
    def _inpatch_shape(self):
        return self.grid.patch_size + self._canvas_shape[self.grid.ndim :]

    @property
    def weight_sum(self):
        if self._weights is None:
            weights = self._grid_adds * self._separable_weight_map()
        else:
            weights = self._weights
            if self._window.ndim == self.grid.ndim and self.n_channels is not None:
                weights = weights[..., 0]
        return np.array(weights[self.grid.crop], dtype=np.float64)

    @property
    def value_sum(self):
        """Weighted sum of the patch values per pixel so far, in the image's shape.

        The numerator of the average :meth:`result` returns (whose denominator
        is :attr:`weight_sum`), in float64: sums of several accumulators over
        the same pixels can be added before dividing.
        """
        values = np.array(self._sum[self.grid.crop], dtype=np.float64)
        if self.channel_axis is not None:
            values = np.moveaxis(values, -1, self.channel_axis)
        return values

    def add(self, patches, origins=None):
        """Add a batch of patches at ``origins`` (image coordinates).

        ``origins=None`` means the whole grid, in order. Returns ``self``.
        """
        patches = self._check_patches(patches)
        canvas_origins = _canvas_origins(self.grid, patches, origins)
        self._dtype = np.result_type(*(d for d in (self._dtype, patches.dtype) if d))
        strides = canvas_strides(self._sum)
        outer, inner = self.grid._flat_origins(strides, canvas_origins)
        row_offsets = self.grid._row_offsets(strides)
        separable = canvas_origins is None and self._weights is None
        separable = separable and self._axis_windows is not None
        weights = None if separable else canvas_values(self._weight_canvas())
        for start, rows in _float_rows(patches, len(inner)):
            _kernels.add_patches(
                canvas_values(self._sum),
                rows,
                outer[start // len(inner) : (start + len(rows)) // len(inner)],
                inner,
                row_offsets,
                self._value_window,
                weights,
            )
        self._grid_adds += separable
        return self

    def result(self, fill_value=np.nan):
        """Return the image averaged so far; uncovered pixels get ``fill_value``.

        ``fill_value=None`` raises a ValueError if any pixel is uncovered.
        """
        grid, strides = self.grid, canvas_strides(self._sum)
        dtype = self.dtype or output_float_dtype(self._dtype or np.float64)
        image = np.empty(self._image_canvas_shape, dtype)
        row_scale, column_scale, weights = self._inverse_weights()
        finite = _kernels.divide_rows(
            image.reshape(-1, math.prod(self._image_canvas_shape[grid.ndim - 1 :])),
            canvas_values(self._sum),
            grid._image_row_starts(strides),
            row_scale,
            column_scale,
            weights,
        )
        if not finite:
            raise ValueError(
                "patches contain NaN or infinite values; reconstruction needs finite "
                "patches (NaN is also how uncovered pixels are reported)"
            )
        if fill_value is None or not (
            isinstance(fill_value, numbers.Real) and math.isnan(fill_value)
        ):
            _fill_uncovered(image, self._covered(), fill_value, grid.ndim)
        if self.channel_axis is not None:
            image = np.ascontiguousarray(np.moveaxis(image, -1, self.channel_axis))
        return image

    @property
    def _image_canvas_shape(self):
        """The image's shape with channels last."""
        return self.grid.image_shape + self._canvas_shape[self.grid.ndim :]

    def _inverse_weights(self):
        """For ``divide_rows``: inverse row and column weights, or the weights."""
        if self._weights is not None:
            return None, None, canvas_values(self._weights)
        inverse = [np.full(n, np.nan) for n in self.grid.image_shape]
        if self._grid_adds:
            sums = self.grid._axis_weight_sums(self._axis_windows)
            for axis_inverse, axis_sum, crop in zip(
                inverse, sums, self.grid.crop, strict=True
            ):
                covered = axis_sum[crop] > 0
                np.divide(1.0, axis_sum[crop], out=axis_inverse, where=covered)
        n_channels = self._image_canvas_shape[self.grid.ndim :]
        column = np.repeat(inverse[-1] / max(self._grid_adds, 1), math.prod(n_channels))
        rows = _outer(inverse[:-1]).ravel() if len(inverse) > 1 else np.ones(1)
        return rows, column, None

    def _covered(self):
        """Which pixels some patch covers (broadcastable to the channels-last image)."""
        if self._weights is not None:
            covered = self._weights[self.grid.crop] > 0
            if self.n_channels is not None:
                covered = covered[..., 0]
        elif self._grid_adds:
            sums = self.grid._axis_weight_sums(self._axis_windows)
            covered = _outer(
                [s[crop] > 0 for s, crop in zip(sums, self.grid.crop, strict=True)],
                np.logical_and,
            )
        else:
            covered = np.zeros(self.grid.image_shape, dtype=bool)
        return covered if self.n_channels is None else covered[..., np.newaxis]

    def _weight_canvas(self):
        """The per-value weight canvas, allocated (with the grid adds so far) on use."""
        if self._weights is None:
            self._weights = self._new_canvas()
            if self._grid_adds:
                separable = self._separable_weight_map()
                if separable.ndim < self._weights.ndim:
                    separable = separable[..., np.newaxis]
                self._weights += self._grid_adds * separable
                self._grid_adds = 0
        return self._weights

    def _separable_weight_map(self):
        if self._axis_windows is None:
            return np.zeros(self.grid.padded_shape)
        return _outer(self.grid._axis_weight_sums(self._axis_windows))

    def _to_image(self, canvas_image, dtype=None):
        dtype = dtype or self.dtype or output_float_dtype(self._dtype or np.float64)
        if self.channel_axis is not None:
            canvas_image = np.moveaxis(canvas_image, -1, self.channel_axis)
        return np.ascontiguousarray(canvas_image, dtype=dtype)

    def _check_patches(self, patches):
        patches = check_numeric_array(patches, "patches")
        expected = self._inpatch_shape
        if patches.ndim != 1 + len(expected) or patches.shape[1:] != expected:
            raise ValueError(
                f"patches must have shape (n_patches, *{expected}) for image_shape "
                f"{self.image_shape} with channel_axis={self.channel_axis}; got "
                f"{patches.shape}"
            )
        return patches


def new_canvas(shape, patch_size, dtype=np.float64):
    """A zero canvas of ``shape`` (spatial axes, then channels) for the kernels.

    The array is a view into a C-ordered allocation whose inner spatial axes are
    a little longer than the image's, so that the rows of one patch are not at
    the same place in different pages. A store to one row is then not taken for
    a load from another (4 KiB aliasing), and the rows do not compete for the
    same cache sets; on this layout the overlap-add runs up to twice as fast as
    on rows of a power-of-two length. The layout depends on the shape and the
    patch size only (8-byte values), so canvases of one geometry have the same
    strides in elements whatever their dtype.
    """
    return np.zeros(_padded_shape(tuple(shape), tuple(patch_size)), dtype=dtype)[
        tuple(slice(0, n) for n in shape)
    ]


@functools.lru_cache(maxsize=64)
def _padded_shape(shape, patch_size):
    """The allocated shape of :func:`new_canvas`; see there.

    The last spatial axis gets the fewest extra values that make its row stride
    an odd multiple of half a cache line (32 bytes) with the rows of a patch at
    least half a patch row apart modulo 4 KiB; measured best on 2-D grids of 8x8
    and 16x16 patches. An inner axis whose stride is a multiple of 512 bytes
    gets 3 more rows.
    """
    n_spatial = len(patch_size)
    allocated = list(shape)
    if n_spatial > 1:
        pixel = 8 * math.prod(shape[n_spatial:])
        rows = np.arange(1, patch_size[-2])
        half_row = pixel * patch_size[-1] // 2
        for extra in range(64):
            stride = pixel * (shape[n_spatial - 1] + extra)
            page_offsets = rows * stride % 4096
            apart = np.minimum(page_offsets, 4096 - page_offsets)
            if stride % 64 == 32 and (apart >= half_row).all():
                allocated[n_spatial - 1] += extra
                break
    for axis in range(n_spatial - 2, 0, -1):
        if 8 * math.prod(allocated[axis:]) % 512 == 0:
            allocated[axis] += 3
    return tuple(allocated)


def canvas_values(canvas):
    """The flat allocation behind a canvas made by :func:`new_canvas`."""
    return canvas.base.reshape(-1)


def canvas_strides(canvas):
    """The strides of a canvas in elements, as the kernels count them."""
    return tuple(s // canvas.itemsize for s in canvas.strides)


def _float_rows(patches, unit):
    """Yield ``(start, rows)``: the patches as 2-D float32/float64 rows.

    Contiguous float32 and float64 patches come in one block, as they are; other
    dtypes (or layouts) are converted block by block, so that no float64 copy of
    the whole patch matrix is made. Blocks hold a multiple of ``unit`` patches.
    """
    n_patches = len(patches)
    if patches.dtype in (np.float32, np.float64) and patches.flags.c_contiguous:
        yield 0, patches.reshape(n_patches, -1)
        return
    block = max(1, CONVERT_BLOCK_VALUES // (patches[0].size * unit)) * unit
    for start in range(0, n_patches, block):
        rows = patches[start : start + block].reshape(-1, patches[0].size)
        yield start, np.ascontiguousarray(rows, dtype=output_float_dtype(rows.dtype))


def _select_reconstruct(
    accumulator, patches, origins, aggregate, fill_value, return_weights
):
    """The median or the mode of the values covering each pixel."""
    if not is_uniform(accumulator.weights):
        raise ValueError(
            f"aggregate={aggregate!r} needs weights='uniform', got "
            f"{accumulator.weights!r}"
        )
    patches = accumulator._check_patches(patches)
    grid = accumulator.grid
    canvas_origins = _canvas_origins(grid, patches, origins)
    if aggregate == "mode":
        values, dtype = _label_rows(patches, fill_value), patches.dtype
        out = accumulator._new_canvas(values.dtype)
    else:
        values = _comparable_rows(patches)
        dtype = accumulator.dtype or output_float_dtype(patches.dtype)
        out = accumulator._new_canvas()
    coverage = accumulator._new_canvas()
    strides = canvas_strides(out)
    order = first_axis_origins = None
    if canvas_origins is not None:
        order = np.argsort(canvas_origins[:, 0], kind="stable")
        first_axis_origins = canvas_origins[order, 0]
    bounds, first, last = grid._row_bands(
        max(1, BAND_VALUES // strides[0]), first_axis_origins
    )
    kernel = _kernels.mode_by_band if aggregate == "mode" else _kernels.median_by_band
    finite = kernel(
        canvas_values(out),
        canvas_values(coverage),
        values,
        *grid._flat_origins(strides, canvas_origins),
        grid._row_offsets(strides),
        order,
        bounds * strides[0],
        first,
        last,
    )
    if finite is False:
        raise ValueError(
            "patches contain NaN or infinite values; the median needs finite patches"
        )
    counts = coverage[grid.crop]
    image = out[grid.crop]
    _fill_uncovered(image, counts > 0, fill_value, grid.ndim)
    image = accumulator._to_image(image, dtype)
    if not return_weights:
        return image
    if accumulator.n_channels is not None:
        counts = counts[..., 0]
    return image, np.ascontiguousarray(counts)


def _comparable_rows(patches):
    """The patches as 2-D rows of a dtype the median kernel compares directly."""
    rows = patches.reshape(len(patches), -1)
    if rows.dtype == np.bool_:
        return rows.view(np.uint8)
    if rows.dtype.kind == "f" and rows.dtype not in (np.float32, np.float64):
        return rows.astype(np.float64)
    return np.ascontiguousarray(rows)


def _label_rows(patches, fill_value):
    """Integer (or boolean) patches as 2-D rows for the mode kernel, else raise."""
    if patches.dtype.kind not in "biu":
        raise TypeError(
            f"aggregate='mode' merges labels and needs integer or boolean patches, "
            f"got dtype {patches.dtype}; use aggregate='mean' or 'median' for "
            f"measurements, or cast label patches with .astype(int)"
        )
    rows = np.ascontiguousarray(patches.reshape(len(patches), -1))
    return rows.view(np.uint8) if rows.dtype == np.bool_ else rows


def _fill_uncovered(image, covered, fill_value, n_spatial):
    """Set values no patch covers to ``fill_value``, or raise if it is None.

    ``image`` and ``covered`` are in canvas layout (channels last); coverage is
    the same for every channel, so pixels are counted on the spatial axes. An
    integer image (labels merged by their mode) needs an integer it can hold.
    """
    uncovered = ~np.broadcast_to(covered, image.shape)
    if not uncovered.any():
        return
    pixels = uncovered.reshape(*uncovered.shape[:n_spatial], -1)[..., 0]
    where = (
        f"{int(pixels.sum())} pixels are not covered by any patch (the first at "
        f"{tuple(int(i) for i in np.argwhere(pixels)[0])})"
    )
    if fill_value is None:
        raise ValueError(
            f"{where}; use a step <= patch_size, another padding, or pass a fill_value"
        )
    if image.dtype.kind in "biu" and not _holds(image.dtype, fill_value):
        raise ValueError(
            f"{where} and the labels of aggregate='mode' are {image.dtype}, which "
            f"cannot hold fill_value={fill_value!r}; pass an integer fill_value "
            f"that {image.dtype} holds (such as 0)"
        )
    image[uncovered] = fill_value


def _holds(dtype, value):
    """Whether integer ``dtype`` represents ``value`` exactly."""
    if not isinstance(value, numbers.Real) or not float(value).is_integer():
        return False
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


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
    canvas_origins = grid._to_canvas(origins)
    if len(canvas_origins) != len(patches):
        raise ValueError(
            f"got {len(patches)} patches but {len(canvas_origins)} origins"
        )
    return canvas_origins


def _check_full_grid(patches, grid):
    if len(patches) != grid.n_patches:
        raise ValueError(
            f"expected {grid.n_patches} patches (grid {grid.grid_shape}) for "
            f"{grid._describe()}; got {len(patches)}. To reconstruct from a subset of "
            f"patches, pass their origins=."
        )


def _outer(vectors, ufunc=np.multiply):
    result = vectors[0]
    for v in vectors[1:]:
        result = ufunc.outer(result, v)
    return result


def _check_result_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be None, float32 or float64, got {dtype}")
    return dtype
