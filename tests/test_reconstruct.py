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
def test_full_grid_split_into_blocks_matches_brute_force(data, reference):
    """Check the full-grid merge against a loop when it works a few grid rows at a time.

    Blocks of one or several rows, usually with a shorter last block, replay the
    first block's recorded plan and reuse its buffers.
    """
    geom = data.draw(reference.geometries())
    block_bytes = data.draw(st.integers(1, 2**13), label="block_bytes")
    origins = reference.origins(geom)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    patches = _random_patches(rng, len(origins), geom.patch_size, geom.n_channels)
    patches = patches.astype(data.draw(st.sampled_from([np.float64, np.float32])))
    weights = _draw_window(data, geom.patch_size, geom.n_channels)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconstruct_module, "FOLD_BLOCK_BYTES", block_bytes)
        patch.setattr(reconstruct_module, "BLOCK_VALUES", block_bytes)
        rebuilt = reconstruct_from_patches(patches, geom.image_shape, **geom.kwargs,
                                           weights=weights)
    expected = reference.reconstruct(patches.astype(np.float64), geom.spatial_shape,
                                     origins, _window_array(weights, geom.patch_size),
                                     geom.channel_axis)
    np.testing.assert_allclose(rebuilt, expected, rtol=_rtol(patches.dtype))


@pytest.mark.parametrize("channels", [(), (2,)])
@pytest.mark.parametrize("patch_size", [(4, 4), (8, 2), (2, 8), (4, 3), (3, 4)])
def test_blocks_of_several_rows_and_a_short_last_block(patch_size, channels):
    """Three grid rows per block, then a last block of two over stale buffer rows."""
    image_shape = (22 + patch_size[0], 9 + patch_size[1])
    grid_shape = tuple(s - p + 1 for s, p in zip(image_shape, patch_size, strict=True))
    rng = np.random.default_rng(0)
    patches = rng.random((grid_shape[0] * grid_shape[1], *patch_size, *channels))
    row_bytes = 8 * grid_shape[1] * patches[0].size
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconstruct_module, "FOLD_BLOCK_BYTES", 3 * row_bytes)
        rebuilt = reconstruct_from_patches(patches, image_shape + channels,
                                           channel_axis=-1 if channels else None)
    total = np.zeros(image_shape + channels)
    count = np.zeros(image_shape)
    for k, (i, j) in enumerate(np.ndindex(*grid_shape)):
        total[i:i + patch_size[0], j:j + patch_size[1]] += patches[k]
        count[i:i + patch_size[0], j:j + patch_size[1]] += 1
    expected = total / count.reshape(count.shape + (1,) * len(channels))
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-12)


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
