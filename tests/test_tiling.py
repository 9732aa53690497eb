"""Tests of the exact tiling of a patch grid (skpatch._tiling) and the per-tile path."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skpatch import PatchGrid, extract_patches, reconstruct_from_patches
from skpatch._parallel import thread_chunks, tile_average
from skpatch._tiling import (
    GroupLayout,
    _image_index,
    chunk_bounds,
    covers_every_pixel,
    group_tile,
    iter_tiles,
    source_block,
    source_box,
    tile_at,
)

PAD_MODES = ("reflect", "symmetric", "edge", "constant", "wrap")
MAX_SIZE = {1: 30, 2: 14, 3: 7}


@st.composite
def tiled_geometries(draw, max_ndim=3, channels=True):
    """A grid (any step, offset, edge policy) on an image, and a random tiling."""
    ndim = draw(st.integers(1, max_ndim))
    padding = draw(st.sampled_from((None, "valid", *PAD_MODES)))
    shape, patch, step, offset, chunks = [], [], [], [], []
    for _ in range(ndim):
        size = draw(st.integers(1, MAX_SIZE[ndim]))
        p = draw(st.integers(1, min(size, 6)))
        s = draw(st.integers(1, p + 2))
        canvas = size + 2 * (p - 1) if padding in PAD_MODES else size
        o = draw(st.integers(0, min(canvas - p, s - 1)))
        cuts = draw(st.sets(st.integers(1, size - 1), max_size=4)) if size > 1 else ()
        bounds = [0, *sorted(cuts), size]
        shape.append(size)
        patch.append(p)
        step.append(s)
        offset.append(o)
        chunks.append(tuple(np.diff(bounds).tolist()))
    n_channels = draw(st.sampled_from([None, 1, 2])) if channels else None
    grid = PatchGrid(
        tuple(shape),
        tuple(patch),
        step=tuple(step),
        offset=tuple(offset),
        padding=padding,
    )
    return grid, tuple(chunks), n_channels


def brute_force_covering(grid, start, stop, reference):
    """Global origins (image coordinates) of the patches touching a box, by hand."""
    per_axis = [
        reference.axis_origins(size, p, s, o, grid.padding)
        for size, p, s, o in zip(
            grid.image_shape, grid.patch_size, grid.step, grid.offset, strict=True
        )
    ]
    return sorted(
        origin
        for origin in itertools.product(*per_axis)
        if all(
            o < b and o + p > a
            for o, a, b, p in zip(origin, start, stop, grid.patch_size, strict=True)
        )
    )


def squash(patches):
    """A patch-wise nonlinear map: tiles using the wrong patches would differ."""
    axes = tuple(range(1, patches.ndim))
    return patches * patches.mean(axis=axes, keepdims=True) + 0.5 * patches


@settings(max_examples=150, deadline=None)
@given(case=tiled_geometries(channels=False))
def test_tiles_know_the_global_patches_that_cover_them(case, reference):
    """Check that each tile holds exactly the patches touching it, within its halo."""
    grid, chunks, _ = case
    for _, tile in iter_tiles(grid, chunks):
        expected = brute_force_covering(grid, tile.start, tile.stop, reference)
        local = tile.origins()
        got = local + np.array(tile.region_start) - grid._pad_before
        assert sorted(map(tuple, got.tolist())) == expected
        assert tile.n_patches == len(expected)
        if expected:
            ends = np.array(expected) + grid.patch_size
            region = np.array(tile.region_start) - grid._pad_before
            np.testing.assert_array_equal(region, np.min(expected, axis=0))
            np.testing.assert_array_equal(
                np.array(tile.region_stop) - grid._pad_before, ends.max(axis=0)
            )
            halo = np.array(grid.patch_size) - 1
            assert np.all(region >= np.array(tile.start) - halo)
            assert np.all(ends.max(axis=0) <= np.array(tile.stop) + halo)


@settings(max_examples=200, deadline=None)
@given(case=tiled_geometries(), weights=st.sampled_from(["uniform", "hann"]))
def test_tiled_average_equals_the_untiled_one(case, weights):
    """Check that averaging tile by tile gives the untiled image, any tiling."""
    grid, chunks, n_channels = case
    channels = () if n_channels is None else (n_channels,)
    image = np.random.default_rng(0).random(grid.image_shape + channels) + 1.0
    geometry = {"step": grid.step, "offset": grid.offset, "padding": grid.padding}
    channel_axis = None if n_channels is None else -1
    patches = extract_patches(
        image, grid.patch_size, channel_axis=channel_axis, **geometry
    )
    expected = reconstruct_from_patches(
        squash(patches),
        image.shape,
        channel_axis=channel_axis,
        weights=weights,
        **geometry,
    )
    tiled = np.full(image.shape, -1.0)
    for _, tile in iter_tiles(grid, chunks):
        source, start = source_block(image, grid, tile)
        box = tuple(slice(a, b) for a, b in zip(tile.start, tile.stop, strict=True))
        tiled[box] = tile_average(source, start, tile, squash, weights=weights)
    np.testing.assert_allclose(tiled, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(case=tiled_geometries(channels=False))
def test_source_box_is_what_map_overlap_hands_a_block(case):
    """Check that the source box is the tile plus halo, clipped unless it wraps."""
    grid, chunks, _ = case
    for _, tile in iter_tiles(grid, chunks):
        start, stop = source_box(grid, tile)
        for a, b, t0, t1, p, size in zip(
            start,
            stop,
            tile.start,
            tile.stop,
            grid.patch_size,
            grid.image_shape,
            strict=True,
        ):
            if grid.padding == "wrap":
                assert (a, b) == (t0 - p + 1, t1 + p - 1)
            else:
                assert (a, b) == (max(0, t0 - p + 1), min(size, t1 + p - 1))
        indices = tile.source_indices(start)
        for axis_indices, a, b in zip(indices, start, stop, strict=True):
            inside = axis_indices[axis_indices >= 0]
            assert np.all(inside < b - a)


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("size", [1, 2, 5, 9])
def test_pad_index_map_matches_numpy_pad(mode, size):
    """Check that canvas indices map to the pixels numpy.pad puts there."""
    image = np.arange(size) + 1.0
    pad = size - 1
    padded = np.pad(image, pad, mode=mode)
    indices = _image_index(np.arange(-pad, size + pad), size, mode, 0)
    if mode == "wrap":
        indices = indices % size
    mapped = np.where(indices >= 0, image[np.maximum(indices, 0)], 0.0)
    np.testing.assert_array_equal(mapped, padded)


def test_tile_smaller_than_a_patch():
    """Check that a one-pixel tile reads every patch over it, from its halo."""
    grid = PatchGrid((12, 12), (5, 5), step=2)
    tile = tile_at(grid, (6, 6), (7, 7))
    assert tile.patch_counts == (3, 3)
    assert tile.region_start == (2, 2)
    assert tile.region_stop == (11, 11)


def test_uncovered_tile_is_nan():
    """Check that a tile no patch reaches (valid grid) is NaN, as untiled."""
    grid = PatchGrid((10,), (3,), step=5, padding="valid")
    tile = tile_at(grid, (3,), (5,))
    assert tile.n_patches == 0
    image = np.ones(10)
    source, start = source_block(image, grid, tile)
    assert np.isnan(tile_average(source, start, tile, squash)).all()
    assert not covers_every_pixel(grid)
    assert covers_every_pixel(PatchGrid((10,), (3,), step=3))


def test_chunks_must_add_up_to_the_image():
    """Check that a tiling not adding up to the image names lengths and size."""
    grid = PatchGrid((10, 12), 3)
    with pytest.raises(ValueError, match=r"\(4, 4\) on axis 0 .* size 10"):
        chunk_bounds(grid, ((4, 4), (12,)))
    with pytest.raises(ValueError, match="2 spatial axes; got 1"):
        chunk_bounds(grid, ((10,),))


@pytest.mark.parametrize("n_workers", [1, 2, 3, 8])
@pytest.mark.parametrize(
    ("shape", "patch"),
    [((2048, 2048), (8, 8)), ((40, 9), (5, 5)), ((64, 64, 64), (8, 8, 8))],
)
def test_thread_chunks_cover_the_image(shape, patch, n_workers):
    """Check that thread tiles add up to the image, one tile for one worker."""
    chunks = thread_chunks(shape, patch, n_workers)
    assert tuple(sum(c) for c in chunks) == shape
    n_tiles = np.prod([len(c) for c in chunks])
    if n_workers == 1:
        assert n_tiles == 1
    elif shape == (2048, 2048):
        assert n_tiles >= 4 * n_workers


# ------------------------------------------------------------ non-local groups


@st.composite
def group_geometries(draw):
    """A non-local layout (small claim blocks) and a box of its image."""
    ndim = draw(st.integers(1, 3))
    shape, patch, window, step, start, stop = [], [], [], [], [], []
    for _ in range(ndim):
        size = draw(st.integers(1, {1: 60, 2: 30, 3: 14}[ndim]))
        p = draw(st.integers(1, min(size, 5)))
        a = draw(st.integers(0, size - 1))
        shape.append(size)
        patch.append(p)
        window.append(draw(st.integers(1, 9)))
        step.append(draw(st.integers(1, 4)))
        start.append(a)
        stop.append(draw(st.integers(a + 1, size)))
    block = draw(st.integers(1, 12))
    layout = GroupLayout.of(shape, patch, window, tuple(step), block=block)
    return layout, tuple(start), tuple(stop)


def brute_force_reach(layout, origin):
    """The box a reference's window of candidates covers, by hand."""
    lo, hi = [], []
    for o, size, p, w in zip(
        origin, layout.image_shape, layout.patch_size, layout.window, strict=True
    ):
        n_positions = size - p + 1
        first = min(max(o - w // 2, 0), n_positions - w)
        lo.append(first)
        hi.append(first + w + p - 1)
    return lo, hi


@settings(max_examples=300, deadline=None)
@given(group_geometries())
def test_group_tile_holds_every_group_reaching_the_box(case):
    """Check a tile's references against a loop over every reference of the image.

    The tile must hold every reference whose window touches the box, with all
    the references of their claim blocks, and read every pixel their windows
    cover, within the layout's halo.
    """
    layout, start, stop = case
    tile = group_tile(layout, start, stop)
    held = set(
        itertools.product(
            *(
                origins[lo:hi].tolist()
                for origins, (lo, hi) in zip(
                    layout.references.axis_origins, tile.reference_ranges, strict=True
                )
            )
        )
    )
    everything = list(itertools.product(*layout.references.axis_origins))
    reaching = set()
    for origin in everything:
        lo, hi = brute_force_reach(layout, origin)
        if all(a < q and b > p for a, b, p, q in zip(lo, hi, start, stop, strict=True)):
            reaching.add(origin)
    assert reaching <= held
    blocks = {tuple(o // layout.block for o in origin) for origin in reaching}
    assert held == {
        origin
        for origin in everything
        if tuple(o // layout.block for o in origin) in blocks
    }
    for origin in held:
        lo, hi = brute_force_reach(layout, origin)
        assert all(a >= i for a, i in zip(lo, tile.input_start, strict=True))
        assert all(b <= i for b, i in zip(hi, tile.input_stop, strict=True))
    for a, b, i, j, h in zip(
        start, stop, tile.input_start, tile.input_stop, layout.halo(), strict=True
    ):
        assert i <= a <= i + h
        assert b <= j <= b + h
    rows = tile.block_rows()
    if held:
        assert rows[0][0] == tile.reference_ranges[0][0]
        assert rows[-1][1] == tile.reference_ranges[0][1]
    for (_, hi), (next_lo, _) in itertools.pairwise(rows):
        assert hi == next_lo
    row_blocks = [
        set(layout.references.axis_origins[0][lo:hi] // layout.block) for lo, hi in rows
    ]
    assert all(len(b) == 1 for b in row_blocks)
    assert len({b.pop() for b in row_blocks}) == len(rows)


def test_group_tile_of_the_whole_image_reads_the_whole_image():
    layout = GroupLayout.of((50, 41), (5, 5), (11, 11), (1, 2))
    tile = group_tile(layout, (0, 0), (50, 41))
    assert tile.input_start == (0, 0)
    assert tile.input_stop == (50, 41)
    assert tile.n_references == layout.references.n_patches
    np.testing.assert_array_equal(
        tile.references(*tile.reference_ranges[0]), layout.references.origins()
    )
