"""Patch geometry: where patches sit on an image. All index arithmetic lives here."""

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
    def _pad_before(self):
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
    def _axis_runs(self):
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

    @property
    def axis_origins(self):
        return tuple(
            np.concatenate([np.arange(*run) for run in runs])
            for runs in self._axis_runs
        )

    @property
    def grid_shape(self):
        return tuple(sum(len(range(*run)) for run in runs) for runs in self._axis_runs)

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
        return np.stack(mesh, axis=-1).reshape(-1, self.ndim) - self._pad_before

    def _to_canvas(self, origins):
        """Check image-coordinate origins and return them in canvas coordinates."""
        origins = np.asarray(origins)
        if origins.ndim != 2 or origins.shape[1] != self.ndim:
            raise ValueError(
                f"origins must have shape (n_patches, {self.ndim}), got {origins.shape}"
            )
        if origins.dtype.kind not in "iu":
            raise TypeError(f"origins must be integers, got dtype {origins.dtype}")
        lower = -self._pad_before
        span = np.array(self.padded_shape) - np.array(self.patch_size)
        # Axis by axis: numpy broadcasts over an inner axis of ndim values slowly.
        canvas = np.empty(origins.shape, dtype=np.intp)
        inside = True
        for axis in range(self.ndim):
            column = np.subtract(
                origins[:, axis], lower[axis], out=canvas[:, axis], casting="unsafe"
            )
            if len(column):
                inside &= column.min() >= 0 and column.max() <= span[axis]
        if not inside:
            upper = lower + span
            bad = np.any((origins < lower) | (origins > upper), axis=1)
            first = tuple(origins[int(np.argmax(bad))].tolist())
            raise ValueError(
                f"{int(bad.sum())} origins put a patch outside the image: origin "
                f"{first} is not within {tuple(lower.tolist())} .. "
                f"{tuple(upper.tolist())} for {self._describe()}"
            )
        return canvas

    def _axis_weight_sums(self, axis_windows):
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

    def _flat_origins(self, strides, canvas_origins=None):
        """Flat offsets of patch origins in a canvas with the given ``strides``.

        ``strides`` are the canvas's strides (in elements or in bytes) along its
        spatial axes; ``canvas_origins`` are origins in canvas coordinates, the
        full grid in order when None. Returns ``(outer, inner)``: patch ``o *
        len(inner) + j`` sits at ``outer[o] + inner[j]``. For the full grid these
        are its leading axes and its last axis, so no array as long as the grid
        is made; for given origins, ``outer`` holds them all and ``inner`` is
        ``[0]``. This is how the compiled kernels are told where each patch is.
        """
        strides = np.asarray(strides[: self.ndim], dtype=np.intp)
        if canvas_origins is not None:
            flat = canvas_origins[:, 0] * strides[0]
            for axis in range(1, self.ndim):
                flat += canvas_origins[:, axis] * strides[axis]
            return flat, np.zeros(1, np.intp)
        per_axis = [
            origins * s for origins, s in zip(self.axis_origins, strides, strict=True)
        ]
        outer = _outer_sum(per_axis[:-1]).ravel() if self.ndim > 1 else np.zeros(1)
        return outer.astype(np.intp, copy=False), per_axis[-1].astype(np.intp)

    def _row_offsets(self, strides):
        """Flat offsets of every patch row from the patch's first value.

        A row is the last patch axis (with the channels, if the canvas has them),
        contiguous in a patch and in a C-ordered canvas alike. The offsets are
        in C order of the other patch axes.
        """
        return _row_starts(self.patch_size, strides)

    def _image_row_starts(self, strides):
        """Flat offsets in the canvas of every row of the image (the crop)."""
        corner = int(np.dot(self._pad_before, np.asarray(strides[: self.ndim])))
        return corner + _row_starts(self.image_shape, strides)

    def _row_bands(self, band_rows, first_axis_origins=None):
        """Split the canvas into bands of ``band_rows`` whole rows of the first axis.

        Returns ``(bounds, first, last)``: band ``b`` is the canvas rows
        ``bounds[b]:bounds[b + 1]``, and the patches ``first[b]:last[b]`` are the
        ones that may cover it, in the order of the grid, or of
        ``first_axis_origins`` (the sorted canvas origins along the first axis of
        the patches at hand) when it is given. A patch row (along the last axis)
        never crosses a band; on a 1-D grid, whose rows run along the first
        axis, there is one band.
        """
        if self.ndim == 1:
            band_rows = self.padded_shape[0]
        if first_axis_origins is None:
            origins = self.axis_origins[0]
            per_origin = self.n_patches // self.grid_shape[0]
        else:
            origins, per_origin = first_axis_origins, 1
        size = self.padded_shape[0]
        bounds = np.append(np.arange(0, size, band_rows), size).astype(np.intp)
        first = np.searchsorted(origins, bounds[:-1] - (self.patch_size[0] - 1))
        last = np.searchsorted(origins, bounds[1:])
        return bounds, first * per_origin, last * per_origin

    def _describe(self):
        """A one-line description used in error messages."""
        return (
            f"image {self.image_shape}, patch_size {self.patch_size}, "
            f"step {self.step}, offset {self.offset}, padding {self.padding!r}"
        )


def _row_starts(shape, strides):
    """Flat offsets of the rows (along the last axis) of a box of ``shape``."""
    per_axis = [
        np.arange(n, dtype=np.intp) * s
        for n, s in zip(shape[:-1], strides[: len(shape) - 1], strict=True)
    ]
    return _outer_sum(per_axis).ravel() if per_axis else np.zeros(1, np.intp)


def _outer_sum(vectors):
    """``vectors[0][:, None, ...] + vectors[1][None, :, ...] + ...``."""
    total = vectors[0]
    for v in vectors[1:]:
        total = np.add.outer(total, v)
    return total
