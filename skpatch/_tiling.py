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

import itertools
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


# ------------------------------------------------------------ non-local groups

# Side, in pixels, of the claim blocks of the non-local methods: a group claims
# (skips) the reference patches it holds only inside its own reference's block,
# so that which references are processed is decided block by block, and every
# tile can reproduce it from the blocks around it. On 512x512 images, 64 forms
# 10% more groups than claims over the whole image (IPOL's), 32 20% more.
CLAIM_BLOCK = 64


def shifted_window_starts(origins, n_positions, window):
    """First origin of search windows centred on ``origins``, shifted at the edges.

    ``window`` (at most ``n_positions``) candidate origins per window, among
    the ``n_positions`` patch origins of the axis; works element-wise on
    arrays, one axis per column.
    """
    return np.clip(origins - window // 2, 0, n_positions - window)


@dataclass(frozen=True)
class GroupLayout:
    """The geometry of a non-local step: references, search windows, claim blocks.

    The reference patches are those of a :class:`~skpatch.PatchGrid` (step,
    no padding); each searches a window of ``window`` candidate origins per
    axis, centred on it and shifted (not clipped) at the image's edges; claim
    blocks are boxes of ``block`` pixels anchored at the image's origin.
    """

    image_shape: tuple
    patch_size: tuple
    window: tuple
    references: PatchGrid
    block: int = CLAIM_BLOCK

    @classmethod
    def of(cls, image_shape, patch_size, search_window, step, block=CLAIM_BLOCK):
        image_shape, patch_size = tuple(image_shape), tuple(patch_size)
        window = tuple(
            min(int(w), s - p + 1)
            for w, s, p in zip(search_window, image_shape, patch_size, strict=True)
        )
        grid = PatchGrid(image_shape, patch_size, step=step)
        return cls(image_shape, patch_size, window, grid, block)

    @property
    def ndim(self):
        return len(self.image_shape)

    def window_starts(self, axis, origins):
        """First candidate origin of the windows of ``origins`` along ``axis``."""
        n_positions = self.image_shape[axis] - self.patch_size[axis] + 1
        return shifted_window_starts(origins, n_positions, self.window[axis])

    def reach(self, axis):
        """Pixels the groups of a reference read and write past its window start."""
        return self.window[axis] + self.patch_size[axis] - 1

    def halo(self):
        """The overlap a tile needs on each side of every axis (an upper bound).

        The groups touching a tile come from windows at most a window and a
        patch away from it, and their claim blocks reach a block further.
        """
        return tuple(
            self.block + w + p
            for w, p in zip(self.window, self.patch_size, strict=True)
        )


@dataclass(frozen=True)
class GroupTile:
    """The references whose groups reach one box of the image, and what they read.

    Parameters
    ----------
    layout : GroupLayout
        The global geometry.
    start, stop : tuple of int
        The box, in image coordinates.
    reference_ranges : tuple of (int, int)
        Per axis, indices ``lo:hi`` into ``layout.references.axis_origins[a]``:
        every claim block holding a reference whose groups reach the box, whole.
    input_start, input_stop : tuple of int
        The image box these references' windows and patches read.
    """

    layout: GroupLayout
    start: tuple
    stop: tuple
    reference_ranges: tuple
    input_start: tuple
    input_stop: tuple

    @property
    def input_shape(self):
        return tuple(
            b - a for a, b in zip(self.input_start, self.input_stop, strict=True)
        )

    @property
    def n_references(self):
        return math.prod(hi - lo for lo, hi in self.reference_ranges)

    @property
    def output_crop(self):
        """The box as slices of the input box."""
        return tuple(
            slice(a - i, b - i)
            for a, b, i in zip(self.start, self.stop, self.input_start, strict=True)
        )

    def block_rows(self):
        """Runs ``lo:hi`` of reference indices along axis 0, one per row of blocks."""
        lo, hi = self.reference_ranges[0]
        blocks = self.layout.references.axis_origins[0][lo:hi] // self.layout.block
        cuts = lo + np.flatnonzero(np.diff(blocks)) + 1
        edges = [lo, *cuts.tolist(), hi]
        return [(a, b) for a, b in itertools.pairwise(edges) if b > a]

    def references(self, lo, hi):
        """Input-local origins of the references of the row run ``lo:hi``, C order."""
        ranges = ((lo, hi), *self.reference_ranges[1:])
        axes = [
            origins[a:b] - i
            for origins, (a, b), i in zip(
                self.layout.references.axis_origins,
                ranges,
                self.input_start,
                strict=True,
            )
        ]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=-1).astype(np.intp)

    def row_box(self, lo, hi):
        """Along axis 0, the input-local pixels ``a:b`` the row run's groups touch."""
        origins = self.layout.references.axis_origins[0]
        starts = self.layout.window_starts(0, origins[[lo, hi - 1]])
        first = int(starts[0]) - self.input_start[0]
        return first, int(starts[1]) + self.layout.reach(0) - self.input_start[0]

    def window_starts(self, origins):
        """Input-local first candidates of input-local ``origins`` (n, ndim)."""
        columns = [
            self.layout.window_starts(axis, origins[:, axis] + i) - i
            for axis, i in enumerate(self.input_start)
        ]
        return np.stack(columns, axis=-1)

    def claim_shift(self):
        """Per axis, what places an input position's claim block in the image.

        Position ``c`` of the input box is in the image's block ``(c + shift)
        // block - 1``; the added block keeps the numerator non-negative.
        """
        return np.array(
            [i + self.layout.block for i in self.input_start], dtype=np.intp
        )


def group_tile(layout, start, stop):
    """The :class:`GroupTile` of the image box ``start:stop``.

    Examples
    --------
    >>> from skpatch._tiling import GroupLayout, group_tile
    >>> layout = GroupLayout.of((200, 300), (5, 5), (11, 11), (1, 2))
    >>> tile = group_tile(layout, (100, 0), (150, 120))
    >>> tile.reference_ranges, tile.input_start, tile.input_stop
    (((64, 192), (0, 64)), (59, 0), (200, 136))
    """
    ranges, input_start, input_stop = [], [], []
    for axis in range(layout.ndim):
        origins = layout.references.axis_origins[axis]
        starts = layout.window_starts(axis, origins)
        # Window starts grow with the origins: the references reaching the box
        # form one run, widened to whole claim blocks.
        reaching = (starts < stop[axis]) & (starts + layout.reach(axis) > start[axis])
        found = np.flatnonzero(reaching)
        # The input holds the box itself too: pixels no group reaches keep
        # their value.
        a, b = int(start[axis]), int(stop[axis])
        if not len(found):
            ranges.append((0, 0))
        else:
            blocks = origins // layout.block
            lo = int(np.searchsorted(blocks, blocks[found[0]], side="left"))
            hi = int(np.searchsorted(blocks, blocks[found[-1]], side="right"))
            ranges.append((lo, hi))
            a = min(a, int(starts[lo]))
            b = max(b, int(starts[hi - 1]) + layout.reach(axis))
        input_start.append(a)
        input_stop.append(b)
    if any(hi == lo for lo, hi in ranges):
        ranges = [(0, 0)] * layout.ndim
        input_start, input_stop = list(map(int, start)), list(map(int, stop))
    return GroupTile(
        layout,
        tuple(map(int, start)),
        tuple(map(int, stop)),
        tuple(ranges),
        tuple(input_start),
        tuple(input_stop),
    )
