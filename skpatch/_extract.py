"""Cutting images into patches: copies, random subsets, zero-copy views, batches."""

import math
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.utils import check_random_state
from sklearn.utils.random import sample_without_replacement

from . import _kernels
from ._grid import PatchGrid
from ._validation import (
    PAD_MODES,
    as_axis_tuple,
    check_fits_in_memory,
    check_numeric_array,
    spatial_shape_and_channels,
)

DEFAULT_BATCH_BYTES = 16 * 2**20


def extract_patches(
    image,
    patch_size,
    *,
    step=1,
    offset=0,
    padding=None,
    channel_axis=None,
    max_patches=None,
    random_state=None,
    origins=None,
    return_origins=False,
):
    """Cut an image into patches with any stride, in any number of dimensions.

    Parameters
    ----------
    image : array-like of shape (*spatial_shape) or with one channel axis
        A 1-D signal, 2-D image, 3-D volume, ..., of real numbers.
    patch_size : int or tuple of int
        Spatial patch shape; an int is used on every spatial axis.
    step : int or tuple of int, default=1
        Distance between neighbouring patch origins along each axis.
    offset : int or tuple of int, default=0
        Origin of the first regular patch along each axis, ``0 <= offset < step``.
    padding : {None, 'valid', 'reflect', 'symmetric', 'edge', 'constant', 'wrap'}, \
default=None
        Edge policy, see :class:`PatchGrid`. The default covers every pixel by
        snapping a last patch to the far edge where the steps do not land on it.
    channel_axis : int or None, default=None
        The axis of ``image`` holding channels; patches carry them last.
    max_patches : int or float, default=None
        Return only this many patches (an int) or this fraction of them (a float
        in (0, 1]), drawn at random without replacement and returned in grid order.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the draw of ``max_patches``.
    origins : array-like of shape (n_patches, n_spatial_dims), default=None
        Cut the patches at these origins (image coordinates, negative inside the
        padding of a pad mode) instead of the grid's, in their order; ``step``
        and ``offset`` are then unused. The counterpart of
        ``reconstruct_from_patches(..., origins=...)``.
    return_origins : bool, default=False
        Also return the origin of every patch.

    Returns
    -------
    patches : ndarray of shape (n_patches, *patch_size) or (n_patches, *patch_size, \
n_channels)
        C-contiguous copy with the dtype of ``image``, in C order of the grid (the
        order of scikit-learn's ``extract_patches_2d`` for ``step=1``).
    origins : ndarray of shape (n_patches, n_spatial_dims)
        Returned when ``return_origins``; image coordinates of each patch's first
        pixel (negative inside the padding).

    Raises
    ------
    MemoryError
        Before allocating, if the patch matrix is larger than the memory available;
        :func:`iter_patches` processes it in batches instead.

    See Also
    --------
    patch_view : The same patches as a read-only view, without copying.
    iter_patches : The same patches in batches of bounded memory.
    reconstruct_from_patches : The inverse operation.

    Notes
    -----
    The patch matrix holds ``n_patches * prod(patch_size) * n_channels`` values:
    for a 512x512 image, 8x8 patches and ``step=1`` that is 64 times the image
    (125 MiB in float64). Larger steps divide ``n_patches`` by ``prod(step)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import extract_patches
    >>> image = np.arange(6 * 7 * 3, dtype=np.float32).reshape(6, 7, 3)
    >>> extract_patches(image, (4, 4), step=2, channel_axis=-1).shape
    (6, 4, 4, 3)
    >>> patches, origins = extract_patches(image[..., 0], 4, step=2,
    ...                                    return_origins=True)
    >>> origins[:3].tolist()
    [[0, 0], [0, 2], [0, 3]]
    """
    grid, canvas = _grid_and_canvas(
        image, patch_size, step, offset, padding, channel_axis
    )
    if origins is not None:
        if max_patches is not None:
            raise ValueError(
                f"origins and max_patches both choose the patches: pass one of "
                f"them; got max_patches={max_patches!r} and {len(origins)} origins"
            )
        patches = _copy_patches(canvas, grid, grid._to_canvas(origins))
        return (patches, np.asarray(origins)) if return_origins else patches
    if max_patches is None:
        patch_shape = grid.patch_size + canvas.shape[grid.ndim :]
        check_fits_in_memory(
            grid.n_patches * math.prod(patch_shape) * canvas.itemsize,
            f"the patch matrix of {grid.n_patches} patches of shape "
            f"{patch_shape} ({canvas.dtype})",
            "use iter_patches to process it in batches, or a larger step",
        )
        patches = _copy_patches(canvas, grid)
        return (patches, grid.origins()) if return_origins else patches
    indices = _sample_indices(grid.n_patches, max_patches, random_state)
    patches, origins = _patches_at(canvas, grid, indices)
    return (patches, origins) if return_origins else patches


def patch_view(image, patch_size, *, step=1, offset=0, channel_axis=None):
    """Return the patches of the ``'valid'`` grid as a read-only view, without copying.

    Parameters
    ----------
    image : array-like
        The image; see :func:`extract_patches`.
    patch_size, step, offset, channel_axis
        As in :func:`extract_patches`.

    Returns
    -------
    view : ndarray of shape (*grid_shape, *patch_size[, n_channels])
        A read-only strided view into ``image``; writing to it raises.

    Notes
    -----
    No memory is used, but the view is not contiguous: reshaping it to a 2-D
    patch matrix copies it. Only the ``'valid'`` grid (no snapped edge patch, no
    padding) can be expressed as a view.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import patch_view
    >>> view = patch_view(np.zeros((10, 12)), (4, 4), step=(2, 4))
    >>> view.shape, view.flags.writeable
    ((4, 3, 4, 4), False)
    """
    grid, canvas = _grid_and_canvas(
        image, patch_size, step, offset, "valid", channel_axis, view=True
    )
    windows = _window_view(canvas, grid)
    (runs,) = zip(*grid._axis_runs, strict=True)
    return windows[tuple(slice(*run) for run in runs)]


def iter_patches(
    image,
    patch_size,
    *,
    step=1,
    offset=0,
    padding=None,
    channel_axis=None,
    batch_size=None,
):
    """Yield the patches of an image in batches, with their origins.

    Memory is bounded by one batch, whatever the size of the full patch matrix.
    Feed the batches, after any per-patch processing, to
    :class:`PatchAccumulator` to rebuild the image.

    Parameters
    ----------
    image, patch_size, step, offset, padding, channel_axis
        As in :func:`extract_patches`.
    batch_size : int, default=None
        Largest number of patches per batch; by default as many as fit in
        about 16 MiB.

    Yields
    ------
    patches : ndarray of shape (n_batch, *patch_size[, n_channels])
        A batch of patches, in the order of :func:`extract_patches`.
    origins : ndarray of shape (n_batch, n_spatial_dims)
        Their origins in image coordinates.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import iter_patches
    >>> batches = iter_patches(np.zeros((64, 64)), 8, step=4, batch_size=100)
    >>> [patches.shape for patches, origins in batches]
    [(100, 8, 8), (100, 8, 8), (25, 8, 8)]
    """
    grid, canvas = _grid_and_canvas(
        image, patch_size, step, offset, padding, channel_axis
    )
    if batch_size is None:
        patch_values = math.prod(grid.patch_size + canvas.shape[grid.ndim :])
        batch_size = max(1, DEFAULT_BATCH_BYTES // (patch_values * canvas.itemsize))
    elif not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return _iter_batches(canvas, grid, int(batch_size))


def _iter_batches(canvas, grid, batch_size):
    for start in range(0, grid.n_patches, batch_size):
        indices = np.arange(start, min(start + batch_size, grid.n_patches))
        yield _patches_at(canvas, grid, indices)


def prepare_grid(shape, patch_size, step, offset, padding, channel_axis):
    """Build the grid for an image of ``shape``; return it with the channel count."""
    spatial, n_channels, channel_axis = spatial_shape_and_channels(shape, channel_axis)
    patch_size = as_axis_tuple(patch_size, len(spatial), "patch_size", minimum=1)
    grid = PatchGrid(spatial, patch_size, step=step, offset=offset, padding=padding)
    return grid, n_channels, channel_axis


def _grid_and_canvas(
    image, patch_size, step, offset, padding, channel_axis, *, view=False
):
    """Validate the image and geometry; return the grid and the channels-last canvas."""
    image = check_numeric_array(image, "image")
    if image.ndim == 0:
        raise ValueError("image must have at least one axis, got a scalar")
    grid, n_channels, channel_axis = prepare_grid(
        image.shape, patch_size, step, offset, padding, channel_axis
    )
    canvas = image if channel_axis is None else np.moveaxis(image, channel_axis, -1)
    if grid.padding in PAD_MODES:
        channel_pad = ((0, 0),) if n_channels is not None else ()
        canvas = np.pad(canvas, grid.pad_width + channel_pad, mode=grid.padding)
    # The kernels read a C-contiguous canvas; a view keeps pointing at the image.
    return grid, canvas if view else np.ascontiguousarray(canvas)


def _window_view(canvas, grid):
    """Read-only view of shape (*positions, *patch_size[, n_channels])."""
    spatial_axes = tuple(range(grid.ndim))
    view = sliding_window_view(canvas, grid.patch_size, axis=spatial_axes)
    if view.ndim > 2 * grid.ndim:
        view = np.moveaxis(view, grid.ndim, -1)
    return view


def _copy_patches(canvas, grid, canvas_origins=None):
    """Copy the patches at ``canvas_origins`` (the full grid when None) from a canvas.

    ``canvas`` is C-contiguous, channels last; the result has its dtype and shape
    ``(n_patches, *patch_size[, n_channels])``. The kernel copies patch rows as
    bytes, so every dtype takes the same path.
    """
    n_patches = grid.n_patches if canvas_origins is None else len(canvas_origins)
    patches = np.empty(
        (n_patches, *grid.patch_size, *canvas.shape[grid.ndim :]), dtype=canvas.dtype
    )
    if n_patches:
        _kernels.gather_patches(
            canvas.reshape(-1).view(np.uint8),
            patches.reshape(n_patches, -1).view(np.uint8),
            *grid._flat_origins(canvas.strides, canvas_origins),
            grid._row_offsets(canvas.strides),
        )
    return patches


def _patches_at(canvas, grid, indices):
    """Copy the patches at flat grid ``indices``; return them with their origins."""
    coords = np.unravel_index(indices, grid.grid_shape)
    canvas_origins = np.stack(
        [origins[c] for origins, c in zip(grid.axis_origins, coords, strict=True)],
        axis=-1,
    ).reshape(-1, grid.ndim)
    patches = _copy_patches(canvas, grid, canvas_origins)
    return patches, canvas_origins - grid._pad_before


def _sample_indices(n_patches, max_patches, random_state):
    """Draw ``max_patches`` distinct flat grid indices, sorted."""
    n_samples = _resolve_max_patches(max_patches, n_patches)
    if isinstance(random_state, np.random.Generator):
        indices = random_state.choice(n_patches, n_samples, replace=False)
    else:
        indices = sample_without_replacement(
            n_patches, n_samples, random_state=check_random_state(random_state)
        )
    return np.sort(indices)


def _resolve_max_patches(max_patches, n_patches):
    if isinstance(max_patches, numbers.Integral) and not isinstance(max_patches, bool):
        if not 1 <= max_patches <= n_patches:
            raise ValueError(
                f"max_patches must be between 1 and the number of patches "
                f"({n_patches}), got {max_patches}"
            )
        return int(max_patches)
    if isinstance(max_patches, numbers.Real) and 0 < max_patches <= 1:
        n_samples = int(max_patches * n_patches)
        if n_samples < 1:
            raise ValueError(
                f"max_patches={max_patches} of {n_patches} patches selects none"
            )
        return n_samples
    raise ValueError(
        f"max_patches must be an int >= 1 or a float in (0, 1], got {max_patches!r}"
    )
