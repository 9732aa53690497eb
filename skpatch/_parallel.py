"""The per-tile function, the thread pool that runs it, and progress reports.

:func:`tile_average` is the one code path of tiled processing: threads
(``n_jobs``) and dask blocks both call it on a tile and the source block its
patches read (see :mod:`skpatch._tiling`).
"""

import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from joblib import effective_n_jobs
from threadpoolctl import threadpool_limits

from ._extract import extract_patches
from ._reconstruct import PatchAccumulator
from ._tiling import gather_region
from ._validation import output_float_dtype

# Patch values per batch of a tile, counted in float64. 2 MiB (4096 8x8 patches)
# keeps a batch's arrays in the cache on one thread; threads take 16 MiB, as
# the numpy calls of a batch hold the GIL between them, and larger batches make
# fewer, longer calls (Amdahl's law on the GIL-held share).
BATCH_BYTES = 2 * 2**20
THREAD_BATCH_BYTES = 16 * 2**20
# Tiles per worker thread, so that uneven tiles still keep every worker busy.
TILES_PER_WORKER = 4


def tile_average(
    source,
    source_start,
    tile,
    transform,
    *,
    weights="uniform",
    on_batch=None,
    batch_bytes=BATCH_BYTES,
):
    """Overlap-average the transformed patches covering a tile; return its pixels.

    Parameters
    ----------
    source : ndarray of shape (*box_shape[, n_channels])
        The image block the tile's patches read, as :func:`~skpatch._tiling.
        source_block` or ``dask.array.map_overlap`` gives it.
    source_start : tuple of int
        Image coordinates of the block's first pixel.
    tile : Tile
        The tile and its patches on the global grid.
    transform : callable
        ``transform(patches) -> estimates`` of the same shape, patch by patch.
    weights : str, tuple or array-like, default='uniform'
        Window of the overlap average.
    on_batch : callable, default=None
        Called with the number of patches of every batch done (progress).
    batch_bytes : int, default=BATCH_BYTES
        Patches per batch, as bytes of float64 patch values.

    Returns
    -------
    tile_pixels : ndarray of shape (*tile.shape[, n_channels])
        The dtype of ``source`` for float32/float64, float64 otherwise; NaN
        where no patch covers a pixel.
    """
    grid = tile.grid
    channels = source.shape[grid.ndim :]
    dtype = output_float_dtype(source.dtype)
    if tile.n_patches == 0:
        return np.full(tile.shape + channels, np.nan, dtype)
    region = np.ascontiguousarray(
        gather_region(source, tile.source_indices(source_start))
    )
    box_start, box_shape = tile.box()
    channel_axis = -1 if channels else None
    accumulator = PatchAccumulator(
        box_shape + channels,
        grid.patch_size,
        channel_axis=channel_axis,
        weights=weights,
        dtype=dtype,
    )
    shift = np.subtract(tile.region_start, box_start)
    batch = max(1, batch_bytes // (8 * math.prod(grid.patch_size + channels)))
    for first in range(0, tile.n_patches, batch):
        origins = tile.origins(first, min(first + batch, tile.n_patches))
        patches = extract_patches(
            region, grid.patch_size, origins=origins, channel_axis=channel_axis
        )
        accumulator.add(transform(patches), origins + shift)
        if on_batch is not None:
            on_batch(len(origins))
    image = accumulator.result()
    crop = tuple(
        slice(t - b, t - b + n)
        for t, b, n in zip(tile.canvas_start, box_start, tile.shape, strict=True)
    )
    return image[crop]


def resolve_n_jobs(n_jobs):
    """Worker threads for ``n_jobs`` as scikit-learn reads it; 0 is an error.

    ``None`` means 1 (unless inside a :func:`joblib.parallel_config` context),
    ``-1`` every core, ``-2`` all but one, ...
    """
    if n_jobs == 0 or isinstance(n_jobs, bool):
        raise ValueError(
            f"n_jobs must be None, a positive int (that many threads) or a negative "
            f"int (-1 for every core, -2 for all but one, ...); got {n_jobs!r}"
        )
    return max(1, int(effective_n_jobs(n_jobs)))


def thread_chunks(shape, patch_size, n_workers):
    """Tile lengths per axis for ``n_workers`` threads (one tile for one worker).

    Cuts the longest tile side in two until there are
    ``TILES_PER_WORKER * n_workers`` tiles, keeping every side at least four
    halos long so that the patches read twice along tile borders stay few.
    """
    counts = [1] * len(shape)
    target = 1 if n_workers == 1 else TILES_PER_WORKER * n_workers
    while math.prod(counts) < target:
        sides = [s / c for s, c in zip(shape, counts, strict=True)]
        axis = int(np.argmax(sides))
        if sides[axis] / 2 < max(4 * (patch_size[axis] - 1), 8):
            break
        counts[axis] *= 2
    return tuple(
        tuple(int(n) for n in np.diff(np.linspace(0, s, c + 1).round().astype(int)))
        for s, c in zip(shape, counts, strict=True)
    )


def run_tasks(tasks, n_workers):
    """Call every task (a callable without arguments); threads if ``n_workers > 1``.

    BLAS is held to one thread while the pool runs, so that the pool's threads
    and BLAS's do not oversubscribe the cores.
    """
    return list(iter_tasks(tasks, n_workers))


def iter_tasks(tasks, n_workers):
    """Yield the results of the tasks in order, as :func:`run_tasks` computes them.

    The caller can consume each result as it comes (merge it, free it) while
    the pool works on the next ones.
    """
    if n_workers == 1 or len(tasks) <= 1:
        for task in tasks:
            yield task()
        return
    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=n_workers) as pool,
    ):
        yield from pool.map(_call, tasks)


def _call(task):
    return task()


class Progress:
    """Thread-safe progress of long work: tqdm where installed, plain lines if not.

    Reports to stderr, as scikit-learn does. ``verbose=0`` reports nothing.
    """

    def __init__(self, total, description, *, verbose=0, unit="patches"):
        self.total, self.description, self.unit = total, description, unit
        self.done, self._lock = 0, threading.Lock()
        self._start = self._last = time.perf_counter()
        self._bar = None
        self.enabled = bool(verbose) and total > 0
        if self.enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total,
                    desc=description,
                    unit=unit,
                    unit_scale=True,
                    file=sys.stderr,
                )

    def update(self, n):
        if not self.enabled:
            return
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
            elif self.done == self.total or time.perf_counter() - self._last > 5:
                self._last = time.perf_counter()
                print(self._line(), file=sys.stderr, flush=True)

    def _line(self):
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (
            f"{self.description}: {self.done}/{self.total} {self.unit} "
            f"({100 * self.done / self.total:.0f}%), {rate:.0f} {self.unit}/s, "
            f"{elapsed:.1f} s elapsed, {left:.1f} s left"
        )

    def close(self):
        if self._bar is not None:
            self._bar.close()
