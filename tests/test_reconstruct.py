"""Tests for reconstruct_from_patches: round trips, references, subsets and errors."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.image import reconstruct_from_patches_2d

import skpatch._reconstruct as reconstruct_module
from skpatch import PatchGrid, extract_patches, patch_window, reconstruct_from_patches

PAD_MODES = ("reflect", "symmetric", "edge", "constant", "wrap")
NAMED_WINDOWS = ["uniform", "gaussian", "hann", "triangular", ("gaussian", 0.6)]
RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}


def _rtol(dtype):
    return RTOL.get(np.dtype(dtype), 1e-12)


def _expected_dtype(dtype):
    return np.dtype(dtype) if np.dtype(dtype) in RTOL else np.dtype(np.float64)


def _spatial_mask(mask, geom):
    """Broadcast a spatial mask to the image shape (channels inserted)."""
    if geom.channel_axis is None:
        return mask
    mask = np.expand_dims(mask, geom.channel_axis % (mask.ndim + 1))
    return np.broadcast_to(mask, geom.image_shape)


def _random_patches(rng, n_patches, patch_size, n_channels=None):
    channels = () if n_channels is None else (n_channels,)
    return 1.0 + rng.random((n_patches, *patch_size, *channels))


def _draw_window(data, patch_size, n_channels=None):
    choice = data.draw(st.sampled_from([*NAMED_WINDOWS, "array", "channel array"]),
                       label="weights")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="weight seed"))
    if choice == "array":
        return rng.uniform(0.1, 2.0, patch_size)
    if choice == "channel array":
        channels = () if n_channels is None else (n_channels,)
        return rng.uniform(0.1, 2.0, (*patch_size, *channels))
    return choice


def _window_array(weights, patch_size):
    if isinstance(weights, np.ndarray):
        return weights
    return patch_window(weights, patch_size)


# --- exact round trips -------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_round_trip_is_exact_on_covered_pixels(data, reference):
    """Check that reconstruct(extract(x)) is x where covered and NaN elsewhere."""
    geom = data.draw(reference.geometries())
    dtype = data.draw(st.sampled_from([np.float64, np.float32, np.uint8]),
                      label="dtype")
    image = reference.make_image(geom.image_shape, dtype,
                                 data.draw(st.integers(0, 2**16), label="seed"))
    patches = extract_patches(image, geom.patch_size, **geom.kwargs)
    rebuilt, weight_sum = reconstruct_from_patches(patches, image.shape, **geom.kwargs,
                                                   return_weights=True)
    assert rebuilt.shape == image.shape
    assert rebuilt.dtype == _expected_dtype(dtype)
    coverage = reference.coverage(geom.spatial_shape, geom.patch_size,
                                  reference.origins(geom))
    np.testing.assert_allclose(weight_sum, coverage, rtol=1e-12)
    covered = _spatial_mask(coverage > 0, geom)
    np.testing.assert_allclose(rebuilt[covered], image[covered].astype(rebuilt.dtype),
                               rtol=_rtol(dtype))
    assert np.isnan(rebuilt[~covered]).all()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_snap_and_pad_round_trip_covers_everything(data, reference):
    """Check the exact round trip, with fill_value=None, for snap and pad modes."""
    policies = (None, *PAD_MODES)
    geom = data.draw(reference.geometries(policies=policies, max_step="patch"))
    weights = data.draw(st.sampled_from(NAMED_WINDOWS), label="weights")
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    image = reference.make_image(geom.image_shape, dtype,
                                 data.draw(st.integers(0, 2**16), label="seed"))
    patches = extract_patches(image, geom.patch_size, **geom.kwargs)
    rebuilt = reconstruct_from_patches(patches, image.shape, **geom.kwargs,
                                       weights=weights, fill_value=None)
    assert rebuilt.dtype == image.dtype
    np.testing.assert_allclose(rebuilt, image, rtol=_rtol(dtype))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_uncovered_pixels_raise_with_fill_value_none(data, reference):
    """Check that fill_value=None raises naming the count when pixels are uncovered."""
    geom = data.draw(reference.geometries())
    coverage = reference.coverage(geom.spatial_shape, geom.patch_size,
                                  reference.origins(geom))
    assume(coverage.min() == 0)
    image = reference.make_image(geom.image_shape)
    patches = extract_patches(image, geom.patch_size, **geom.kwargs)
    n_uncovered = int((coverage == 0).sum())
    with pytest.raises(ValueError, match=rf"(?s)(?=.*\b{n_uncovered}\b)(?=.*cover)"):
        reconstruct_from_patches(patches, image.shape, **geom.kwargs, fill_value=None)
    filled = reconstruct_from_patches(patches, image.shape, **geom.kwargs,
                                      fill_value=-7.0)
    covered = _spatial_mask(coverage > 0, geom)
    np.testing.assert_array_equal(filled[~covered], -7.0)
    np.testing.assert_allclose(filled[covered], image[covered], rtol=1e-12)


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("channel_axis", [None, 0, -1])
@pytest.mark.parametrize(("patch_size", "step"), [(3, 1), (4, 3), ((5, 2), (2, 2))])
def test_pad_mode_round_trip(mode, channel_axis, patch_size, step, reference):
    """Check the exact round trip for every numpy pad mode, with or without channels."""
    shape = {None: (7, 9), 0: (2, 7, 9), -1: (7, 9, 2)}[channel_axis]
    image = reference.make_image(shape, seed=5)
    kwargs = {"step": step, "padding": mode, "channel_axis": channel_axis}
    patches = extract_patches(image, patch_size, **kwargs)
    rebuilt = reconstruct_from_patches(patches, shape, **kwargs, fill_value=None)
    np.testing.assert_allclose(rebuilt, image, rtol=1e-12)


@pytest.mark.parametrize("weights",
                         ["hann", "triangular", "gaussian", ("gaussian", 0.1)])
@pytest.mark.parametrize("patch_size", [1, 2, 3, 4])
def test_non_overlapping_tiling_with_windows_is_exact(weights, patch_size, reference):
    """Check that a step == patch tiling with any window rebuilds every pixel."""
    image = reference.make_image((12, 8), seed=6)
    patches = extract_patches(image, patch_size, step=patch_size)
    rebuilt = reconstruct_from_patches(patches, image.shape, step=patch_size,
                                       weights=weights, fill_value=None)
    np.testing.assert_allclose(rebuilt, image, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.bool_, np.float16])
def test_integer_and_bool_patches_reconstruct_as_float64(dtype, reference):
    """Check that integer, bool and half patches give a float64 image, exactly."""
    image = reference.make_image((6, 7), dtype)
    patches = extract_patches(image, 3, step=2)
    rebuilt = reconstruct_from_patches(patches, image.shape, step=2)
    assert rebuilt.dtype == np.float64
    np.testing.assert_allclose(rebuilt, image.astype(np.float64), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("aggregate", ["mean", "median"])
def test_reconstruct_preserves_float_dtype(dtype, aggregate, reference):
    """Check that float32 patches give float32 and float64 give float64."""
    patches = _random_patches(np.random.default_rng(0), 16, (3, 3)).astype(dtype)
    rebuilt = reconstruct_from_patches(patches, (6, 6), aggregate=aggregate)
    assert rebuilt.dtype == np.dtype(dtype)


@pytest.mark.parametrize("aggregate", ["mean", "median"])
@pytest.mark.parametrize("with_origins", [False, True])
def test_reconstruct_does_not_mutate_patches(aggregate, with_origins, reference):
    """Check that patches and origins passed in are left unchanged."""
    patches, origins = extract_patches(reference.make_image((7, 8, 2)), 3, step=2,
                                       channel_axis=-1, return_origins=True)
    patches = patches.copy()
    before, origins_before = patches.copy(), origins.copy()
    reconstruct_from_patches(patches, (7, 8, 2), step=2, channel_axis=-1,
                             aggregate=aggregate,
                             origins=origins if with_origins else None)
    np.testing.assert_array_equal(patches, before)
    np.testing.assert_array_equal(origins, origins_before)


def test_reconstruct_output_is_a_fresh_array(reference):
    """Check that the rebuilt image does not alias the patches."""
    patches = extract_patches(reference.make_image((5, 5)), 5)
    rebuilt = reconstruct_from_patches(patches, (5, 5))
    assert not np.shares_memory(rebuilt, patches)


# --- brute-force references --------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_weighted_full_grid_matches_brute_force(data, reference):
    """Check sum(w p) / sum(w) against a loop, for disagreeing patches on any grid."""
    geom = data.draw(reference.geometries())
    origins = reference.origins(geom)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    patches = _random_patches(rng, len(origins), geom.patch_size, geom.n_channels)
    weights = _draw_window(data, geom.patch_size, geom.n_channels)
    image_shape = geom.image_shape
    rebuilt, weight_sum = reconstruct_from_patches(patches, image_shape, **geom.kwargs,
                                                   weights=weights, return_weights=True)
    window = _window_array(weights, geom.patch_size)
    expected = reference.reconstruct(patches, geom.spatial_shape, origins, window,
                                     geom.channel_axis)
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-12)
    if window.ndim == len(geom.patch_size):
        weight_map = _brute_weight_map(geom.spatial_shape, origins, window)
        np.testing.assert_allclose(weight_sum, weight_map, rtol=1e-12)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_full_grid_in_any_dtype_matches_brute_force(data, reference):
    """Check the full-grid mean merge against a loop, for float and integer patches.

    Patches that are not float32/float64 are converted a few at a time (here
    as few as one patch per block), never as a float64 copy of them all.
    """
    geom = data.draw(reference.geometries())
    block_values = data.draw(st.integers(1, 2**13), label="block_values")
    origins = reference.origins(geom)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    patches = _random_patches(rng, len(origins), geom.patch_size, geom.n_channels)
    dtype = data.draw(st.sampled_from([np.float64, np.float32, np.int16]))
    patches = (patches * 100).astype(dtype)
    weights = _draw_window(data, geom.patch_size, geom.n_channels)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconstruct_module, "CONVERT_BLOCK_VALUES", block_values)
        rebuilt = reconstruct_from_patches(patches, geom.image_shape, **geom.kwargs,
                                           weights=weights)
    expected = reference.reconstruct(patches.astype(np.float64), geom.spatial_shape,
                                     origins, _window_array(weights, geom.patch_size),
                                     geom.channel_axis)
    np.testing.assert_allclose(rebuilt, expected, rtol=_rtol(patches.dtype))


def _brute_weight_map(spatial_shape, origins, window):
    total = np.zeros(spatial_shape)
    for origin in origins:
        for pos in np.ndindex(*window.shape):
            pixel = tuple(int(o) + k for o, k in zip(origin, pos, strict=True))
            if all(0 <= x < s for x, s in zip(pixel, spatial_shape, strict=True)):
                total[pixel] += window[pos]
    return total


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_weighted_arbitrary_origins_match_brute_force(data, reference):
    """Check the weighted mean at arbitrary (repeated, unordered) origins vs a loop."""
    geom = data.draw(reference.geometries(policies=(None, "reflect", "constant")))
    lows = [1 - p if geom.padding else 0 for p in geom.patch_size]
    highs = [s - 1 if geom.padding else s - p
             for s, p in zip(geom.spatial_shape, geom.patch_size, strict=True)]
    n_patches = data.draw(st.integers(1, 12), label="n_patches")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    origins = np.stack([rng.integers(lo, hi + 1, n_patches)
                        for lo, hi in zip(lows, highs, strict=True)], axis=1)
    patches = _random_patches(rng, n_patches, geom.patch_size, geom.n_channels)
    weights = _draw_window(data, geom.patch_size, geom.n_channels)
    rebuilt = reconstruct_from_patches(patches, geom.image_shape, **geom.kwargs,
                                       origins=origins, weights=weights)
    expected = reference.reconstruct(patches, geom.spatial_shape, origins,
                                     _window_array(weights, geom.patch_size),
                                     geom.channel_axis)
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-12)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_median_matches_brute_force(data, reference):
    """Check aggregate='median' against np.median over the patches covering a pixel."""
    geom = data.draw(reference.geometries(max_ndim=2))
    origins = reference.origins(geom)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    channels = () if geom.n_channels is None else (geom.n_channels,)
    # Few distinct values, so ties and even counts both occur.
    patches = rng.integers(0, 5, (len(origins), *geom.patch_size, *channels)) * 0.5
    use_origins = data.draw(st.booleans(), label="pass origins")
    rebuilt, weight_sum = reconstruct_from_patches(
        patches, geom.image_shape, **geom.kwargs, aggregate="median",
        origins=origins if use_origins else None, return_weights=True,
    )
    expected = reference.median(patches, geom.spatial_shape, origins, geom.channel_axis)
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-12)
    np.testing.assert_array_equal(
        weight_sum, reference.coverage(geom.spatial_shape, geom.patch_size, origins))


def test_median_ignores_an_outlier_patch(reference):
    """Check that one wild patch does not move the median where 3+ patches agree."""
    image = reference.make_image((6, 6), seed=11)
    patches = extract_patches(image, 3)
    patches[10] = 1e6
    rebuilt = reconstruct_from_patches(patches, image.shape, aggregate="median")
    coverage = reference.coverage((6, 6), (3, 3), reference.origins(
        reference.Geometry((6, 6), (3, 3), (1, 1), (0, 0), None)))
    robust = coverage >= 3
    np.testing.assert_allclose(rebuilt[robust], image[robust], rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_mode_matches_brute_force_vote(data, reference):
    """Check aggregate='mode' against a vote over the patches covering each pixel.

    Few distinct labels make ties common (the smallest label wins); labels may be
    negative or beyond 32 bits; patches come as the full grid or as an unordered
    subset with repeats given by their origins.
    """
    geom = data.draw(reference.geometries(max_ndim=3, max_step="patch"))
    dtype = np.dtype(data.draw(st.sampled_from(["uint8", "int8", "int64", "bool"])))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    origins = reference.origins(geom)
    if data.draw(st.booleans(), label="subset"):
        picks = rng.integers(0, len(origins), rng.integers(1, 2 * len(origins)))
        origins = origins[picks]
    channels = () if geom.n_channels is None else (geom.n_channels,)
    labels = rng.integers(0, 3, (len(origins), *geom.patch_size, *channels))
    if dtype == np.bool_:
        patches = labels > 0
    elif dtype == np.int64:
        patches = (labels - 1) * 2**40
    else:
        patches = (labels * 7 - 3 * (dtype == np.int8)).astype(dtype)
    coverage = reference.coverage(geom.spatial_shape, geom.patch_size, origins)
    rebuilt, weight_sum = reconstruct_from_patches(
        patches, geom.image_shape, **geom.kwargs, origins=origins, aggregate="mode",
        fill_value=0, return_weights=True,
    )
    expected = reference.mode(patches, geom.spatial_shape, origins, geom.channel_axis)
    assert rebuilt.dtype == dtype
    np.testing.assert_array_equal(rebuilt, expected)
    np.testing.assert_array_equal(weight_sum, coverage)


def test_mode_breaks_ties_towards_the_smallest_label():
    """Check that a pixel with equally many votes for two labels gets the smaller."""
    patches = np.array([[5, 5], [2, 2], [9, 9], [2, 9]], dtype=np.int16)
    origins = [[0], [0], [1], [2]]
    # pixel 0: 5, 2 -> 2; pixel 1: 5, 2, 9 -> 2; pixel 2: 9, 2 -> 2; pixel 3: 9 -> 9
    rebuilt = reconstruct_from_patches(patches, (4,), origins=origins, aggregate="mode")
    np.testing.assert_array_equal(rebuilt, np.array([2, 2, 2, 9], dtype=np.int16))


@pytest.mark.parametrize("channels", [(), (3,)])
def test_label_round_trip_keeps_the_labels(channels, reference):
    """Check that extracting a label volume and merging it by its mode gives it back."""
    labels = reference.make_image((9, 10, 11, *channels), np.uint8, seed=3) // 64
    kwargs = {"step": (2, 3, 1), "channel_axis": -1 if channels else None}
    patches = extract_patches(labels, (4, 3, 5), **kwargs)
    rebuilt = reconstruct_from_patches(patches, labels.shape, **kwargs,
                                       aggregate="mode")
    assert rebuilt.dtype == np.uint8
    np.testing.assert_array_equal(rebuilt, labels)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_median_and_mode_in_many_bands_match_brute_force(data, reference):
    """Check the median and the mode when the canvas is split into bands of few values.

    The merges sort values out a band of canvas rows at a time; bands of one
    value up to the whole canvas, with patches in grid order or unordered.
    """
    geom = data.draw(reference.geometries(max_ndim=3))
    band_values = data.draw(st.integers(1, 64), label="band_values")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    origins = reference.origins(geom)
    if data.draw(st.booleans(), label="shuffled"):
        origins = rng.permutation(origins)
    channels = () if geom.n_channels is None else (geom.n_channels,)
    labels = rng.integers(-2, 3, (len(origins), *geom.patch_size, *channels))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconstruct_module, "BAND_VALUES", band_values)
        median = reconstruct_from_patches(labels * 0.25, geom.image_shape,
                                          **geom.kwargs, origins=origins,
                                          aggregate="median")
        mode = reconstruct_from_patches(labels, geom.image_shape, **geom.kwargs,
                                        origins=origins, aggregate="mode", fill_value=0)
    np.testing.assert_allclose(
        median, reference.median(labels * 0.25, geom.spatial_shape, origins,
                                 geom.channel_axis), rtol=1e-12)
    np.testing.assert_array_equal(
        mode, reference.mode(labels, geom.spatial_shape, origins, geom.channel_axis))


@pytest.mark.parametrize("aggregate", ["median", "mode"])
def test_median_and_mode_with_a_band_no_patch_reaches(aggregate):
    """Check a band of canvas rows holding no patch value (an empty band's lists)."""
    patches = np.array([[[3]]])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconstruct_module, "BAND_VALUES", 1)
        rebuilt = reconstruct_from_patches(patches, (2, 1), step=(2, 1), offset=(1, 0),
                                           padding="valid", aggregate=aggregate,
                                           fill_value=-1)
    np.testing.assert_array_equal(rebuilt, [[-1], [3]])


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_median_reads_any_dtype(dtype, reference):
    """Check the median of integer and float32 patches against np.median per pixel."""
    geom = reference.Geometry((7, 9), (3, 4), (2, 1), (0, 0), None)
    origins = reference.origins(geom)
    rng = np.random.default_rng(5)
    patches = rng.integers(0, 200, (len(origins), 3, 4)).astype(dtype)
    rebuilt = reconstruct_from_patches(patches, (7, 9), step=(2, 1), aggregate="median")
    expected = reference.median(patches, (7, 9), origins)
    assert rebuilt.dtype == (np.float32 if dtype == np.float32 else np.float64)
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-6)


@pytest.mark.parametrize("weights", ["uniform", "hann", "array"])
@pytest.mark.parametrize("use_origins", [False, True])
def test_float32_patches_are_summed_as_float64(weights, use_origins, reference):
    """Check that float32 patches give exactly the float64 path's image, cast."""
    geom = reference.Geometry((21, 17), (5, 4), (2, 3), (1, 0), "reflect", 2, -1)
    rng = np.random.default_rng(2)
    origins = reference.origins(geom)
    patches = rng.random((len(origins), 5, 4, 2)).astype(np.float32)
    if weights == "array":
        weights = rng.uniform(0.5, 2, (5, 4))
    kwargs = {**geom.kwargs, "weights": weights,
              "origins": origins if use_origins else None}
    single = reconstruct_from_patches(patches, geom.image_shape, **kwargs)
    double = reconstruct_from_patches(patches.astype(np.float64), geom.image_shape,
                                      **kwargs)
    assert single.dtype == np.float32
    np.testing.assert_array_equal(single, double.astype(np.float32))


def test_kernels_run_in_several_threads_at_once(reference):
    """Check that extraction and every merge give the same results from 4 threads."""
    from concurrent.futures import ThreadPoolExecutor

    images = [reference.make_image((60 + k, 50), seed=k) for k in range(8)]

    def work(image):
        patches = extract_patches(image, 7, step=2)
        labels = (patches * 4).astype(np.int32)
        return [
            patches,
            reconstruct_from_patches(patches, image.shape, step=2, weights="hann"),
            reconstruct_from_patches(patches, image.shape, step=2, aggregate="median"),
            reconstruct_from_patches(labels, image.shape, step=2, aggregate="mode"),
        ]

    alone = [work(image) for image in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(work, images * 3))
    for k, results in enumerate(together):
        for got, expected in zip(results, alone[k % len(images)], strict=True):
            np.testing.assert_array_equal(got, expected)


# --- independent libraries ---------------------------------------------------------


@pytest.mark.parametrize(("shape", "patch_size"), [
    ((9, 11), (3, 3)), ((6, 6), (1, 1)), ((7, 5), (7, 2)), ((8, 8), (4, 5)),
    ((8, 8, 3), (3, 2)), ((6, 7, 4), (2, 2)),
])
def test_reconstruct_matches_sklearn(shape, patch_size, reference):
    """Check agreement with sklearn's reconstruct_from_patches_2d (step 1)."""
    if reference.sklearn_miscounts(shape, patch_size):
        pytest.skip("this scikit-learn miscounts patches spanning an axis (#10910)")
    rng = np.random.default_rng(13)
    n_patches = (shape[0] - patch_size[0] + 1) * (shape[1] - patch_size[1] + 1)
    patches = rng.random((n_patches, *patch_size, *shape[2:]))
    expected = reconstruct_from_patches_2d(patches, shape)
    channel_axis = -1 if len(shape) == 3 else None
    rebuilt = reconstruct_from_patches(patches, shape, channel_axis=channel_axis)
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-12)


@pytest.mark.parametrize(("patch_size", "step"), [
    ((3, 3), (2, 2)), ((5, 3), (4, 4)), ((1, 1), (1, 1)), ((3, 5), (3, 3)),
    ((2, 2), (1, 3)), ((1, 2), (2, 3)),
])
@pytest.mark.parametrize("n_channels", [1, 3])
def test_reconstruct_matches_torch_fold(patch_size, step, n_channels):
    """Check agreement with fold(x) / fold(ones) on a 'valid' grid, gaps included."""
    torch = pytest.importorskip("torch")
    shape = (9, 11)
    assert all((s - p) % t == 0
               for s, p, t in zip(shape, patch_size, step, strict=True))
    grid = PatchGrid(shape, patch_size, step=step, padding="valid")
    rng = np.random.default_rng(17)
    patches = rng.random((grid.n_patches, *patch_size, n_channels))
    columns = torch.from_numpy(patches).permute(3, 1, 2, 0)
    columns = columns.reshape(1, -1, grid.n_patches)
    fold = torch.nn.Fold(output_size=shape, kernel_size=patch_size, stride=step)
    expected = (fold(columns) / fold(torch.ones_like(columns)))[0].permute(1, 2, 0)
    rebuilt = reconstruct_from_patches(patches, (*shape, n_channels), step=step,
                                       padding="valid", channel_axis=-1)
    np.testing.assert_allclose(rebuilt, expected.numpy(), rtol=1e-12)


# --- subsets -----------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_subset_round_trip(data, reference):
    """Check a max_patches subset rebuilt with origins=: exact if covered, else NaN."""
    geom = data.draw(reference.geometries())
    image = reference.make_image(geom.image_shape,
                                 seed=data.draw(st.integers(0, 2**16), label="seed"))
    n_total = len(reference.origins(geom))
    max_patches = data.draw(st.integers(1, n_total), label="max_patches")
    patches, origins = extract_patches(image, geom.patch_size, **geom.kwargs,
                                       max_patches=max_patches, random_state=0,
                                       return_origins=True)
    rebuilt, weight_sum = reconstruct_from_patches(patches, image.shape, **geom.kwargs,
                                                   origins=origins, return_weights=True)
    coverage = reference.coverage(geom.spatial_shape, geom.patch_size, origins)
    np.testing.assert_array_equal(weight_sum, coverage)
    covered = _spatial_mask(coverage > 0, geom)
    np.testing.assert_allclose(rebuilt[covered], image[covered], rtol=1e-12)
    assert np.isnan(rebuilt[~covered]).all()


@pytest.mark.parametrize("padding", [None, "valid", "wrap"])
def test_full_grid_in_any_order_via_origins(padding, rgb_image):
    """Check that shuffled patches with their origins rebuild like the ordered grid."""
    kwargs = {"step": 2, "padding": padding, "channel_axis": -1}
    patches, origins = extract_patches(rgb_image, 3, **kwargs, return_origins=True)
    order = np.random.default_rng(3).permutation(len(patches))
    expected = reconstruct_from_patches(patches, rgb_image.shape, **kwargs,
                                        weights="hann")
    shuffled = reconstruct_from_patches(patches[order], rgb_image.shape, **kwargs,
                                        origins=origins[order], weights="hann")
    np.testing.assert_allclose(shuffled, expected, rtol=1e-12)


def test_uniform_weight_map_counts_coverage_by_hand():
    """Check return_weights on a 1-D case counted by hand."""
    patches = np.ones((3, 3))
    _, weight_sum = reconstruct_from_patches(patches, (7,), step=2, return_weights=True)
    # Origins 0, 2, 4 cover 0-2, 2-4, 4-6.
    np.testing.assert_array_equal(weight_sum, [1, 1, 2, 1, 2, 1, 1])


def test_weight_map_has_spatial_shape_with_channels(rgb_image):
    """Check that the weight map drops the channel axis."""
    image = np.moveaxis(rgb_image, -1, 0)
    patches = extract_patches(image, 3, step=2, channel_axis=0)
    rebuilt, weight_sum = reconstruct_from_patches(patches, image.shape, step=2,
                                                   channel_axis=0, return_weights=True)
    assert rebuilt.shape == image.shape
    assert weight_sum.shape == rgb_image.shape[:2]


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("aggregate", ["mean", "median"])
def test_non_finite_patches_raise(bad, aggregate, gray_image):
    """Check that NaN or inf in the patches raises a ValueError."""
    patches = extract_patches(gray_image, 3, step=2)
    patches[1, 1, 1] = bad
    with pytest.raises(ValueError, match=r"(?i)nan|inf|finite"):
        reconstruct_from_patches(patches, gray_image.shape, step=2, aggregate=aggregate)


@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_patch_count_raises(delta, gray_image, reference):
    """Check that a patch count not matching the grid names both counts and origins=."""
    patches = extract_patches(gray_image, 3, step=2)
    n_patches = len(patches)
    bad = np.concatenate([patches, patches[:1]]) if delta > 0 else patches[:-1]
    with pytest.raises(ValueError, match=reference.mentions(
            str(n_patches), str(n_patches + delta), "origins=")):
        reconstruct_from_patches(bad, gray_image.shape, step=2)


@pytest.mark.parametrize(("patch_shape", "image_shape", "channel_axis", "parts"), [
    ((4, 3, 3, 3), (9, 11), None, ["(9, 11)", "(4, 3, 3, 3)"]),
    ((4, 3), (9, 11), None, ["(9, 11)", "(4, 3)"]),
    ((4, 3, 3, 2), (9, 11, 3), -1, ["3", "(4, 3, 3, 2)"]),
    ((4, 3, 3, 2), (3, 9, 11), 0, ["3", "(4, 3, 3, 2)"]),
    ((4, 12, 3), (9, 11), None, ["(12, 3)", "(9, 11)"]),
])
def test_inconsistent_patch_shape_raises(patch_shape, image_shape, channel_axis, parts,
                                         reference):
    """Check that patches whose shape cannot fit image_shape raise naming both."""
    with pytest.raises(ValueError, match=reference.mentions(*parts)):
        reconstruct_from_patches(np.ones(patch_shape), image_shape,
                                 channel_axis=channel_axis)


@pytest.mark.parametrize(("weights", "parts"), [
    (np.ones((3, 2)), ["(3, 2)", "(3, 3)"]),
    (np.ones((3, 3, 2)), ["(3, 3, 2)", "(3, 3)"]),
    (np.ones(9), ["(9,)", "(3, 3)"]),
])
def test_weights_of_wrong_shape_raise(weights, parts, gray_image, reference):
    """Check that a weight array of the wrong shape raises naming both shapes."""
    patches = extract_patches(gray_image, 3)
    with pytest.raises(ValueError, match=reference.mentions("weights", *parts)):
        reconstruct_from_patches(patches, gray_image.shape, weights=weights)


@pytest.mark.parametrize(("bad", "shown"), [(0.0, "0"), (-1.0, "-1"), (np.nan, ""),
                                            (np.inf, "")])
def test_non_positive_or_non_finite_weights_raise(bad, shown, gray_image, reference):
    """Check that weights with a value <= 0 or not finite raise a ValueError."""
    weights = np.ones((3, 3))
    weights[1, 2] = bad
    patches = extract_patches(gray_image, 3)
    with pytest.raises(ValueError, match=reference.mentions("weights", shown)):
        reconstruct_from_patches(patches, gray_image.shape, weights=weights)


@pytest.mark.parametrize("weights", ["boxcar", "Hann", ("gaussian", 0),
                                     ("gaussian", -1), ("hann", 2), 3])
def test_unknown_weights_raise(weights, gray_image, reference):
    """Check that an unknown window or a non-positive sigma raises naming it."""
    patches = extract_patches(gray_image, 3)
    with pytest.raises(ValueError, match=reference.mentions("weights", repr(weights))):
        reconstruct_from_patches(patches, gray_image.shape, weights=weights)


@pytest.mark.parametrize("aggregate", ["max", "Mean", "average", None])
def test_unknown_aggregate_raises(aggregate, gray_image, reference):
    """Check that an unknown aggregate raises naming it and the options."""
    patches = extract_patches(gray_image, 3)
    with pytest.raises(ValueError, match=reference.mentions(repr(aggregate), "median")):
        reconstruct_from_patches(patches, gray_image.shape, aggregate=aggregate)


@pytest.mark.parametrize("weights", ["hann", "gaussian", ("gaussian", 1.0)])
def test_median_with_weights_raises(weights, gray_image, reference):
    """Check that aggregate='median' refuses non-uniform weights."""
    patches = extract_patches(gray_image, 3)
    with pytest.raises(ValueError, match=reference.mentions("median", "uniform")):
        reconstruct_from_patches(patches, gray_image.shape, aggregate="median",
                                 weights=weights)


@pytest.mark.parametrize(("origins", "parts"), [
    ([[0, 0], [7, 0]], ["(7, 0)"]),
    ([[0, 0], [0, 9]], ["(0, 9)"]),
    ([[-1, 0], [0, 0]], ["(-1, 0)"]),
])
def test_origins_out_of_range_raise(origins, parts, gray_image, reference):
    """Check that an origin putting a patch outside the image raises naming it."""
    patches = np.ones((2, 3, 3))
    with pytest.raises(ValueError, match=reference.mentions("origin", *parts)):
        reconstruct_from_patches(patches, gray_image.shape, origins=np.array(origins))


def test_origins_out_of_range_with_padding_raise(gray_image, reference):
    """Check that padding widens the valid origins by patch - 1 and no further."""
    patches = np.ones((1, 3, 3))
    ok = reconstruct_from_patches(patches, gray_image.shape, padding="reflect",
                                  origins=np.array([[-2, 10]]))
    assert np.isfinite(ok).sum() == 1
    with pytest.raises(ValueError, match=reference.mentions("origin", "(-3, 0)")):
        reconstruct_from_patches(patches, gray_image.shape, padding="reflect",
                                 origins=np.array([[-3, 0]]))


@pytest.mark.parametrize(("origins", "parts"), [
    (np.zeros((2, 3), dtype=int), ["origins", "(2, 3)"]),
    (np.zeros(2, dtype=int), ["origins", "(2,)"]),
    (np.zeros((3, 2), dtype=int), ["2", "3"]),
])
def test_origins_of_wrong_shape_raise(origins, parts, reference):
    """Check that origins not of shape (n_patches, ndim) raise naming the shapes."""
    with pytest.raises(ValueError, match=reference.mentions(*parts)):
        reconstruct_from_patches(np.ones((2, 3, 3)), (9, 11), origins=origins)


@pytest.mark.parametrize("channel_axis", [3, -4])
def test_reconstruct_channel_axis_out_of_range_raises(channel_axis, reference):
    """Check that channel_axis outside image_shape raises naming it."""
    with pytest.raises(ValueError, match=reference.mentions("channel_axis",
                                                            str(channel_axis))):
        reconstruct_from_patches(np.ones((4, 3, 3, 3)), (9, 11, 3),
                                 channel_axis=channel_axis)


@pytest.mark.parametrize(("patches", "error", "parts"), [
    (np.zeros((4, 3, 3), dtype=complex), TypeError, ["complex128"]),
    (np.full((4, 3, 3), None, dtype=object), TypeError, ["object"]),
    (np.zeros((0, 3, 3)), ValueError, ["empty"]),
])
def test_bad_patch_arrays_raise(patches, error, parts, reference):
    """Check that complex, object and empty patch arrays are refused."""
    with pytest.raises(error, match=reference.mentions(*parts)):
        reconstruct_from_patches(patches, (4, 4), step=1)


@pytest.mark.parametrize("channel_axis", [None, -1])
def test_fill_value_none_message_counts_pixels(channel_axis):
    """Check that fill_value=None reports the number of uncovered pixels (here 9)."""
    channels = () if channel_axis is None else (2,)
    patches = np.ones((4, 2, 2, *channels))
    # Origins 0 and 3 per axis leave row 2 and column 2 uncovered: 9 pixels.
    with pytest.raises(ValueError, match=r"(?s)(?=.*\b9\b)(?=.*cover)"):
        reconstruct_from_patches(patches, (5, 5, *channels), step=3,
                                 channel_axis=channel_axis, fill_value=None)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mode_of_float_patches_raises(dtype, gray_image, reference):
    """Check that aggregate='mode' refuses float patches and names their dtype."""
    patches = extract_patches(gray_image.astype(dtype), 3)
    with pytest.raises(TypeError, match=reference.mentions("mode", str(np.dtype(dtype)),
                                                           "integer")):
        reconstruct_from_patches(patches, gray_image.shape, aggregate="mode")


@pytest.mark.parametrize("weights", ["hann", ("gaussian", 1.0), "array"])
def test_mode_with_weights_raises(weights, reference):
    """Check that aggregate='mode' refuses a non-uniform window."""
    patches = np.zeros((16, 3, 3), dtype=np.int64)
    if weights == "array":
        weights = np.full((3, 3), 2.0)
    with pytest.raises(ValueError, match=reference.mentions("mode", "uniform")):
        reconstruct_from_patches(patches, (6, 6), aggregate="mode", weights=weights)


@pytest.mark.parametrize(("fill_value", "dtype"), [(np.nan, np.int32), (2.5, np.int32),
                                                  (-1, np.uint8), (300, np.uint8)])
def test_mode_fill_value_the_labels_cannot_hold_raises(fill_value, dtype, reference):
    """Check that uncovered pixels with a fill_value the label dtype lacks raise."""
    patches = np.ones((4, 2, 2), dtype=dtype)
    with pytest.raises(ValueError, match=reference.mentions(
            "not covered", str(np.dtype(dtype)), repr(fill_value))):
        reconstruct_from_patches(patches, (5, 5), step=3, aggregate="mode",
                                 fill_value=fill_value)


def test_mode_fills_uncovered_pixels_with_an_integer_fill_value():
    """Check that a label fill_value lands on exactly the uncovered pixels."""
    patches = np.full((4, 2, 2), 7, dtype=np.int32)
    rebuilt = reconstruct_from_patches(patches, (5, 5), step=3, aggregate="mode",
                                       fill_value=-1)
    expected = np.full((5, 5), -1, dtype=np.int32)
    expected[[0, 0, 1, 1, 3, 3, 4, 4], [0, 1, 0, 1, 0, 1, 0, 1]] = 7
    expected[[0, 0, 1, 1, 3, 3, 4, 4], [3, 4, 3, 4, 3, 4, 3, 4]] = 7
    np.testing.assert_array_equal(rebuilt, expected)
