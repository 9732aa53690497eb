"""Patch geometry: where patches sit on an image. All index arithmetic lives here."""

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ._validation import PAD_MODES, as_axis_tuple, check_padding


@dataclass(frozen=True)
class PatchGrid:
    """Where patches sit on an image of a given spatial shape.

    A small immutable object holding no pixel data. It turns a patch size, a step
    (stride), an offset and an edge policy into patch origins, the padded canvas
    shape and the crop that undoes the padding. Channels are not part of the grid.

    Parameters
    ----------
    image_shape : tuple of int
        Spatial shape of the image (no channel axis).
    patch_size : int or tuple of int
        Patch shape; an int is used on every axis.
    step : int or tuple of int, default=1
        Distance between the origins of neighbouring patches along each axis.
    offset : int or tuple of int, default=0
        Origin of the first regular patch along each axis, in canvas coordinates
        (the padded image when ``padding`` is a pad mode); ``0 <= offset < step``.
        Shifting the grid by a fraction of a step gives another tiling of the
        same image (as in cycle spinning).
    padding : {None, 'valid', 'reflect', 'symmetric', 'edge', 'constant', 'wrap'}, \
default=None
        Edge policy. ``None`` keeps patches inside the image and, where the regular
        grid misses the far edge (or starts after 0 because of ``offset``), adds one
        patch snapped to that edge, so every pixel is covered whenever
        ``step <= patch_size``. ``'valid'`` keeps only the regular grid and drops
        the remainder. A numpy pad mode pads every axis by ``patch_size - 1`` on
        both sides (so edge pixels are covered as often as interior ones), lays
        the snapped grid on the padded canvas, and reconstruction crops back.

    Attributes
    ----------
    ndim : int
        Number of spatial axes.
    pad_width : tuple of (int, int)
        Padding before and after each axis.
    padded_shape : tuple of int
        Shape of the canvas the grid is laid on.
    crop : tuple of slice
        Slices taking the canvas back to the image.
    axis_origins : tuple of ndarray
        Patch origins along each axis, in canvas coordinates.
    grid_shape : tuple of int
        Number of patches along each axis.
    n_patches : int
        Total number of patches, ``prod(grid_shape)``.

    See Also
    --------
    extract_patches : Cut an image into the patches of a grid.
    reconstruct_from_patches : Put an image back together from them.

    Examples
    --------
    >>> from skpatch import PatchGrid
    >>> grid = PatchGrid((10, 11), 4, step=3)
    >>> grid.grid_shape, grid.n_patches
    ((3, 4), 12)
    >>> grid.axis_origins[1]
    array([0, 3, 6, 7])
    """

    image_shape: tuple
    patch_size: tuple
    step: tuple = 1
    offset: tuple = 0
    padding: str | None = None

    def __post_init__(self):
        image_shape = as_axis_tuple(
            tuple(self.image_shape), len(self.image_shape), "image_shape", minimum=1
        )
        ndim = len(image_shape)
        patch_size = as_axis_tuple(self.patch_size, ndim, "patch_size", minimum=1)
        if any(p > s for p, s in zip(patch_size, image_shape, strict=True)):
            raise ValueError(
                f"patch_size {patch_size} is larger than the image's spatial shape "
                f"{image_shape}"
            )
        object.__setattr__(self, "image_shape", image_shape)
        object.__setattr__(self, "patch_size", patch_size)
        object.__setattr__(
            self, "step", as_axis_tuple(self.step, ndim, "step", minimum=1)
        )
        object.__setattr__(
            self, "offset", as_axis_tuple(self.offset, ndim, "offset", minimum=0)
        )
        object.__setattr__(self, "padding", check_padding(self.padding))
        self._check_offset()

    def _check_offset(self):
        for axis, (o, s, size, p) in enumerate(
            zip(self.offset, self.step, self.padded_shape, self.patch_size, strict=True)
        ):
            if o >= s or o > size - p:
                raise ValueError(
                    f"offset {self.offset} is out of range on axis {axis}: it must be "
                    f"smaller than the step {s} and at most {size - p} (so that a "
                    f"patch of {p} starting there ends inside the canvas of {size})"
                )

    @property
    def ndim(self):
        return len(self.image_shape)

    @property
    def pad_width(self):
        if self.padding in PAD_MODES:
            return tuple((p - 1, p - 1) for p in self.patch_size)
        return ((0, 0),) * self.ndim

    @property
    def pad_before(self):
        """Padding before each axis, as an array (canvas = image + pad_before)."""
        return np.array([b for b, _ in self.pad_width], dtype=np.intp)

    @property
    def padded_shape(self):
        return tuple(
            s + b + a
            for s, (b, a) in zip(self.image_shape, self.pad_width, strict=True)
        )

    @property
    def crop(self):
        return tuple(
            slice(b, b + s)
            for s, (b, _) in zip(self.image_shape, self.pad_width, strict=True)
        )

    @property
    def axis_runs(self):
        """Per axis, the origins as ``(start, stop, step)`` runs of regular spacing."""
        return tuple(self._runs(axis) for axis in range(self.ndim))

    def _runs(self, axis):
        size, p = self.padded_shape[axis], self.patch_size[axis]
        o, s = self.offset[axis], self.step[axis]
        last_regular = o + (size - p - o) // s * s
        runs = [(o, last_regular + 1, s)]
        if self.padding != "valid":
            if o > 0:
                runs.insert(0, (0, 1, 1))
            if last_regular != size - p:
                runs.append((size - p, size - p + 1, 1))
        return tuple(runs)

    def regular_subgrids(self):
        """Split the grid into regularly spaced blocks of patches.

        Each axis has at most three runs (a snapped first patch, the regular grid,
        a snapped last patch), so there are at most ``3 ** ndim`` blocks. Yields
        ``(grid_index, origin, step)``: the tuple of slices selecting the block in
        an array laid out as ``grid_shape``, the canvas coordinates of the block's
        first patch, and the step between its patches along each axis.
        """
        per_axis = [list(_run_blocks(runs)) for runs in self.axis_runs]
        for blocks in itertools.product(*per_axis):
            index, origin, step = zip(*blocks, strict=True)
            yield index, origin, step

    @property
    def axis_origins(self):
        return tuple(
            np.concatenate([np.arange(*run) for run in runs]) for runs in self.axis_runs
        )

    @property
    def grid_shape(self):
        return tuple(sum(len(range(*run)) for run in runs) for runs in self.axis_runs)

    @property
    def n_patches(self):
        return math.prod(self.grid_shape)

    def origins(self):
        """Return the origins of all patches, shape ``(n_patches, ndim)``.

        Origins are in image coordinates (negative where a patch starts in the
        padding), in C order: the last axis varies fastest, as in
        :func:`extract_patches`.
        """
        mesh = np.meshgrid(*self.axis_origins, indexing="ij")
        return np.stack(mesh, axis=-1).reshape(-1, self.ndim) - self.pad_before

    def to_canvas(self, origins):
        """Check image-coordinate origins and return them in canvas coordinates."""
        origins = np.asarray(origins)
        if origins.ndim != 2 or origins.shape[1] != self.ndim:
            raise ValueError(
                f"origins must have shape (n_patches, {self.ndim}), got {origins.shape}"
            )
        if origins.dtype.kind not in "iu":
            raise TypeError(f"origins must be integers, got dtype {origins.dtype}")
        lower = -self.pad_before
        upper = lower + np.array(self.padded_shape) - np.array(self.patch_size)
        bad = np.any((origins < lower) | (origins > upper), axis=1)
        if bad.any():
            first = tuple(origins[int(np.argmax(bad))].tolist())
            raise ValueError(
                f"{int(bad.sum())} origins put a patch outside the image: origin "
                f"{first} is not within {tuple(lower.tolist())} .. "
                f"{tuple(upper.tolist())} for {self.describe()}"
            )
        canvas = origins - lower
        return canvas.astype(np.intp, copy=False)

    def axis_weight_sums(self, axis_windows):
        """Per axis, the 1-D sum of the patch windows over the canvas.

        For a full grid with a separable window, the weight map is the outer
        product of these sums.
        """
        sums = []
        for size, origins, window in zip(
            self.padded_shape, self.axis_origins, axis_windows, strict=True
        ):
            total = np.zeros(size)
            for k, w in enumerate(window):
                total[origins + k] += w
            sums.append(total)
        return tuple(sums)

    def describe(self):
        """A one-line description used in error messages."""
        return (
            f"image {self.image_shape}, patch_size {self.patch_size}, "
            f"step {self.step}, offset {self.offset}, padding {self.padding!r}"
        )


def _run_blocks(runs):
    """Per run of one axis: its slice of the grid, first canvas origin and step."""
    position = 0
    for start, stop, step in runs:
        length = len(range(start, stop, step))
        yield slice(position, position + length), start, step
        position += length
