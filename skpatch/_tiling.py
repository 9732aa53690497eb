"""Exact tiling of a patch grid: the patches and the input each tile of an image needs.

A tile is a box of image pixels (a tile of a thread pool, or a chunk of a dask
array). The patches of the GLOBAL grid that cover its pixels form, along every
axis, a contiguous run of the grid's origins; they read a region of the canvas
(the image, padded when the grid pads) that is the tile plus a halo of at most
``patch_size - 1`` on each side. Denoising (or reconstructing) every tile from
exactly those patches gives every pixel the value of the untiled computation,
whatever the tiling. This module owns that index arithmetic; it holds no pixel
data beyond the small index arrays it returns.
"""

import math
from dataclasses import dataclass

import numpy as np

from ._grid import PatchGrid


@dataclass(frozen=True)
class Tile:
    """The patches of a grid covering one box of the image, and what they read.

    Parameters
    ----------
    grid : PatchGrid
        The global grid.
    start, stop : tuple of int
        The tile, in image coordinates: pixels ``start[a] <= i < stop[a]``.
    patch_ranges : tuple of (int, int)
        Per axis, the indices ``lo:hi`` into ``grid.axis_origins[a]`` of the
        patches covering the tile; the tile's patches are their product.
    """

    grid: PatchGrid
    start: tuple
    stop: tuple
    patch_ranges: tuple

    @property
    def shape(self):
        return tuple(b - a for a, b in zip(self.start, self.stop, strict=True))

    @property
    def patch_counts(self):
        return tuple(hi - lo for lo, hi in self.patch_ranges)

    @property
    def n_patches(self):
        return math.prod(self.patch_counts)

    @property
    def region_start(self):
        """First canvas index read by the tile's patches, per axis."""
        return tuple(
            int(origins[lo]) if hi > lo else 0
            for origins, (lo, hi) in zip(
                self.grid.axis_origins, self.patch_ranges, strict=True
            )
        )

    @property
    def region_stop(self):
        """One past the last canvas index read by the tile's patches, per axis."""
        return tuple(
            int(origins[hi - 1]) + p if hi > lo else 0
            for origins, (lo, hi), p in zip(
                self.grid.axis_origins,
                self.patch_ranges,
                self.grid.patch_size,
                strict=True,
            )
        )

    @property
    def region_shape(self):
        return tuple(
            b - a for a, b in zip(self.region_start, self.region_stop, strict=True)
        )

    @property
    def canvas_start(self):
        """The tile's first pixel in canvas coordinates."""
        return tuple(
            int(s + b) for s, b in zip(self.start, self.grid._pad_before, strict=True)
        )

    def origins(self, first=0, last=None):
        """Region-local canvas origins of the tile's patches ``first:last``.

        The patches are numbered in C order of their per-axis runs (the order
        of the global grid), so batches of them can be drawn without building
        all the origins at once.
        """
        last = self.n_patches if last is None else last
        coords = np.unravel_index(np.arange(first, last), self.patch_counts)
        columns = [
            origins[lo + c] - r0
            for origins, (lo, _), c, r0 in zip(
                self.grid.axis_origins,
                self.patch_ranges,
                coords,
                self.region_start,
                strict=True,
            )
        ]
        return np.stack(columns, axis=-1).astype(np.intp).reshape(-1, self.grid.ndim)

    def box(self):
        """The canvas box holding both the region and the tile: ``(start, shape)``.

        Patches are added into this box; the tile is cut out of it. Where no
        patch covers a pixel of the tile (a step larger than the patch, or the
        ``'valid'`` policy), the box is larger than the region.
        """
        starts, shapes = [], []
        for r0, r1, t0, n in zip(
            self.region_start,
            self.region_stop,
            self.canvas_start,
            self.shape,
            strict=True,
        ):
            lo, hi = (min(r0, t0), max(r1, t0 + n)) if r1 > r0 else (t0, t0 + n)
            starts.append(lo)
            shapes.append(hi - lo)
        return tuple(starts), tuple(shapes)

    def source_indices(self, source_start):
        """Per axis, where each canvas index of the region is read in a source block.

        ``source_start`` is the image coordinate of the block's first pixel (as
        :func:`source_box` gives it; negative on a ``'wrap'`` axis, whose block
        is extended periodically). An index of -1 stands for the zeros of the
        ``'constant'`` pad mode.
        """
        return tuple(
            _image_index(np.arange(r0, r1) - before, size, self.grid.padding, s0)
            for r0, r1, before, size, s0 in zip(
                self.region_start,
                self.region_stop,
                self.grid._pad_before,
                self.grid.image_shape,
                source_start,
                strict=True,
            )
        )


def _image_index(coords, size, padding, source_start):
    """Image coordinates (possibly in the padding) to indices into a source block."""
    if padding == "reflect":
        period = max(2 * size - 2, 1)
        coords = np.mod(coords, period)
        coords = np.where(coords >= size, period - coords, coords)
    elif padding == "symmetric":
        coords = np.mod(coords, 2 * size)
        coords = np.where(coords >= size, 2 * size - 1 - coords, coords)
    elif padding == "edge":
        coords = np.clip(coords, 0, size - 1)
    elif padding == "constant":
        inside = (coords >= 0) & (coords < size)
        return np.where(inside, coords - source_start, -1)
    return coords - source_start


def halo(grid):
    """The overlap a tile needs on each side of every axis: ``patch_size - 1``."""
    return tuple(p - 1 for p in grid.patch_size)


def periodic_axes(grid):
    """Per axis, whether the halo wraps around the image (the ``'wrap'`` pad mode)."""
    return (grid.padding == "wrap",) * grid.ndim


def tile_at(grid, start, stop):
    """The :class:`Tile` for the image box ``start:stop`` of ``grid``.

    Examples
    --------
    >>> from skpatch import PatchGrid
    >>> from skpatch._tiling import tile_at
    >>> grid = PatchGrid((20, 30), 5, step=2)
    >>> tile = tile_at(grid, (0, 10), (4, 14))
    >>> tile.patch_counts, tile.region_start, tile.region_stop
    ((2, 4), (0, 6), (7, 17))
    """
    ranges = []
    for axis, (origins, p, before) in enumerate(
        zip(grid.axis_origins, grid.patch_size, grid._pad_before, strict=True)
    ):
        lo, hi = int(start[axis]) + before, int(stop[axis]) + before
        # A patch at canvas origin o covers o .. o + p - 1.
        first = int(np.searchsorted(origins, lo - p + 1))
        last = int(np.searchsorted(origins, hi))
        ranges.append((first, max(first, last)))
    return Tile(grid, tuple(map(int, start)), tuple(map(int, stop)), tuple(ranges))


def iter_tiles(grid, chunks):
    """Yield ``(block_index, tile)`` for a chunking of the image.

    ``chunks`` gives, per spatial axis, the tile lengths along it (as dask's
    ``Array.chunks``); they must add up to the image's shape.
    """
    bounds = chunk_bounds(grid, chunks)
    for index in np.ndindex(*(len(b) - 1 for b in bounds)):
        start = tuple(int(b[i]) for b, i in zip(bounds, index, strict=True))
        stop = tuple(int(b[i + 1]) for b, i in zip(bounds, index, strict=True))
        yield index, tile_at(grid, start, stop)


def chunk_bounds(grid, chunks):
    """Per axis, the cumulative tile boundaries ``0, c0, c0 + c1, ..., size``."""
    if len(chunks) != grid.ndim:
        raise ValueError(
            f"chunks must give the tile lengths of {grid.ndim} spatial axes; got "
            f"{len(chunks)} axes: {chunks}"
        )
    bounds = []
    for axis, (lengths, size) in enumerate(zip(chunks, grid.image_shape, strict=True)):
        lengths = tuple(int(n) for n in lengths)
        if any(n < 1 for n in lengths) or sum(lengths) != size:
            raise ValueError(
                f"the tile lengths {lengths} on axis {axis} must be positive and add "
                f"up to the image's size {size} along it"
            )
        bounds.append(np.concatenate([[0], np.cumsum(lengths)]))
    return bounds


def source_box(grid, tile):
    """The image box (tile plus halo) a tile's patches read, ``(start, stop)``.

    Clipped to the image, except on a ``'wrap'`` axis, where it runs past the
    edges and is read periodically: what ``dask.array.map_overlap`` hands a
    block with ``depth=halo(grid)`` and boundaries ``'none'`` or
    ``'periodic'``.
    """
    starts, stops = [], []
    for t0, t1, h, size, wraps in zip(
        tile.start,
        tile.stop,
        halo(grid),
        grid.image_shape,
        periodic_axes(grid),
        strict=True,
    ):
        starts.append(t0 - h if wraps else max(0, t0 - h))
        stops.append(t1 + h if wraps else min(size, t1 + h))
    return tuple(starts), tuple(stops)


def source_block(image, grid, tile):
    """Cut a tile's source box out of an in-memory image; return it and its start.

    A view for a box inside the image; a periodic copy on a ``'wrap'`` axis
    whose box runs past an edge. Channels, if any, trail the spatial axes.
    """
    start, stop = source_box(grid, tile)
    block = image
    for axis, (a, b, size) in enumerate(
        zip(start, stop, grid.image_shape, strict=True)
    ):
        if 0 <= a and b <= size:
            block = block[(slice(None),) * axis + (slice(a, b),)]
        else:
            block = np.take(block, np.arange(a, b) % size, axis=axis)
    return block, start


def gather_region(source, indices):
    """The canvas region of a tile from its source block, given ``source_indices``.

    Plain slicing (a view) along axes whose indices run contiguously; a gather
    along axes where a pad mode reflects, and zeros where ``'constant'`` pads.
    """
    region = source
    for axis, axis_indices in enumerate(indices):
        lo = int(axis_indices[0])
        if lo >= 0 and np.array_equal(
            axis_indices, np.arange(lo, lo + len(axis_indices))
        ):
            region = region[
                (slice(None),) * axis + (slice(lo, lo + len(axis_indices)),)
            ]
            continue
        region = np.take(region, np.maximum(axis_indices, 0), axis=axis)
        zero = axis_indices < 0
        if zero.any():
            region[(slice(None),) * axis + (zero,)] = 0
    return region


def covers_every_pixel(grid):
    """Whether some patch of ``grid`` covers every pixel of the image."""
    for origins, p, size, crop in zip(
        grid.axis_origins, grid.patch_size, grid.padded_shape, grid.crop, strict=True
    ):
        covered = np.zeros(size, dtype=bool)
        for k in range(p):
            covered[origins + k] = True
        if not covered[crop].all():
            return False
    return True
