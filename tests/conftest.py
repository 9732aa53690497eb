"""Shared fixtures: small synthetic images, hypothesis strategies and references.

The references below are written from the API contract alone (plain Python loops
over patches and pixels) so that they are independent of skpatch's index
arithmetic. They are handed to tests through session-scoped fixtures, which
hypothesis accepts inside ``@given`` tests.
"""

import itertools
import math
import re
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import strategies as st

PAD_MODES = ("reflect", "symmetric", "edge", "constant", "wrap")
EDGE_POLICIES = (None, "valid", *PAD_MODES)
MAX_AXIS_SIZE = {1: 13, 2: 8, 3: 5}


@dataclass(frozen=True)
class Geometry:
    """One drawn test case: image shape, patch grid parameters and channels."""

    spatial_shape: tuple
    patch_size: tuple
    step: tuple
    offset: tuple
    padding: str | None
    n_channels: int | None = None
    channel_axis: int | None = None

    @property
    def image_shape(self):
        if self.channel_axis is None:
            return self.spatial_shape
        shape = list(self.spatial_shape)
        shape.insert(self.channel_axis % (len(shape) + 1), self.n_channels)
        return tuple(shape)

    @property
    def grid_kwargs(self):
        return {"step": self.step, "offset": self.offset, "padding": self.padding}

    @property
    def kwargs(self):
        return {**self.grid_kwargs, "channel_axis": self.channel_axis}

    @property
    def covers_every_pixel(self):
        return bool(reference_coverage(self.spatial_shape, self.patch_size,
                                       reference_origins(self)).min() > 0)


def reference_axis_origins(size, patch, step, offset, padding):
    """Patch origins on one axis, in image coordinates, read off the contract."""
    pad = patch - 1 if padding in PAD_MODES else 0
    last = size + 2 * pad - patch
    origins = list(range(offset, last + 1, step))
    if padding != "valid":
        if offset > 0:
            origins.insert(0, 0)
        if origins[-1] != last:
            origins.append(last)
    return [o - pad for o in origins]


def reference_origins(geometry):
    """All origins, C order (last axis fastest), shape ``(n_patches, ndim)``."""
    per_axis = [
        reference_axis_origins(*args, geometry.padding)
        for args in zip(geometry.spatial_shape, geometry.patch_size, geometry.step,
                        geometry.offset, strict=True)
    ]
    origins = list(itertools.product(*per_axis))
    return np.array(origins, dtype=int).reshape(len(origins), len(per_axis))


def channels_last(image, channel_axis):
    """The image with its channel axis moved last (or a trailing axis of 1 added)."""
    if channel_axis is None:
        return image[..., np.newaxis]
    return np.moveaxis(image, channel_axis, -1)


def reference_extract(image, patch_size, origins, padding=None, channel_axis=None):
    """Cut ``image[origin : origin + patch_size]`` out for every origin, by hand."""
    work = channels_last(np.asarray(image), channel_axis)
    pad = [(p - 1, p - 1) if padding in PAD_MODES else (0, 0) for p in patch_size]
    if padding in PAD_MODES:
        work = np.pad(work, [*pad, (0, 0)], mode=padding)
    patches = []
    for origin in origins:
        index = tuple(slice(o + before, o + before + p)
                      for o, (before, _), p in zip(origin, pad, patch_size,
                                                   strict=True))
        patches.append(work[index])
    patches = np.array(patches, dtype=work.dtype).reshape(
        (len(patches), *patch_size, work.shape[-1])
    )
    return patches[..., 0] if channel_axis is None else patches


def _as_channels_last_patches(patches, n_spatial):
    patches = np.asarray(patches, dtype=np.float64)
    return patches[..., np.newaxis] if patches.ndim == n_spatial + 1 else patches


def _covering_values(patches, spatial_shape, origins):
    """Per pixel, the (patch index, position in patch) pairs covering it."""
    patch_size = patches.shape[1 : 1 + len(spatial_shape)]
    hits = {}
    for i, origin in enumerate(origins):
        for pos in np.ndindex(*patch_size):
            pixel = tuple(int(o) + k for o, k in zip(origin, pos, strict=True))
            if all(0 <= x < s for x, s in zip(pixel, spatial_shape, strict=True)):
                hits.setdefault(pixel, []).append((i, pos))
    return hits


def _finish(out, channel_axis, had_channels):
    if not had_channels:
        return out[..., 0]
    return np.moveaxis(out, -1, channel_axis)


def reference_reconstruct(patches, spatial_shape, origins, window=None,
                          channel_axis=None):
    """``sum_i w_i(x) p_i(x) / sum_i w_i(x)`` by a loop over patches and pixels.

    ``window`` has shape patch_size or patch_size + (n_channels,); None is uniform.
    Uncovered pixels are NaN.
    """
    n_spatial = len(spatial_shape)
    had_channels = np.ndim(patches) == n_spatial + 2
    patches = _as_channels_last_patches(patches, n_spatial)
    n_channels = patches.shape[-1]
    patch_size = patches.shape[1:-1]
    window = np.ones(patch_size) if window is None else np.asarray(window, float)
    if window.ndim == n_spatial:
        window = window[..., np.newaxis]
    window = np.broadcast_to(window, (*patch_size, n_channels))
    num = np.zeros((*spatial_shape, n_channels))
    den = np.zeros((*spatial_shape, n_channels))
    for pixel, hits in _covering_values(patches, spatial_shape, origins).items():
        for i, pos in hits:
            num[pixel] += window[pos] * patches[(i, *pos)]
            den[pixel] += window[pos]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return _finish(out, channel_axis, had_channels)


def reference_median(patches, spatial_shape, origins, channel_axis=None):
    """Per pixel, ``np.median`` of the values of every patch covering it."""
    n_spatial = len(spatial_shape)
    had_channels = np.ndim(patches) == n_spatial + 2
    patches = _as_channels_last_patches(patches, n_spatial)
    out = np.full((*spatial_shape, patches.shape[-1]), np.nan)
    for pixel, hits in _covering_values(patches, spatial_shape, origins).items():
        out[pixel] = np.median([patches[(i, *pos)] for i, pos in hits], axis=0)
    return _finish(out, channel_axis, had_channels)


def reference_mode(patches, spatial_shape, origins, channel_axis=None):
    """Per pixel, the most frequent value of the patches covering it, smallest on ties.

    Uncovered pixels are 0; the result has the dtype of ``patches``.
    """
    patches = np.asarray(patches)
    n_spatial = len(spatial_shape)
    had_channels = patches.ndim == n_spatial + 2
    if not had_channels:
        patches = patches[..., np.newaxis]
    out = np.zeros((*spatial_shape, patches.shape[-1]), dtype=patches.dtype)
    for pixel, hits in _covering_values(patches, spatial_shape, origins).items():
        for c in range(patches.shape[-1]):
            votes = {}
            for i, pos in hits:
                label = patches[(i, *pos, c)].item()
                votes[label] = votes.get(label, 0) + 1
            out[(*pixel, c)] = min(votes, key=lambda label: (-votes[label], label))
    return _finish(out, channel_axis, had_channels)


def reference_coverage(spatial_shape, patch_size, origins):
    """How many patches cover each pixel."""
    count = np.zeros(spatial_shape)
    for origin in origins:
        for pos in np.ndindex(*patch_size):
            pixel = tuple(int(o) + k for o, k in zip(origin, pos, strict=True))
            if all(0 <= x < s for x, s in zip(pixel, spatial_shape, strict=True)):
                count[pixel] += 1
    return count


def mentions(*parts):
    """A ``match=`` pattern requiring every part, literally and in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(str(part))})" for part in parts)


def make_image(shape, dtype=np.float64, seed=0):
    """A random image with values that differ from pixel to pixel."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "u" or dtype.kind == "i":
        return rng.integers(0, 256, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    # Values in [1, 2) keep relative round-off meaningful.
    return (1.0 + rng.random(shape)).astype(dtype)


@st.composite
def geometries(draw, *, max_ndim=3, policies=EDGE_POLICIES, max_step=None,
               channels=True, min_ndim=1):
    """Draw an image shape with a patch size, step, offset, edge policy, channels.

    ``max_step=None`` allows steps up to ``patch + 2`` (so uncovered pixels occur);
    ``max_step='patch'`` keeps ``step <= patch``.
    """
    ndim = draw(st.integers(min_ndim, max_ndim))
    padding = draw(st.sampled_from(policies))
    shape, patch, step, offset = [], [], [], []
    for _ in range(ndim):
        size = draw(st.integers(1, MAX_AXIS_SIZE[ndim]))
        p = draw(st.integers(1, size))
        top_step = p if max_step == "patch" else p + 2
        s = draw(st.integers(1, top_step))
        canvas = size + 2 * (p - 1) if padding in PAD_MODES else size
        o = draw(st.integers(0, min(canvas - p, s - 1)))
        shape.append(size)
        patch.append(p)
        step.append(s)
        offset.append(o)
    n_channels = channel_axis = None
    if channels and draw(st.booleans()):
        n_channels = draw(st.integers(1, 3))
        channel_axis = draw(st.sampled_from([0, -1]))
    return Geometry(tuple(shape), tuple(patch), tuple(step), tuple(offset), padding,
                    n_channels, channel_axis)


def sklearn_miscounts_spanning_patches(image_shape, patch_size):
    """Whether this scikit-learn's reconstruct_from_patches_2d fails on a shape.

    Before scikit-learn 1.9 it divides by the wrong overlap count when a patch
    spans a whole axis of the image (scikit-learn issue #10910), so it is no
    reference for those shapes.
    """
    import sklearn
    from sklearn.utils.fixes import parse_version

    if parse_version(sklearn.__version__) >= parse_version("1.9"):
        return False
    return any(p == s > 1 for p, s in zip(patch_size, image_shape, strict=False))


@pytest.fixture(scope="session")
def reference():
    """Independent pure-Python references for the geometry and the aggregation."""
    return SimpleNamespace(
        axis_origins=reference_axis_origins,
        origins=reference_origins,
        extract=reference_extract,
        reconstruct=reference_reconstruct,
        median=reference_median,
        mode=reference_mode,
        coverage=reference_coverage,
        mentions=mentions,
        make_image=make_image,
        sklearn_miscounts=sklearn_miscounts_spanning_patches,
        geometries=geometries,
        Geometry=Geometry,
        PAD_MODES=PAD_MODES,
        EDGE_POLICIES=EDGE_POLICIES,
        prod=math.prod,
    )


@pytest.fixture
def gray_image():
    """A 9x11 float64 grey image."""
    return make_image((9, 11), seed=1)


@pytest.fixture
def rgb_image():
    """A 9x11x3 float64 colour image, channels last."""
    return make_image((9, 11, 3), seed=2)


@pytest.fixture
def volume():
    """A 5x6x7 float64 volume."""
    return make_image((5, 6, 7), seed=3)


@pytest.fixture
def signal():
    """A 1-D float64 signal of length 17."""
    return make_image((17,), seed=4)


@pytest.fixture
def rng():
    """A seeded generator for test-local randomness."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def dask_client():
    """A real distributed cluster: 2 worker processes on loopback, no dashboard.

    Started once per session; its client is not made the default scheduler, so
    tests pick it explicitly (``scheduler=dask_client``).
    """
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client
