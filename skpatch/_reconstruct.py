"""Putting images back together from patches: weighted mean, median, streaming."""

import itertools
import math

import numpy as np
from scipy import sparse

try:  # scipy's compiled kernel behind csr_array @ vector, used to accumulate in place
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover - the public product is used instead
    _csr_matvec = None

from ._extract import prepare_grid
from ._validation import (
    check_fits_in_memory,
    check_numeric_array,
    output_float_dtype,
)
from ._windows import axis_windows, is_uniform, patch_window

# Patches at arbitrary origins are scattered in blocks of about this many values:
# large enough to make the per-block Python cost negligible, small enough for the
# block, its indices and its weighted copy to stay in the CPU cache.
BLOCK_VALUES = 2**16
# A full grid is folded a few grid rows at a time, about this many bytes of float64
# patch values per block, so that the block and its partial sums stay in cache.
FOLD_BLOCK_BYTES = 2**22
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
    Sums are taken in float64. A full grid is merged a few grid rows at a time
    (overlap-added axis by axis when the last step is 1, through cached sparse
    scatter matrices otherwise), patches at given origins block by block, so
    besides the patches the mean merge allocates only a few image-sized arrays
    and never a second patch matrix. The median merge sorts every value with its
    pixel index, which needs about four times the memory of the patch matrix.

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
        image = accumulator._result(fill_value, in_place=True)
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
    dtype : {None, float32, float64}, default=None
        dtype of the result. ``None`` follows the patches: float32 for float32
        patches, float64 otherwise. Sums are always accumulated in float64.

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
        channels = () if self.n_channels is None else (self.n_channels,)
        canvas_shape = self.grid.padded_shape + channels
        check_fits_in_memory(
            16 * math.prod(canvas_shape),
            f"reconstructing an image of shape {self.image_shape}",
            "check image_shape",
        )
        self._sum = np.zeros(canvas_shape)
        # Weights of full-grid adds with a separable window are kept as a count of
        # such adds (their weight map is an outer product of 1-D sums); a weight
        # canvas is allocated only when patches arrive at arbitrary origins.
        self._weights = None
        self._grid_adds = 0
        self._dtype = None
        self._inpatch = _inpatch_offsets(self.grid.patch_size, self._sum)
        self._full_window = self._window_per_value()
        self._uniform = is_uniform(weights)
        self._value_weights = None if self._uniform else self._full_window.reshape(-1)

    def _window_per_value(self):
        """The window with one weight per patch value (channels included)."""
        window = self._window
        if window.ndim < self._sum.ndim:
            window = np.broadcast_to(window[..., np.newaxis], self._inpatch_shape)
        return np.ascontiguousarray(window)

    @property
    def _inpatch_shape(self):
        return self.grid.patch_size + self._sum.shape[self.grid.ndim :]

    @property
    def weight_sum(self):
        if self._weights is None:
            weights = self._grid_adds * self._separable_weight_map()
        else:
            weights = self._weights
            if self._window.ndim == self.grid.ndim and self.n_channels is not None:
                weights = weights[..., 0]
        return np.array(weights[self.grid.crop], dtype=np.float64)

    def add(self, patches, origins=None):
        """Add a batch of patches at ``origins`` (image coordinates).

        ``origins=None`` means the whole grid, in order. Returns ``self``.
        """
        patches = self._check_patches(patches)
        canvas_origins = _canvas_origins(self.grid, patches, origins)
        self._dtype = np.result_type(*(d for d in (self._dtype, patches.dtype) if d))
        if canvas_origins is None:
            self._add_grid(patches)
        else:
            _scatter_at(
                self._sum,
                self._weight_canvas(),
                patches,
                self._flat_origins(canvas_origins),
                self._inpatch,
                self._value_weights,
            )
        return self

    def result(self, fill_value=np.nan):
        """Return the image averaged so far; uncovered pixels get ``fill_value``.

        ``fill_value=None`` raises a ValueError if any pixel is uncovered.
        """
        return self._result(fill_value, in_place=False)

    def _result(self, fill_value, *, in_place):
        total = self._sum[self.grid.crop]
        if not np.isfinite(total.sum()):
            raise ValueError(
                "patches contain NaN or infinite values; reconstruction needs finite "
                "patches (NaN is also how uncovered pixels are reported)"
            )
        total = total if in_place else total.copy()
        if self._weights is None:
            covered = self._divide_by_separable_weights(total)
        else:
            weights = self._weights[self.grid.crop]
            covered = weights > 0
            np.divide(total, weights, out=total, where=covered)
        _fill_uncovered(total, covered, fill_value, self.grid.ndim)
        return self._to_image(total)

    def _add_grid(self, patches):
        separable = self._weights is None and self._axis_windows is not None
        weight_target = None if separable else self._weight_canvas()
        if self.grid.step[-1] == 1:
            self._fold_full_grid(patches, weight_target)
        else:
            _scatter_grid(
                self._sum,
                weight_target,
                patches,
                self._flat_origins(None),
                self._inpatch,
                self._value_weights,
                _grid_block_bounds(self.grid, len(self._inpatch)),
            )
        self._grid_adds += separable

    def _fold_full_grid(self, patches, weight_target):
        """Overlap-add a full grid whose last axis has step 1 (see ``_fold_grid``).

        With step 1 on the last axis, every addition of the fold runs over one
        long line of values. With larger steps the lines break into pieces of a
        patch row each, and the sparse scatter of ``_scatter_grid`` is faster.
        """
        layout = self.grid.grid_shape + self._inpatch_shape
        window = None if self._uniform else self._full_window
        _fold_grid(self._sum, patches.reshape(layout), self.grid, window)
        if weight_target is not None:
            windows = np.broadcast_to(self._full_window, layout)
            _fold_grid(weight_target, windows, self.grid, None)

    def _weight_canvas(self):
        """The per-value weight canvas, allocated (with the grid adds so far) on use."""
        if self._weights is None:
            self._weights = np.zeros(self._sum.shape)
            separable = self._separable_weight_map()
            if separable.ndim < self._sum.ndim:
                separable = separable[..., np.newaxis]
            self._weights += self._grid_adds * separable
            self._grid_adds = 0
        return self._weights

    def _separable_weight_map(self):
        if self._axis_windows is None:
            return np.zeros(self.grid.padded_shape)
        return _outer(self.grid.axis_weight_sums(self._axis_windows))

    def _divide_by_separable_weights(self, total):
        """Divide by the outer product of 1-D weight sums, one axis at a time."""
        covered = np.full((1,) * total.ndim, self._grid_adds > 0)
        if self._grid_adds == 0:
            return covered
        axis_sums = self.grid.axis_weight_sums(self._axis_windows)
        for axis, (axis_sum, crop) in enumerate(
            zip(axis_sums, self.grid.crop, strict=True)
        ):
            shape = [1] * total.ndim
            shape[axis] = -1
            factor = self._grid_adds * axis_sum[crop] if axis == 0 else axis_sum[crop]
            factor = factor.reshape(shape)
            positive = factor > 0
            # A masked divide is several times slower; most grids cover every pixel.
            np.divide(
                total, factor, out=total, where=True if positive.all() else positive
            )
            covered = covered & positive
        return covered

    def _to_image(self, canvas_image):
        dtype = self.dtype or output_float_dtype(self._dtype or np.float64)
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

    def _flat_origins(self, canvas_origins):
        """Flat offsets of patch origins in the canvas (the full grid when None)."""
        strides = _element_strides(self._sum)[: self.grid.ndim]
        if canvas_origins is None:
            per_axis = [
                o * s for o, s in zip(self.grid.axis_origins, strides, strict=True)
            ]
            return _outer(per_axis, np.add).ravel()
        return canvas_origins @ np.asarray(strides, dtype=np.intp)


def _inpatch_offsets(patch_size, canvas):
    """Flat offsets in ``canvas`` of every value inside one patch."""
    extent = patch_size + canvas.shape[len(patch_size) :]
    per_axis = [
        np.arange(n) * s for n, s in zip(extent, _element_strides(canvas), strict=True)
    ]
    return _outer(per_axis, np.add).ravel()


def _blocks(patches, bounds):
    """Yield ``(start, rows)`` for each block ``bounds[k]:bounds[k + 1]``, as 2-D."""
    flat = patches.reshape(len(patches), -1) if patches.flags.c_contiguous else None
    for start, stop in itertools.pairwise(bounds):
        rows = flat[start:stop] if flat is not None else patches[start:stop]
        yield start, rows.reshape(stop - start, -1)


def _fold_grid(target, grid_patches, grid, window):
    """Add a full grid of patches, laid out as ``(*grid_shape, *patch[, C])``.

    Overlap-adding is separable: the patches of a regularly spaced block are
    summed along the last axis first (patch axis and grid axis collapse into one
    canvas axis), then along the one before, and so on, a few grid rows at a
    time so that the partial sums stay in cache. Along an axis with step 1 the
    in-patch offsets are first summed pairwise (``_pair_offsets``); what is left
    is a loop over offsets whose numpy additions run over long strided lines.
    """
    for index, origin, step in grid.regular_subgrids():
        _fold_regular(target, grid_patches[index], origin, step, window)


def _fold_regular(target, patches, origin, step, window):
    """Overlap-add a regular block of patches whose first patch sits at ``origin``.

    Every block of grid rows goes through the same numpy calls on the same
    buffers, so they are worked out once per block length (a ``_FoldPlan``) and
    replayed: the Python work per block is then a few calls, not the slicing
    that chooses them.
    """
    row_bytes = 8 * math.prod(patches.shape[1:])
    rows = max(1, FOLD_BLOCK_BYTES // row_bytes)
    buffers, plans = {}, {}
    for first in range(0, patches.shape[0], rows):
        block = patches[first : first + rows]
        corner = (origin[0] + first * step[0], *origin[1:])
        sources = {
            "block": block,
            "target": target[tuple(slice(c, None) for c in corner)],
        }
        plan = plans.get(len(block))
        if plan is None:
            plan = plans[len(block)] = _FoldPlan(sources)
            _fold_block(plan, step, window, buffers)
        else:
            plan.replay(sources)


def _fold_block(plan, step, window, buffers):
    """Fold the plan's block into its target rows, recording every numpy call."""
    block = plan.ref("block")
    if window is not None or block.dtype != np.float64:
        scratch = _reused_buffer(buffers, "scratch", block.shape)
        if window is None:
            plan.copy(scratch, block)
        else:
            plan.call(np.multiply, block, window, scratch)
        block = scratch
    for axis in reversed(range(1, len(step))):
        block = _fold_axis(plan, block, axis, step, buffers)
    _fold_rows_into(plan, plan.ref("target"), block, step, buffers)


class _FoldPlan:
    """The numpy calls that fold one block, recorded to be replayed on the next.

    Operands sliced from the block or from its target rows are kept as
    ``_Ref`` chains of indices and resolved against each new block; buffers
    are the same arrays for every block of the same length.
    """

    def __init__(self, sources):
        self.sources = sources
        self.calls = []

    def ref(self, name):
        return _Ref(self.sources[name], name, ())

    def call(self, func, *operands):
        """Run ``func(*operands)`` now and record it."""
        func(*(_resolve(x, self.sources) for x in operands))
        self.calls.append((func, operands))

    def add(self, a, b, out):
        self.call(np.add, a, b, out)

    def copy(self, out, source):
        self.call(np.copyto, out, source)

    def replay(self, sources):
        for func, operands in self.calls:
            func(*(_resolve(x, sources) for x in operands))


class _Ref:
    """A view of a plan source that remembers the indexing that made it."""

    __slots__ = ("array", "chain", "source")

    def __init__(self, array, source, chain):
        self.array, self.source, self.chain = array, source, chain

    def __getitem__(self, index):
        return _Ref(self.array[index], self.source, (*self.chain, index))

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype


def _resolve(operand, sources):
    if not isinstance(operand, _Ref):
        return operand
    view = sources[operand.source]
    for index in operand.chain:
        view = view[index]
    return view


def _reused_buffer(buffers, key, shape, axis=0, margin=0):
    """A float64 array of ``shape``, carved from one allocated for the first block.

    A fresh array of this size per block would be mapped from the operating
    system and page-faulted in every time; reusing one keeps it in cache.

    With a ``margin``, the array has that many zeros before and after ``axis``
    (it is returned with them). They are never written, so they stay zero
    across blocks, except along axis 0, where a shorter last block would see
    stale rows: those are cleared (once, when its plan is made).
    """
    padded_shape = list(shape)
    padded_shape[axis] += 2 * margin
    full = buffers.get(key)
    if (
        full is None
        or full.shape[1:] != tuple(padded_shape[1:])
        or len(full) < padded_shape[0]
    ):
        full = buffers[key] = np.zeros(padded_shape)
    padded = full[: padded_shape[0]]
    if axis == 0 and margin and len(full) > padded_shape[0]:
        padded[-margin:] = 0
    return padded


def _fold_axis(plan, values, axis, step, buffers):
    """Sum grid axis ``axis`` and its patch axis into one canvas axis.

    ``values`` is laid out as ``(rows, *grid[1:axis + 1], *canvas[axis + 1:],
    *patch[:axis + 1], *channels)``; the result drops the patch axis and puts the
    canvas axis in the place of the grid axis. Channels get a loop of their own
    so that the remaining axes of every addition merge into one long line.
    """
    ndim, s = len(step), step[axis]
    groups, shift = _offset_groups(plan, values, axis, ndim, s, buffers)
    n, q = groups.shape[axis], groups.shape[ndim + axis]
    if q == 1 and s == 1:  # one group left (all paired): already the folded axis
        return groups[(slice(None),) * (ndim + axis) + (0,)]
    shape = list(groups.shape)
    del shape[ndim + axis]
    shape[axis] = (n - 1) * s + (q - 1) * shift + 1
    folded = _reused_buffer(buffers, axis, shape)
    # With step 1 the first group covers positions 0..n-1: assign it, zero the rest.
    lead = (slice(None),) * axis
    plan.copy(folded[(*lead, slice(n if s == 1 else 0, None))], 0)
    _add_offset_groups(plan, folded, groups, axis, ndim, s, shift, assign_first=s == 1)
    return folded


def _offset_groups(plan, values, axis, ndim, s, buffers):
    """The in-patch offsets of ``axis`` in groups, and the canvas shift between two.

    With step 1 they are summed pairwise first (``_pair_offsets``); otherwise
    every offset is a group of its own, one position after the previous.
    """
    if s != 1:
        return values, 1
    return _pair_offsets(plan, values, axis, ndim, buffers)


def _add_offset_groups(plan, out, groups, axis, ndim, s, shift, assign_first):
    """Add group ``a`` of ``axis`` to ``out`` from position ``a * shift``, every ``s``.

    With ``assign_first`` the first group is copied in instead (nothing has been
    summed there yet). Channels get a loop of their own so that the remaining
    axes of every addition merge into one long line.
    """
    n, q = groups.shape[axis], groups.shape[ndim + axis]
    lead = (slice(None),) * axis
    pick = (slice(None),) * (ndim + axis)
    for channel in _channel_indices(_channel_shape(groups, axis, ndim)):
        for a in range(q):
            lines = (*lead, slice(a * shift, a * shift + (n - 1) * s + 1, s))
            source = groups[(*pick, a, *channel)]
            target = out[(*lines, Ellipsis, *channel)]
            if assign_first and a == 0:
                plan.copy(target, source)
            else:
                plan.add(target, source, target)


def _pair_offsets(plan, values, axis, ndim, buffers):
    """Pre-sum the in-patch offsets of ``axis`` pairwise, for step 1 along it.

    Offsets ``2b`` and ``2b + 1`` of patches ``y`` and ``y - shift`` land on the
    same canvas position, so they are added in one pass: even and odd offsets
    sit side by side in memory and are read together, and each level halves
    the data that the next one touches. Levels go on while the number of
    offset groups is even; returns the groups and the canvas shift between two
    consecutive groups.

    A level whose output feeds another level writes it between zero margins
    along ``axis``, so the next level is one addition over its whole range
    instead of an addition plus two edge copies.
    """
    shift, margin = 1, 0
    lead = (slice(None),) * axis
    pick = (slice(None),) * (ndim + axis)
    channels = _channel_indices(_channel_shape(values, axis, ndim))
    padded = values  # ``values`` with its zero margins (none for the patches)
    while _pairs_left(values.shape, axis, ndim, shift):
        n = values.shape[axis]
        shape = list(values.shape)
        shape[axis] += shift
        shape[ndim + axis] //= 2
        out_margin = 2 * shift if _pairs_left(shape, axis, ndim, 2 * shift) else 0
        out_padded = _reused_buffer(
            buffers, ("paired", axis, shift), shape, axis, out_margin
        )
        out_region = (*lead, slice(out_margin, out_margin + n + shift))
        for channel in channels:
            even = padded[(*pick, slice(0, None, 2), *channel)]
            odd = padded[(*pick, slice(1, None, 2), *channel)]
            out = out_padded[(*pick, slice(None), *channel)][out_region]
            if margin >= shift:
                plan.add(
                    even[(*lead, slice(margin, margin + n + shift))],
                    odd[(*lead, slice(margin - shift, margin + n))],
                    out,
                )
                continue
            plan.add(
                even[(*lead, slice(shift, None))],
                odd[(*lead, slice(None, n - shift))],
                out[(*lead, slice(shift, n))],
            )
            plan.copy(
                out[(*lead, slice(None, shift))], even[(*lead, slice(None, shift))]
            )
            plan.copy(
                out[(*lead, slice(n, None))], odd[(*lead, slice(n - shift, None))]
            )
        values = out_padded[out_region]
        padded, margin, shift = out_padded, out_margin, 2 * shift
    return values, shift


def _pairs_left(shape, axis, ndim, shift):
    """Whether the offsets of ``axis`` can be paired once more at ``shift``."""
    return shape[ndim + axis] % 2 == 0 and shape[axis] >= shift


def _fold_rows_into(plan, target, values, step, buffers):
    """Add the block's grid rows, folded on every other axis, to its target rows.

    ``values`` is laid out as ``(rows, *canvas[1:], patch[0], *channels)``;
    ``target`` starts at the canvas position of the block's first patch.
    """
    ndim, s = len(step), step[0]
    groups, shift = _offset_groups(plan, values, 0, ndim, s, buffers)
    region = tuple(slice(0, size) for size in groups.shape[1:ndim])
    _add_offset_groups(
        plan,
        target[(slice(None), *region)],
        groups,
        0,
        ndim,
        s,
        shift,
        assign_first=False,
    )


def _channel_shape(values, axis, ndim):
    """The channel axes of ``values``, laid out as ``(..., *patch[:axis + 1], *C)``."""
    return values.shape[ndim + axis + 1 :]


def _channel_indices(channel_shape):
    """Every index into the channel axes (one empty index when there are none)."""
    return list(itertools.product(*map(range, channel_shape)))


def _scatter_grid(
    target, weight_target, patches, origin_offsets, inpatch, weights, bounds
):
    """Add patches laid on a grid into ``target`` with sparse scatter matrices.

    A block of patches is added as ``target[base:base + span] += S @ values``
    where ``S`` maps each value (times its weight) to its flat position relative
    to the block's first origin. Blocks of whole grid rows have the same layout,
    so a few matrices serve them all; the compiled sparse product handles the
    overlaps and reads the patch matrix once, in order.
    """
    flat = target.reshape(-1)
    weight_flat = None if weight_target is None else weight_target.reshape(-1)
    matrices = {}
    for start, rows in _blocks(patches, bounds):
        offsets = origin_offsets[start : start + len(rows)]
        base = offsets[0]
        layout = (offsets - base).tobytes()
        if layout not in matrices:
            # A layout seen once (the last block of a grid) is not worth a matrix.
            matrices[layout] = None
            _add_block_at(flat, weight_flat, rows, offsets, inpatch, weights)
            continue
        if matrices[layout] is None:
            matrix = _scatter_matrix(offsets - base, inpatch, weights)
            row_weights = None if weight_flat is None else matrix.sum(axis=1)
            matrices[layout] = matrix, row_weights
        matrix, row_weights = matrices[layout]
        span = slice(base, base + matrix.shape[0])
        _add_matvec(flat[span], matrix, rows.reshape(-1))
        if weight_flat is not None:
            weight_flat[span] += row_weights


def _scatter_matrix(relative_origins, inpatch, weights):
    """CSR matrix taking a block's values to its flat canvas positions."""
    indices = (relative_origins[:, np.newaxis] + inpatch).reshape(-1)
    n_values = len(indices)
    data = (
        np.ones(n_values)
        if weights is None
        else np.tile(weights, len(relative_origins))
    )
    # 32-bit indices where they fit: the kernel then streams a third less memory
    index_dtype = np.int32 if n_values < np.iinfo(np.int32).max else np.int64
    by_column = sparse.csc_array(
        (data, indices.astype(index_dtype), np.arange(n_values + 1, dtype=index_dtype)),
        shape=(int(indices.max()) + 1, n_values),
    )
    matrix = by_column.tocsr()
    matrix.indptr = matrix.indptr.astype(matrix.indices.dtype, copy=False)
    return matrix


def _add_matvec(out, matrix, values):
    """``out += matrix @ values`` in place, without a temporary where possible.

    scipy's compiled CSR kernel accumulates into its output; calling it directly
    saves allocating, zeroing and adding a temporary per block (a third of the
    time). The public product is the fallback.
    """
    values = values.astype(np.float64, copy=False)
    if _csr_matvec is None:
        out += matrix @ values
        return
    n_rows, n_cols = matrix.shape
    _csr_matvec(n_rows, n_cols, matrix.indptr, matrix.indices, matrix.data, values, out)


def _scatter_at(target, weight_target, patches, origin_offsets, inpatch, weights):
    """Add patches at arbitrary origins into ``target`` with ``np.add.at``."""
    flat, weight_flat = target.reshape(-1), weight_target.reshape(-1)
    bounds = _even_bounds(len(patches), max(1, BLOCK_VALUES // len(inpatch)))
    for start, rows in _blocks(patches, bounds):
        offsets = origin_offsets[start : start + len(rows)]
        _add_block_at(flat, weight_flat, rows, offsets, inpatch, weights)


def _even_bounds(n_patches, block):
    return [*range(0, n_patches, block), n_patches]


def _add_block_at(flat, weight_flat, rows, offsets, inpatch, weights):
    indices = (offsets[:, np.newaxis] + inpatch).reshape(-1)
    row_weights = np.broadcast_to(1.0 if weights is None else weights, rows.shape)
    np.add.at(flat, indices, (rows * row_weights).reshape(-1))
    if weight_flat is not None:
        np.add.at(weight_flat, indices, row_weights.reshape(-1))


def _grid_block_bounds(grid, values_per_patch):
    """Block boundaries made of whole grid rows (or planes) where they fit.

    Blocks never straddle the next larger unit of the grid, so all blocks but the
    last of each unit share one layout.
    """
    cap = max(1, BLOCK_VALUES // values_per_patch)
    unit, parent = 1, grid.n_patches
    for n in reversed(grid.grid_shape[1:]):
        if unit * n > cap:
            parent = unit * n
            break
        unit *= n
    block = cap // unit * unit
    return [
        *(
            start
            for first in range(0, grid.n_patches, parent)
            for start in range(first, min(first + parent, grid.n_patches), block)
        ),
        grid.n_patches,
    ]


def _median_reconstruct(
    accumulator, patches, origins, weights, fill_value, return_weights
):
    if not is_uniform(weights):
        raise ValueError(f"aggregate='median' needs weights='uniform', got {weights!r}")
    patches = accumulator._check_patches(patches)
    canvas_origins = _canvas_origins(accumulator.grid, patches, origins)
    if not np.all(np.isfinite(patches)):
        raise ValueError(
            "patches contain NaN or infinite values; the median needs finite patches"
        )
    check_fits_in_memory(
        4 * patches.size * 8,
        "the median of the patch values",
        "use aggregate='mean', or fewer patches",
    )
    canvas = accumulator._sum
    index = (
        accumulator._flat_origins(canvas_origins)[:, np.newaxis] + accumulator._inpatch
    ).reshape(-1)
    median, counts = _grouped_median(index, patches.reshape(-1), canvas.size)
    crop = accumulator.grid.crop
    median = median.reshape(canvas.shape)[crop]
    counts = counts.reshape(canvas.shape)[crop]
    _fill_uncovered(median, counts > 0, fill_value, accumulator.grid.ndim)
    accumulator._dtype = patches.dtype
    image = accumulator._to_image(median)
    if not return_weights:
        return image
    if accumulator.n_channels is not None:
        counts = counts[..., 0]
    return image, counts.astype(np.float64)


def _grouped_median(index, values, size):
    """Median of ``values`` grouped by ``index`` in ``range(size)``, and group sizes.

    One sort by (index, value) puts every group in order; the median of a group
    of ``n`` sorted values is the mean of its elements ``(n - 1) // 2`` and
    ``n // 2``.
    """
    sorted_values = values[np.lexsort((values, index))].astype(np.float64)
    counts = np.bincount(index, minlength=size)
    starts = np.cumsum(counts) - counts
    covered = counts > 0
    lower = (starts + (counts - 1) // 2)[covered]
    upper = (starts + counts // 2)[covered]
    median = np.zeros(size)
    median[covered] = 0.5 * (sorted_values[lower] + sorted_values[upper])
    return median, counts


def _fill_uncovered(image, covered, fill_value, n_spatial):
    """Set values no patch covers to ``fill_value``, or raise if it is None.

    ``image`` and ``covered`` are in canvas layout (channels last); coverage is
    the same for every channel, so pixels are counted on the spatial axes.
    """
    uncovered = ~np.broadcast_to(covered, image.shape)
    if not uncovered.any():
        return
    if fill_value is None:
        pixels = uncovered.reshape(*uncovered.shape[:n_spatial], -1)[..., 0]
        first = tuple(int(i) for i in np.argwhere(pixels)[0])
        raise ValueError(
            f"{int(pixels.sum())} pixels are not covered by any patch (the first at "
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


def _check_result_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be None, float32 or float64, got {dtype}")
    return dtype
