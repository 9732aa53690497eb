"""Dask arrays in and out: lazy denoising and out-of-core sampling of patches.

Imported only when a dask array arrives. The graph is built from the
geometry's tiling (:mod:`skpatch._tiling`) with ``dask.array.map_overlap``,
and every block runs the same per-tile function as the thread pool
(:func:`skpatch._parallel.tile_average`), so results equal the in-memory ones
for any chunking. Nothing here computes an array, except the sampling of
training patches, whose result is the matrix a model is fitted on.
"""

import math
from functools import partial

import dask
import dask.array as da
import numpy as np

from ._denoise import centre_rows, iteration_schedule, sample_size
from ._extract import _sample_indices, extract_patches
from ._grid import PatchGrid
from ._tiling import (
    _image_index,
    gather_region,
    group_tile,
    halo,
    periodic_axes,
    tile_at,
)
from ._validation import (
    check_finite,
    output_float_dtype,
    spatial_shape_and_channels,
)


def check_dask_images(X, n_spatial):
    """Check a dask array of images ``(n_images, *spatial[, n_channels])``."""
    if X.ndim not in (n_spatial + 1, n_spatial + 2):
        raise ValueError(
            f"a dask array of images must have shape (n_images, *spatial_shape) "
            f"with {n_spatial} spatial axes (as patch_size), or (n_images, "
            f"*spatial_shape, n_channels); got shape {X.shape} with {X.ndim} axes"
        )
    _check_dask_values(X, "images", "X")
    if X.shape[0] == 0:
        raise ValueError("X contains no image: got an empty batch")
    return X


def _check_dask_values(X, what, name):
    """Real numbers and known chunk sizes, what every dask input needs."""
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold real numbers; got dtype {X.dtype}")
    if any(math.isnan(s) for s in X.shape):
        raise ValueError(
            f"the dask array has unknown chunk sizes (shape {X.shape}); call "
            f"{name}.compute_chunk_sizes() first"
        )


def denoise_dask(X, denoiser, noise_sigma, n_iter):
    """The lazy denoised images of a dask array ``(n_images, *spatial[, C])``.

    Spatial chunks shorter than the halo (``patch_size - 1``) are merged with
    their neighbours, and a channel axis is gathered into one chunk, for the
    work; the result is rechunked back to the chunks of ``X``.
    """
    n_spatial = len(denoiser.patch_size)
    check_dask_images(X, n_spatial)
    grid = denoiser.grid(X.shape[1 : 1 + n_spatial])
    dtype = output_float_dtype(X.dtype)
    work = X.rechunk(carrying_chunks(X.chunks, halo(grid))).astype(dtype)
    depth = dict.fromkeys(range(X.ndim), 0)
    boundary = dict.fromkeys(range(X.ndim), "none")
    for axis, (h, wraps) in enumerate(
        zip(halo(grid), periodic_axes(grid), strict=True), start=1
    ):
        depth[axis] = h
        boundary[axis] = "periodic" if wraps else "none"
    estimate = work
    for multiplier, sigma in iteration_schedule(noise_sigma, n_iter):
        average = da.map_overlap(
            partial(
                _average_block,
                denoiser=denoiser,
                grid=grid,
                sigma=sigma,
                chunks=work.chunks[1 : 1 + n_spatial],
            ),
            estimate,
            depth=depth,
            boundary=boundary,
            trim=False,
            chunks=work.chunks,
            dtype=dtype,
            meta=np.empty((0,) * X.ndim, dtype),
            token="skpatch-denoise",
        )
        if n_iter == 1:
            estimate = average
            break
        estimate = (work + multiplier * average) / (1 + multiplier)
    return estimate if estimate.chunks == X.chunks else estimate.rechunk(X.chunks)


def carrying_chunks(chunks, halos):
    """Chunks of an images array whose spatial chunks can all carry the halo.

    dask's ``map_overlap`` needs every chunk at least as long as the overlap:
    shorter spatial chunks are merged with the next ones (the last with the
    one before); an axis after the spatial ones (channels) becomes one chunk.
    """
    merged = [chunks[0]]
    for lengths, h in zip(chunks[1 : 1 + len(halos)], halos, strict=True):
        merged.append(_merge_short(lengths, h))
    merged.extend((sum(c),) for c in chunks[1 + len(halos) :])
    return tuple(merged)


def _merge_short(lengths, minimum):
    groups = []
    for n in lengths:
        if groups and groups[-1] < minimum:
            groups[-1] += n
        else:
            groups.append(n)
    if len(groups) > 1 and groups[-1] < minimum:
        last = groups.pop()
        groups[-1] += last
    return tuple(groups)


def _average_block(block, *, denoiser, grid, sigma, chunks, block_id=None):
    """One dask block: the overlap average of its tile, for each of its images."""
    tile_index = block_id[1 : 1 + grid.ndim]
    start = tuple(sum(c[:i]) for c, i in zip(chunks, tile_index, strict=True))
    stop = tuple(s + c[i] for s, c, i in zip(start, chunks, tile_index, strict=True))
    tile = tile_at(grid, start, stop)
    source_start = tuple(
        t - h if wraps else max(0, t - h)
        for t, h, wraps in zip(start, halo(grid), periodic_axes(grid), strict=True)
    )
    return np.stack(
        [denoiser.average(image, source_start, tile, sigma) for image in block]
    )


def training_patches_dask(
    X, patch_size, geometry, *, max_patches=None, remove_mean=True, random_state=None
):
    """The rows of :func:`~skpatch._denoise.training_patches` from a dask array.

    The same patches are drawn as from the computed array (same random
    draws, same order), but only the pieces of ``X`` around them are read:
    the sampled patches are grouped by the chunk their origin falls in, and
    each group reads the box of its patches (a chunk plus at most a halo).
    """
    n_spatial = len(patch_size)
    grid = PatchGrid(X.shape[1 : 1 + n_spatial], patch_size, **geometry)
    parts = []
    for i in range(X.shape[0]):
        n_draw = sample_size(max_patches, grid)
        if n_draw is None:
            indices = np.arange(grid.n_patches)
        else:
            indices = _sample_indices(grid.n_patches, n_draw, random_state)
        parts.append(_image_patches(X[i], grid, indices))
    (patches,) = dask.compute(parts)
    rows = np.concatenate([p.reshape(len(p), -1) for p in patches])
    if rows.dtype.kind == "f" and not np.isfinite(rows).all():
        raise ValueError(
            "the sampled training patches contain NaN or infinite values; "
            "denoising needs finite images"
        )
    return centre_rows(rows, patch_size, remove_mean)


def _image_patches(image, grid, indices):
    """A delayed array of the patches at flat grid ``indices`` of one dask image."""
    coords = np.unravel_index(indices, grid.grid_shape)
    origins = np.stack(
        [o[c] for o, c in zip(grid.axis_origins, coords, strict=True)], axis=-1
    ).reshape(-1, grid.ndim)
    bounds = [np.cumsum(c)[:-1] for c in image.chunks[: grid.ndim]]
    chunk_of = np.stack(
        [
            np.searchsorted(b, np.clip(o - before, 0, size - 1), side="right")
            for b, o, before, size in zip(
                bounds, origins.T, grid._pad_before, grid.image_shape, strict=True
            )
        ],
        axis=-1,
    )
    groups = np.unique(chunk_of, axis=0)
    pieces, order = [], []
    for group in groups:
        members = np.flatnonzero((chunk_of == group).all(axis=1))
        pieces.append(_group_patches(image, grid, origins[members]))
        order.append(members)
    order = np.argsort(np.concatenate(order), kind="stable")
    return dask.delayed(_in_order)(pieces, order)


def _group_patches(image, grid, canvas_origins):
    """Delayed patches at ``canvas_origins``, reading only the box they cover."""
    region_start = canvas_origins.min(axis=0)
    region_stop = canvas_origins.max(axis=0) + np.array(grid.patch_size)
    indices, box = [], []
    for r0, r1, before, size, padding in zip(
        region_start,
        region_stop,
        grid._pad_before,
        grid.image_shape,
        (grid.padding,) * grid.ndim,
        strict=True,
    ):
        coords = np.arange(r0, r1) - before
        if padding == "wrap":
            coords = np.mod(coords, size)
        image_index = _image_index(coords, size, padding, 0)
        inside = image_index[image_index >= 0]
        lo, hi = (int(inside.min()), int(inside.max()) + 1) if len(inside) else (0, 1)
        indices.append(np.where(image_index >= 0, image_index - lo, -1))
        box.append(slice(lo, hi))
    source = image[tuple(box)]
    return dask.delayed(_extract_group)(
        source, indices, canvas_origins - region_start, grid.patch_size
    )


def _extract_group(source, indices, origins, patch_size):
    region = np.ascontiguousarray(gather_region(np.asarray(source), indices))
    channel_axis = -1 if region.ndim > len(patch_size) else None
    return extract_patches(
        region, patch_size, origins=origins, channel_axis=channel_axis
    )


def _in_order(pieces, order):
    return np.concatenate(pieces)[order]


# ------------------------------------------------------------------ NL-Bayes


def check_dask_image(image, channel_axis, noise_sigma):
    """Check one dask image for :func:`~skpatch.denoise_nl_bayes`; return it and
    its channel axis (normalised)."""
    _check_dask_values(image, "image", "image")
    if image.ndim == 0:
        raise ValueError("image must have at least one axis, got a scalar")
    if noise_sigma is None:
        raise ValueError(
            "noise_sigma=None (estimating the noise) needs the whole image in "
            "memory; for a dask array pass the noise level, e.g. "
            "estimate_noise_sigma on a crop of it"
        )
    _, _, channel_axis = spatial_shape_and_channels(image.shape, channel_axis)
    return image, channel_axis


def nl_bayes_step_dask(noisy, guide, pilot, settings, layout, joint, *, sigma):
    """One NL-Bayes step on channels-last dask arrays; a lazy array like ``noisy``.

    Every chunk is the output box of a :class:`~skpatch._tiling.GroupTile`
    whose input is the chunk plus the layout's halo; chunks shorter than the
    halo are merged with their neighbours first.
    """
    ndim = layout.ndim
    depth = layout.halo()
    chunks = tuple(
        _merge_short(lengths, h)
        for lengths, h in zip(noisy.chunks[:ndim], depth, strict=True)
    )
    arrays = [
        a.rechunk((*chunks, a.shape[-1]))
        for a in (noisy, guide, pilot)
        if a is not None
    ]
    step = partial(
        _nl_bayes_block,
        sigma=sigma,
        settings=settings,
        layout=layout,
        joint=joint,
        chunks=chunks,
    )
    # An axis in one chunk needs no overlap (and dask takes none longer than it).
    overlap = [h if len(c) > 1 else 0 for h, c in zip(depth, chunks, strict=True)]
    return da.map_overlap(
        step,
        *arrays,
        depth=dict(enumerate([*overlap, 0])),
        boundary="none",
        trim=False,
        align_arrays=False,
        chunks=arrays[0].chunks,
        dtype=np.float64,
        meta=np.empty((0,) * (ndim + 1), np.float64),
        token="skpatch-nl-bayes",
    )


def _nl_bayes_block(
    noisy, guide, *pilot, sigma, settings, layout, joint, chunks, block_id
):
    from ._nonlocal import nl_bayes_step

    index = block_id[: layout.ndim]
    start = tuple(sum(c[:i]) for c, i in zip(chunks, index, strict=True))
    stop = tuple(s + c[i] for s, c, i in zip(start, chunks, index, strict=True))
    tile = group_tile(layout, start, stop)
    depth = layout.halo()
    # The block holds the chunk and the halo, clipped to the image.
    block_start = [max(0, s - h) for s, h in zip(start, depth, strict=True)]
    box = tuple(
        slice(i - b, j - b)
        for i, j, b in zip(tile.input_start, tile.input_stop, block_start, strict=True)
    )
    pilot = pilot[0][box] if pilot else None
    # In memory the whole image was checked up front; a chunk only now.
    check_finite(noisy[box], "image", "non-local Bayes denoising")
    return nl_bayes_step(
        noisy[box],
        guide[box],
        pilot,
        sigma,
        settings,
        tile,
        joint=joint,
    )
