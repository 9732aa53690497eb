"""Tests for iter_patches, PatchAccumulator and the MemoryError guard."""

import math
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skpatch import (
    PatchAccumulator,
    extract_patches,
    iter_patches,
    reconstruct_from_patches,
)

NAMED_WINDOWS = ["uniform", "gaussian", "hann", "triangular", ("gaussian", 0.6)]


@pytest.fixture
def limit_memory(monkeypatch):
    """Make skpatch believe only ``n_bytes`` of memory are available."""

    def limit(n_bytes):
        patched = 0
        for name, module in list(sys.modules.items()):
            if name.startswith("skpatch") and hasattr(module, "available_memory"):
                monkeypatch.setattr(module, "available_memory", lambda: n_bytes)
                patched += 1
        assert patched, "skpatch exposes no available_memory function to patch"

    return limit


def _concatenate(batches):
    batches = list(batches)
    patches = np.concatenate([patches for patches, _ in batches])
    origins = np.concatenate([origins for _, origins in batches])
    return patches, origins, [len(patches) for patches, _ in batches]


# --- iter_patches ------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_iter_patches_concatenates_to_extract_patches(data, reference):
    """Check that concatenated batches equal extract_patches(return_origins=True)."""
    geom = data.draw(reference.geometries())
    image = reference.make_image(geom.image_shape,
                                 seed=data.draw(st.integers(0, 2**16), label="seed"))
    expected, expected_origins = extract_patches(image, geom.patch_size, **geom.kwargs,
                                                 return_origins=True)
    batch_size = data.draw(st.one_of(st.none(), st.integers(1, len(expected) + 3)),
                           label="batch_size")
    patches, origins, sizes = _concatenate(
        iter_patches(image, geom.patch_size, **geom.kwargs, batch_size=batch_size)
    )
    np.testing.assert_array_equal(patches, expected)
    np.testing.assert_array_equal(origins, expected_origins)
    assert patches.dtype == image.dtype
    assert min(sizes) >= 1
    if batch_size is not None:
        assert max(sizes) <= batch_size
        assert len(sizes) == math.ceil(len(expected) / batch_size)


@pytest.mark.parametrize("batch_size", [1, 7, 10, 11, 63, 64, 1000])
def test_iter_patches_batch_sizes_that_do_not_divide(batch_size, gray_image):
    """Check batch sizes that do not divide n_patches (63 here) lose nothing."""
    expected = extract_patches(gray_image, 3)
    assert len(expected) == 63
    patches, _, sizes = _concatenate(iter_patches(gray_image, 3, batch_size=batch_size))
    assert sum(sizes) == 63
    assert all(size == batch_size for size in sizes[:-1])
    np.testing.assert_array_equal(patches, expected)


def test_iter_patches_is_lazy(gray_image):
    """Check that iter_patches returns an iterator that yields batches one by one."""
    batches = iter_patches(gray_image, 3, batch_size=5)
    assert iter(batches) is batches
    first_patches, first_origins = next(batches)
    assert first_patches.shape == (5, 3, 3)
    assert first_origins.shape == (5, 2)


def test_iter_patches_does_not_mutate_image(rgb_image):
    """Check that streaming leaves the image unchanged."""
    before = rgb_image.copy()
    for patches, _ in iter_patches(rgb_image, 3, padding="reflect", channel_axis=-1,
                                   batch_size=4):
        patches[...] = 0
    np.testing.assert_array_equal(rgb_image, before)


@pytest.mark.parametrize("batch_size", [0, -3, 1.5, "10"])
def test_iter_patches_bad_batch_size_raises(batch_size, gray_image, reference):
    """Check that a batch_size that is not a positive int raises naming it."""
    with pytest.raises((ValueError, TypeError),
                       match=reference.mentions("batch_size", repr(batch_size))):
        list(iter_patches(gray_image, 3, batch_size=batch_size))


# --- PatchAccumulator --------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_accumulator_matches_reconstruct(data, reference):
    """Check that PatchAccumulator fed in batches equals reconstruct_from_patches."""
    geom = data.draw(reference.geometries())
    image = reference.make_image(geom.image_shape,
                                 seed=data.draw(st.integers(0, 2**16), label="seed"))
    weights = data.draw(st.sampled_from(NAMED_WINDOWS), label="weights")
    batch_size = data.draw(st.integers(1, 20), label="batch_size")
    accumulator = PatchAccumulator(image.shape, geom.patch_size, **geom.kwargs,
                                   weights=weights)
    for patches, origins in iter_patches(image, geom.patch_size, **geom.kwargs,
                                         batch_size=batch_size):
        accumulator.add(2.0 * patches, origins)
    patches = extract_patches(image, geom.patch_size, **geom.kwargs)
    expected, weight_sum = reconstruct_from_patches(2.0 * patches, image.shape,
                                                    **geom.kwargs, weights=weights,
                                                    return_weights=True)
    np.testing.assert_allclose(accumulator.result(), expected, rtol=1e-12)
    np.testing.assert_allclose(accumulator.weight_sum, weight_sum, rtol=1e-12)


@pytest.mark.parametrize("weights", ["uniform", "hann", "weight array"])
def test_accumulator_with_user_weights_and_any_batch_order(weights, rgb_image, rng):
    """Check that batches added in any order give the one-shot reconstruction."""
    if weights == "weight array":
        weights = rng.uniform(0.2, 1.0, (4, 3))
    kwargs = {"step": (2, 3), "padding": "symmetric", "channel_axis": -1}
    batches = list(iter_patches(rgb_image, (4, 3), **kwargs, batch_size=6))
    accumulator = PatchAccumulator(rgb_image.shape, (4, 3), **kwargs, weights=weights)
    for index in rng.permutation(len(batches)):
        accumulator.add(*batches[index])
    patches = extract_patches(rgb_image, (4, 3), **kwargs)
    expected = reconstruct_from_patches(patches, rgb_image.shape, **kwargs,
                                        weights=weights)
    np.testing.assert_allclose(accumulator.result(), expected, rtol=1e-12)
    np.testing.assert_allclose(accumulator.result(), rgb_image, rtol=1e-12)


def test_accumulator_result_fill_value(reference):
    """Check that result(fill_value=...) fills exactly the uncovered pixels."""
    image = reference.make_image((7, 7), seed=4)
    accumulator = PatchAccumulator(image.shape, 2, step=3, padding="valid")
    for batch in iter_patches(image, 2, step=3, padding="valid", batch_size=2):
        accumulator.add(*batch)
    filled = accumulator.result(fill_value=-1.0)
    covered = np.zeros((7, 7), dtype=bool)
    covered[np.ix_([0, 1, 3, 4], [0, 1, 3, 4])] = True
    np.testing.assert_array_equal(filled[~covered], -1.0)
    np.testing.assert_allclose(filled[covered], image[covered], rtol=1e-12)
    assert np.isnan(accumulator.result()[~covered]).all()
    with pytest.raises(ValueError, match="cover"):
        accumulator.result(fill_value=None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accumulator_preserves_float_dtype(dtype, reference):
    """Check that float32 batches give a float32 image, as reconstruct does."""
    image = reference.make_image((6, 8), dtype)
    accumulator = PatchAccumulator(image.shape, 3, step=2)
    for batch in iter_patches(image, 3, step=2, batch_size=5):
        accumulator.add(*batch)
    result = accumulator.result()
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_allclose(result, image, rtol=1e-6)


def test_accumulator_accepts_dtype_argument(reference):
    """Check that the dtype=float64 argument of the contract is accepted."""
    image = reference.make_image((6, 8))
    accumulator = PatchAccumulator(image.shape, 3, step=2, dtype=np.float64)
    for batch in iter_patches(image, 3, step=2, batch_size=5):
        accumulator.add(*batch)
    np.testing.assert_allclose(accumulator.result(), image, rtol=1e-12)


@pytest.mark.parametrize(("patch_dtype", "dtype"), [(np.float64, np.float32),
                                                     (np.float32, np.float64),
                                                     (np.uint8, np.float32)])
def test_accumulator_dtype_sets_the_result_dtype(patch_dtype, dtype, reference):
    """Check that dtype= overrides the dtype that the patches would give."""
    image = reference.make_image((6, 8), patch_dtype)
    accumulator = PatchAccumulator(image.shape, 3, step=2, dtype=dtype)
    for batch in iter_patches(image, 3, step=2, batch_size=5):
        accumulator.add(*batch)
    result = accumulator.result()
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_allclose(result, image, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.complex128, "float16"])
def test_accumulator_rejects_non_float_dtype(dtype, reference):
    """Check that a result dtype other than float32/float64 is refused by name."""
    with pytest.raises(ValueError, match=reference.mentions(
            "float32 or float64", str(np.dtype(dtype)))):
        PatchAccumulator((6, 8), 3, dtype=dtype)


def test_accumulator_rejects_mismatched_batches(gray_image, reference):
    """Check that batches of the wrong patch shape or out-of-range origins raise."""
    accumulator = PatchAccumulator(gray_image.shape, 3)
    with pytest.raises(ValueError, match=reference.mentions("(3, 3)", "(2, 4, 4)")):
        accumulator.add(np.ones((2, 4, 4)), np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match=reference.mentions("origin", "(7, 0)")):
        accumulator.add(np.ones((1, 3, 3)), np.array([[7, 0]]))


def test_streaming_peak_memory_is_below_the_patch_matrix(reference):
    """Check that iter_patches + PatchAccumulator never hold the full patch matrix."""
    image = reference.make_image((200, 200), seed=1)
    patch_matrix_bytes = 93**2 * 16**2 * 8  # step 2, patch 16: 93 x 93 patches
    tracemalloc.start()
    try:
        accumulator = PatchAccumulator(image.shape, 16, step=2, weights="hann")
        for batch in iter_patches(image, 16, step=2, batch_size=256):
            accumulator.add(*batch)
        result = accumulator.result()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(result, image, rtol=1e-12)
    assert peak < patch_matrix_bytes / 3


# --- MemoryError -------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "patch_size", "channel_axis", "dtype"), [
    ((200, 200), 16, None, np.float64),
    ((120, 3, 90), (10, 12), 1, np.float32),
    ((40, 40, 40), 8, None, np.uint8),
])
def test_memory_error_before_allocating(shape, patch_size, channel_axis, dtype,
                                        limit_memory, reference):
    """Check that MemoryError names the size and iter_patches before allocating."""
    image = reference.make_image(shape, dtype)
    spatial = list(shape)
    n_channels = 1 if channel_axis is None else spatial.pop(channel_axis)
    patch = (patch_size,) * len(spatial) if isinstance(patch_size, int) else patch_size
    n_patches = math.prod(s - p + 1 for s, p in zip(spatial, patch, strict=True))
    n_bytes = n_patches * math.prod(patch) * n_channels * np.dtype(dtype).itemsize
    limit_memory(n_bytes // 100)
    gib = n_bytes / 2**30
    size_pattern = rf"({n_bytes}|{gib:.2f} ?GiB|{gib:.1f} ?GiB)"
    tracemalloc.start()
    try:
        match = rf"(?s)(?=.*iter_patches)(?=.*{size_pattern})"
        with pytest.raises(MemoryError, match=match):
            extract_patches(image, patch_size, channel_axis=channel_axis)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n_bytes / 10


def test_iter_patches_works_where_extract_patches_would_not_fit(limit_memory,
                                                                reference):
    """Check that streaming still works under a memory limit the full matrix exceeds."""
    image = reference.make_image((64, 64), seed=2)
    n_bytes = 57**2 * 8**2 * 8
    limit_memory(n_bytes // 4)
    with pytest.raises(MemoryError, match="iter_patches"):
        extract_patches(image, 8)
    accumulator = PatchAccumulator(image.shape, 8)
    for batch in iter_patches(image, 8, batch_size=100):
        accumulator.add(*batch)
    np.testing.assert_allclose(accumulator.result(), image, rtol=1e-12)
    subset = extract_patches(image, 8, max_patches=10, random_state=0)
    assert len(subset) == 10


def test_no_memory_error_when_the_matrix_fits(limit_memory, gray_image):
    """Check that the guard does not fire when the patch matrix fits."""
    n_bytes = 63 * 9 * 8
    limit_memory(100 * n_bytes)
    assert extract_patches(gray_image, 3).nbytes == n_bytes
