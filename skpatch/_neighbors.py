"""Similar-patch search for non-local methods: nearest patches within a window.

The loop is compiled (``_nonlocal_kernels.nearest_patches``); this module checks
the input, lays the guide image out channels last and works out where every
reference, window and patch row sits.
"""

import math

import numpy as np

from . import _nonlocal_kernels
from ._extract import extract_patches
from ._grid import PatchGrid
from ._tiling import shifted_window_starts
from ._validation import (
    as_axis_tuple,
    check_finite,
    check_numeric_array,
    output_float_dtype,
    spatial_shape_and_channels,
)

# References searched per call of the kernel by iter_similar_patches.
DEFAULT_BATCH_SIZE = 1024


def search_similar_patches(
    image,
    patch_size,
    *,
    n_neighbors=16,
    search_window=21,
    step=1,
    origins=None,
    guide=None,
    channel_axis=None,
    return_patches=False,
):
    """Find, for every reference patch, its most similar patches within a window.

    The reference patches are those of a grid (:class:`PatchGrid` with ``step``,
    every pixel covered) or the patches at ``origins``. For each, every patch
    whose origin lies in a window of ``search_window`` origins around the
    reference's is a candidate, and the ``n_neighbors`` candidates at the
    smallest squared Euclidean distance from the reference are returned, nearest
    first. Distances are measured on ``guide`` (for example a first estimate of a
    noisy image), or on ``image`` itself.

    Parameters
    ----------
    image : array-like of shape (*spatial_shape) or with one channel axis
        The image whose patches are compared (and returned with
        ``return_patches``), of real numbers.
    patch_size : int or tuple of int
        Spatial patch shape; an int is used on every spatial axis.
    n_neighbors : int, default=16
        Number of similar patches per reference, the reference itself included
        (at distance 0). At most the number of candidates in a window.
    search_window : int or tuple of int, default=21
        Number of candidate origins along each axis. The window is centred on
        the reference's origin (``search_window // 2`` origins before it) and
        shifted, not clipped, at the image's edge: it keeps its size as long as
        the image has that many patch origins along the axis, and then holds
        all of them.
    step : int or tuple of int, default=1
        Stride of the grid of reference patches (unused with ``origins``).
    origins : array-like of shape (n_references, n_spatial_dims), default=None
        Origins of the reference patches, instead of the grid; patches must lie
        inside the image.
    guide : array-like, default=None
        Image on which distances are measured, with the spatial shape of
        ``image`` and either no channel axis or one at ``channel_axis`` (any
        number of channels). ``None`` measures them on ``image``.
    channel_axis : int or None, default=None
        The axis of ``image`` (and ``guide``) holding channels; a distance sums
        over all channels.
    return_patches : bool, default=False
        Also return the similar patches, cut out of ``image``.

    Returns
    -------
    neighbor_origins : ndarray of shape (n_references, n_neighbors, n_spatial_dims)
        Origins of the similar patches of every reference, nearest first.
        Reference ``i`` is at ``origins[i]``, or at ``PatchGrid(spatial_shape,
        patch_size, step=step).origins()[i]`` (the order of
        :func:`extract_patches`).
    distances : ndarray of shape (n_references, n_neighbors)
        Their squared distances to the reference, float64, sum over the patch's
        values (not divided by their number).
    patches : ndarray of shape (n_references, n_neighbors, *patch_size[, \
n_channels])
        Returned when ``return_patches``; the similar patches of ``image``, with
        its dtype and channels last.

    Raises
    ------
    ValueError
        If ``n_neighbors`` is larger than the number of candidates in a window,
        the patch larger than the image, or the image (or guide) not finite.

    See Also
    --------
    iter_similar_patches : The same search in batches of references.
    denoise_nl_bayes : The non-local Bayes denoiser built on it.

    Notes
    -----
    Ties are broken by position: of two candidates as far from the reference,
    the one whose origin comes first in C order (the last axis varying fastest)
    is nearer. The search is exact (every candidate is compared, and abandoned
    as soon as its partial distance reaches the farthest kept one) and
    deterministic. It costs ``prod(search_window) * prod(patch_size) *
    n_channels`` operations per reference at most and holds nothing beyond its
    outputs, ``n_references * n_neighbors`` origins and distances (times the
    patch size with ``return_patches``; :func:`iter_similar_patches` bounds that
    by a batch of references).

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import search_similar_patches
    >>> image = np.random.default_rng(0).random((40, 50))
    >>> neighbors, distances = search_similar_patches(
    ...     image, (5, 5), n_neighbors=8, search_window=11, step=4)
    >>> neighbors.shape, distances.shape
    ((130, 8, 2), (130, 8))
    >>> neighbors[0, 0].tolist(), float(distances[0, 0])
    ([0, 0], 0.0)
    """
    search, image, channel_axis, references = _prepare(
        image,
        patch_size,
        n_neighbors,
        search_window,
        step,
        origins,
        guide,
        channel_axis,
    )
    members, distances = search.nearest(references)
    neighbor_origins = search.origins_of(members)
    if not return_patches:
        return neighbor_origins, distances
    return (
        neighbor_origins,
        distances,
        _patches_at(search, image, channel_axis, members),
    )


def iter_similar_patches(
    image,
    patch_size,
    *,
    n_neighbors=16,
    search_window=21,
    step=1,
    origins=None,
    guide=None,
    channel_axis=None,
    batch_size=DEFAULT_BATCH_SIZE,
):
    """Search similar patches batch by batch of references, patches included.

    The search of :func:`search_similar_patches`, run on ``batch_size``
    references at a time, so that memory stays bounded by one batch of groups
    of similar patches, whatever the image size.

    Parameters
    ----------
    image, patch_size, n_neighbors, search_window, step, origins, guide, \
channel_axis
        As in :func:`search_similar_patches`.
    batch_size : int, default=1024
        Number of reference patches per batch.

    Yields
    ------
    reference_origins : ndarray of shape (n_batch, n_spatial_dims)
        Origins of the batch's reference patches.
    neighbor_origins : ndarray of shape (n_batch, n_neighbors, n_spatial_dims)
        Origins of their similar patches, nearest first.
    distances : ndarray of shape (n_batch, n_neighbors)
        Squared distances to the reference (on ``guide`` if given).
    patches : ndarray of shape (n_batch, n_neighbors, *patch_size[, n_channels])
        The similar patches of ``image``.

    See Also
    --------
    search_similar_patches : The search on all references at once.

    Examples
    --------
    >>> import numpy as np
    >>> from skpatch import iter_similar_patches
    >>> image = np.random.default_rng(0).random((30, 30, 3))
    >>> batches = iter_similar_patches(image, 4, n_neighbors=5, search_window=7,
    ...                                step=3, channel_axis=-1, batch_size=40)
    >>> [patches.shape for _, _, _, patches in batches]
    [(40, 5, 4, 4, 3), (40, 5, 4, 4, 3), (20, 5, 4, 4, 3)]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    search, image, channel_axis, references = _prepare(
        image,
        patch_size,
        n_neighbors,
        search_window,
        step,
        origins,
        guide,
        channel_axis,
    )
    for start in range(0, len(references), batch_size):
        batch = references[start : start + batch_size]
        members, distances = search.nearest(batch)
        yield (
            search.origins_of(batch),
            search.origins_of(members),
            distances,
            _patches_at(search, image, channel_axis, members),
        )


def _prepare(
    image, patch_size, n_neighbors, search_window, step, origins, guide, channel_axis
):
    """Check the arguments; return the search, the image and the references."""
    image = check_numeric_array(image, "image")
    check_finite(image, "image", "the similar-patch search")
    spatial, _, channel_axis = spatial_shape_and_channels(image.shape, channel_axis)
    patch_size = as_axis_tuple(patch_size, len(spatial), "patch_size", minimum=1)
    grid = PatchGrid(spatial, patch_size, step=step)
    guide = image if guide is None else _check_guide(guide, spatial, channel_axis)
    guide_channel_axis = None if guide.ndim == len(spatial) else channel_axis
    search = WindowSearch(
        _channels_last(guide, guide_channel_axis),
        patch_size,
        search_window,
        n_neighbors,
    )
    if origins is None:
        references = search.positions_of(grid.origins())
    else:
        references = search.positions_of(_check_origins(origins, grid))
    return search, image, channel_axis, references


def _check_guide(guide, spatial, channel_axis):
    guide = check_numeric_array(guide, "guide")
    check_finite(guide, "guide", "the similar-patch search")
    if guide.ndim == len(spatial) and guide.shape == spatial:
        return guide
    if channel_axis is not None and guide.ndim == len(spatial) + 1:
        guide_spatial = guide.shape[:channel_axis] + guide.shape[channel_axis + 1 :]
        if guide_spatial == spatial:
            return guide
    raise ValueError(
        f"guide must have the image's spatial shape {spatial}, without a channel "
        f"axis or with one at channel_axis={channel_axis}; got shape {guide.shape}"
    )


def _check_origins(origins, grid):
    origins = np.asarray(origins)
    grid._to_canvas(origins)  # raises on a bad shape, dtype or position
    return origins


def _channels_last(image, channel_axis):
    """A C-contiguous float copy (or view) with a trailing channel axis."""
    if channel_axis is None:
        image = image[..., np.newaxis]
    else:
        image = np.moveaxis(image, channel_axis, -1)
    return np.ascontiguousarray(image, dtype=output_float_dtype(image.dtype))


def _patches_at(search, image, channel_axis, members):
    """The patches of ``image`` at the flat positions ``members`` (any shape)."""
    flat = extract_patches(
        image,
        search.patch_size,
        origins=search.origins_of(members.reshape(-1)),
        channel_axis=channel_axis,
    )
    return flat.reshape(members.shape + flat.shape[1:])


class WindowSearch:
    """The compiled nearest-patch search on one guide image, by flat positions.

    Positions are flat indices of patch origins in the image's spatial shape
    (C order). ``guide`` is C-contiguous, float32 or float64, channels last.
    This is the layer the non-local denoisers call directly, batch after batch.
    """

    def __init__(self, guide, patch_size, search_window, n_neighbors):
        self.guide = guide
        self.spatial_shape = guide.shape[:-1]
        self.patch_size = tuple(patch_size)
        ndim = len(self.spatial_shape)
        window = as_axis_tuple(search_window, ndim, "search_window", minimum=1)
        self.n_positions = np.array(self.spatial_shape) - np.array(self.patch_size) + 1
        self.window = np.minimum(window, self.n_positions)
        self.n_candidates = math.prod(self.window.tolist())
        self.n_neighbors = _check_n_neighbors(n_neighbors, self.n_candidates, window)
        n_channels = guide.shape[-1]
        self._value_strides = np.array(guide.strides[:-1]) // guide.itemsize
        self._line_offsets = _box_offsets(
            (*self.window[:-1].tolist(), 1), self._value_strides
        )
        self._line_length = int(self.window[-1])
        patch_rows = (*self.patch_size[:-1], 1)
        self._row_offsets = _box_offsets(patch_rows, self._value_strides)
        self._row_length = self.patch_size[-1] * n_channels
        self._n_channels = n_channels

    def positions_of(self, origins):
        """Flat positions of origins of shape (n, ndim)."""
        origins = np.asarray(origins, dtype=np.intp).reshape(
            -1, len(self.spatial_shape)
        )
        return np.ravel_multi_index(tuple(origins.T), self.spatial_shape).astype(
            np.intp
        )

    def origins_of(self, positions):
        """Origins of flat positions of any shape, shape (*positions.shape, ndim)."""
        coords = np.unravel_index(positions, self.spatial_shape)
        return np.stack(coords, axis=-1).astype(np.intp)

    def window_starts(self, positions):
        """Flat value offset of every reference's first candidate."""
        coords = np.stack(np.unravel_index(positions, self.spatial_shape), axis=-1)
        starts = shifted_window_starts(coords, self.n_positions, self.window)
        return (starts @ self._value_strides).astype(np.intp)

    def nearest(self, positions, window_starts=None, claims=None):
        """Positions and distances of every reference's nearest candidates.

        ``window_starts`` gives the position of every reference's first
        candidate, for windows placed by a larger image than the guide (a
        tile); by default the window is centred and shifted at the guide's
        edges. With ``claims`` (:class:`Claims`), references are taken in
        order and those claimed already are skipped: the rows of the others
        are returned, with the mask of which they are.
        """
        positions = np.ascontiguousarray(positions, dtype=np.intp)
        if window_starts is None:
            starts = self.window_starts(positions)
        else:
            starts = np.asarray(window_starts, dtype=np.intp) * self._n_channels
        n = len(positions)
        index = np.empty((n, self.n_neighbors), dtype=np.intp)
        distances = np.empty((n, self.n_neighbors), dtype=np.float64)
        keep = np.ones(n, dtype=np.uint8)
        flags, shape, block_shift, block_side = (
            _NO_CLAIMS if claims is None else claims.arguments()
        )
        _nonlocal_kernels.nearest_patches(
            self.guide.reshape(-1),
            positions * self._n_channels,
            np.ascontiguousarray(starts, dtype=np.intp),
            self._line_offsets,
            self._line_length,
            self._n_channels,
            self._row_offsets,
            self._row_length,
            index,
            distances,
            flags,
            shape,
            block_shift,
            block_side,
            keep,
        )
        index //= self._n_channels
        if claims is None:
            return index, distances
        kept = keep.view(bool)
        return index[kept], distances[kept], kept


class Claims:
    """Which patches of a guide some group holds already (the paste trick).

    One flag per patch position of the guide (its flat index, as
    :class:`WindowSearch` numbers them). A reference whose group has been
    formed claims its neighbours, and claimed references are skipped, but
    only inside the reference's claim block: a box of ``block_side``
    positions, position ``c`` along axis ``a`` lying in block ``(c +
    block_shift[a]) // block_side`` (a shift that places the guide in a larger
    image, and keeps the numerator non-negative).
    """

    def __init__(self, spatial_shape, block_shift, block_side):
        self.shape = np.array(spatial_shape, dtype=np.intp)
        self.flags = np.zeros(math.prod(spatial_shape), dtype=np.uint8)
        self.block_shift = np.ascontiguousarray(block_shift, dtype=np.intp)
        self.block_side = int(block_side)

    def arguments(self):
        return self.flags, self.shape, self.block_shift, self.block_side


_NO_CLAIMS = (
    np.zeros(0, dtype=np.uint8),
    np.zeros(0, dtype=np.intp),
    np.zeros(0, dtype=np.intp),
    1,
)


def _check_n_neighbors(n_neighbors, n_candidates, window):
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int | np.integer):
        raise TypeError(f"n_neighbors must be an int, got {n_neighbors!r}")
    if not 1 <= n_neighbors <= n_candidates:
        raise ValueError(
            f"n_neighbors must be between 1 and the number of candidates in a "
            f"search window, {n_candidates} (search_window {tuple(window)} within "
            f"the image's patch origins); got n_neighbors={n_neighbors}"
        )
    return int(n_neighbors)


def _box_offsets(shape, strides):
    """Flat offsets of every point of a box of ``shape``, in C order (increasing)."""
    total = np.zeros((), dtype=np.intp)
    for n, s in zip(shape, strides, strict=True):
        total = np.add.outer(total, np.arange(int(n), dtype=np.intp) * int(s))
    return np.ascontiguousarray(total.reshape(-1), dtype=np.intp)
