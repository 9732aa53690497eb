"""Tests for extract_patches and patch_view against brute-force and library code."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.image import extract_patches_2d

from skpatch import PatchGrid, extract_patches, iter_patches, patch_view

PAD_MODES = ("reflect", "symmetric", "edge", "constant", "wrap")
DTYPES = [np.float64, np.float32, np.uint8]


def _draw_image(data, reference, geom):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    return reference.make_image(geom.image_shape, dtype, seed)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_extract_matches_brute_force(data, reference):
    """Check that patches and origins equal a loop over the contract's origins."""
    geom = data.draw(reference.geometries())
    image = _draw_image(data, reference, geom)
    patches, origins = extract_patches(image, geom.patch_size, **geom.kwargs,
                                       return_origins=True)
    expected_origins = reference.origins(geom)
    np.testing.assert_array_equal(origins, expected_origins)
    expected = reference.extract(image, geom.patch_size, expected_origins, geom.padding,
                                 geom.channel_axis)
    assert patches.dtype == image.dtype
    assert patches.flags.c_contiguous
    np.testing.assert_array_equal(patches, expected)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_extract_at_origins_matches_brute_force(data, reference):
    """Check patches cut at arbitrary (unordered, repeated) origins against slicing."""
    geom = data.draw(reference.geometries(policies=(None, "reflect", "constant")))
    image = reference.make_image(geom.image_shape,
                                 seed=data.draw(st.integers(0, 2**16), label="seed"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="origin seed"))
    lows = [1 - p if geom.padding else 0 for p in geom.patch_size]
    highs = [s - 1 if geom.padding else s - p
             for s, p in zip(geom.spatial_shape, geom.patch_size, strict=True)]
    n = data.draw(st.integers(0, 10), label="n_patches")
    origins = np.stack([rng.integers(lo, hi + 1, n)
                        for lo, hi in zip(lows, highs, strict=True)], axis=-1)
    origins = origins.reshape(n, len(lows))
    patches, returned = extract_patches(image, geom.patch_size, **geom.kwargs,
                                        origins=origins, return_origins=True)
    expected = reference.extract(image, geom.patch_size, origins, geom.padding,
                                 geom.channel_axis)
    np.testing.assert_array_equal(patches, expected)
    np.testing.assert_array_equal(returned, origins)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_patch_count_formula_matches_extraction(data, reference):
    """Check that n_patches == len(extract_patches) == prod(grid_shape)."""
    geom = data.draw(reference.geometries())
    image = reference.make_image(geom.image_shape)
    grid = PatchGrid(geom.spatial_shape, geom.patch_size, **geom.grid_kwargs)
    patches = extract_patches(image, geom.patch_size, **geom.kwargs)
    channels = () if geom.channel_axis is None else (geom.n_channels,)
    assert grid.n_patches == len(patches) == math.prod(grid.grid_shape)
    assert grid.n_patches == len(reference.origins(geom))
    assert patches.shape == (grid.n_patches, *geom.patch_size, *channels)


@pytest.mark.parametrize("fixture", ["signal", "gray_image", "volume"])
@pytest.mark.parametrize("step", [1, 2, 3, 5])
@pytest.mark.parametrize("padding", [None, "valid"])
def test_origins_slice_out_their_patch(fixture, step, padding, request):
    """Check that image[origin : origin + patch] == patch for every returned origin."""
    image = request.getfixturevalue(fixture)
    patch_size = (3, 4, 2)[: image.ndim]
    patches, origins = extract_patches(image, patch_size, step=step, padding=padding,
                                       return_origins=True)
    assert len(patches) == len(origins)
    for patch, origin in zip(patches, origins, strict=True):
        index = tuple(slice(o, o + p) for o, p in zip(origin, patch_size, strict=True))
        np.testing.assert_array_equal(image[index], patch)


@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_mode_patches_come_from_numpy_pad(mode, gray_image):
    """Check that pad-mode patches are slices of np.pad(image, patch - 1, mode)."""
    patch_size = (4, 3)
    padded = np.pad(gray_image, [(3, 3), (2, 2)], mode=mode)
    patches, origins = extract_patches(gray_image, patch_size, step=2, padding=mode,
                                       return_origins=True)
    assert origins.min() < 0
    for patch, (r, c) in zip(patches, origins, strict=True):
        np.testing.assert_array_equal(padded[r + 3 : r + 7, c + 2 : c + 5], patch)


@pytest.mark.parametrize("shape", [(9, 11), (6, 6), (5, 13)])
@pytest.mark.parametrize("patch_size", [(1, 1), (2, 3), (4, 4), (5, 5)])
def test_extract_matches_sklearn_gray(shape, patch_size, reference):
    """Check agreement with sklearn's extract_patches_2d for a grey image, step 1."""
    image = reference.make_image(shape, seed=7)
    expected = extract_patches_2d(image, patch_size)
    np.testing.assert_array_equal(extract_patches(image, patch_size), expected)


@pytest.mark.parametrize("n_channels", [1, 3, 4])
@pytest.mark.parametrize("patch_size", [(2, 2), (3, 5)])
def test_extract_matches_sklearn_colour(n_channels, patch_size, reference):
    """Check agreement with sklearn's extract_patches_2d for a colour image, step 1."""
    image = reference.make_image((8, 10, n_channels), seed=8)
    expected = extract_patches_2d(image, patch_size)
    if n_channels == 1:  # sklearn drops a single channel
        expected = expected[..., np.newaxis]
    patches = extract_patches(image, patch_size, channel_axis=-1)
    np.testing.assert_array_equal(patches, expected)
    first_axis = extract_patches(np.moveaxis(image, -1, 0), patch_size, channel_axis=0)
    np.testing.assert_array_equal(first_axis, expected)


@pytest.mark.parametrize(("patch_size", "step"), [
    ((3, 3), (2, 2)), ((5, 3), (4, 4)), ((1, 1), (1, 1)), ((3, 5), (3, 3)),
    ((9, 11), (1, 1)), ((2, 4), (7, 1)),
])
@pytest.mark.parametrize("n_channels", [1, 3])
def test_extract_matches_torch_unfold(patch_size, step, n_channels, reference):
    """Check agreement with torch.nn.functional.unfold on a 'valid' grid."""
    torch = pytest.importorskip("torch")
    image = reference.make_image((9, 11, n_channels), seed=9)
    (kh, kw), shape = patch_size, image.shape
    assert (shape[0] - kh) % step[0] == 0
    assert (shape[1] - kw) % step[1] == 0
    tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0)))[None]
    columns = torch.nn.functional.unfold(tensor, kernel_size=patch_size, stride=step)
    expected = columns[0].reshape(n_channels, kh, kw, -1).permute(3, 1, 2, 0).numpy()
    for padding in ("valid", None):
        patches = extract_patches(image, patch_size, step=step, padding=padding,
                                  channel_axis=-1)
        np.testing.assert_array_equal(patches, expected)


def test_extract_row_major_order_by_hand():
    """Check the order of patches on a small image worked out by hand."""
    image = np.arange(12).reshape(3, 4)
    patches = extract_patches(image, 2, step=2)
    # Origins (0, 0), (0, 2), (1, 0) snapped, (1, 2).
    expected = [[[0, 1], [4, 5]], [[2, 3], [6, 7]], [[4, 5], [8, 9]],
                [[6, 7], [10, 11]]]
    np.testing.assert_array_equal(patches, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.uint8,
                                   np.int16, np.int64, np.bool_])
@pytest.mark.parametrize("padding", [None, "valid", "reflect", "constant"])
def test_extract_preserves_dtype(dtype, padding, reference):
    """Check that patches keep the image's dtype."""
    image = reference.make_image((7, 6), dtype)
    patches = extract_patches(image, 3, step=2, padding=padding)
    assert patches.dtype == np.dtype(dtype)


@pytest.mark.parametrize("padding", [None, "valid", *PAD_MODES])
@pytest.mark.parametrize("max_patches", [None, 5])
def test_extract_does_not_mutate_or_alias_image(padding, max_patches, rgb_image):
    """Check that the image is left unchanged and the patches are a copy."""
    before = rgb_image.copy()
    patches = extract_patches(rgb_image, 3, step=2, padding=padding, channel_axis=-1,
                              max_patches=max_patches, random_state=0)
    np.testing.assert_array_equal(rgb_image, before)
    assert not np.shares_memory(patches, rgb_image)
    patches[...] = -1.0
    np.testing.assert_array_equal(rgb_image, before)


def test_nan_and_inf_pass_through_extraction(gray_image, reference):
    """Check that NaN and inf in the image reach the patches that cover them."""
    image = gray_image.copy()
    image[2, 3], image[8, 10] = np.nan, np.inf
    patches, origins = extract_patches(image, (3, 3), step=2, return_origins=True)
    expected = reference.extract(image, (3, 3), origins)
    np.testing.assert_array_equal(patches, expected)
    assert np.isnan(patches).any()
    assert np.isinf(patches).any()


def test_extract_accepts_array_likes():
    """Check that nested lists are accepted like arrays."""
    image = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    patches = extract_patches(image, (2, 2))
    np.testing.assert_array_equal(patches, [[[1, 2], [4, 5]], [[2, 3], [5, 6]]])


# --- max_patches -------------------------------------------------------------------


@pytest.mark.parametrize("max_patches", [1, 10, 62, 63])
@pytest.mark.parametrize("random_state", [0, 1, 42])
def test_max_patches_int_draws_distinct_sorted_patches(max_patches, random_state,
                                                       gray_image, reference):
    """Check that an int max_patches gives that many distinct patches in grid order."""
    patches, origins = extract_patches(gray_image, (3, 3), max_patches=max_patches,
                                       random_state=random_state, return_origins=True)
    assert len(patches) == len(origins) == max_patches
    as_tuples = [tuple(o) for o in origins.tolist()]
    assert as_tuples == sorted(set(as_tuples))
    full = reference.origins(reference.Geometry((9, 11), (3, 3), (1, 1), (0, 0), None))
    assert set(as_tuples) <= set(map(tuple, full.tolist()))
    expected = reference.extract(gray_image, (3, 3), origins)
    np.testing.assert_array_equal(patches, expected)


@pytest.mark.parametrize(("fraction", "expected"),
                         [(0.5, 35), (0.2, 14), (0.1, 7), (1.0, 70)])
def test_max_patches_float_is_a_fraction(fraction, expected, gray_image):
    """Check that a float max_patches selects int(fraction * n_patches) patches."""
    patches = extract_patches(gray_image, (3, 2), step=(1, 1), max_patches=fraction,
                              random_state=0)
    assert extract_patches(gray_image, (3, 2)).shape[0] == 70
    assert len(patches) == expected


def test_max_patches_all_returns_the_full_grid(rgb_image):
    """Check that max_patches=n_patches or 1.0 returns every patch in grid order."""
    full, origins = extract_patches(rgb_image, 4, step=3, channel_axis=-1,
                                    return_origins=True)
    for max_patches in (len(full), 1.0):
        sub, sub_origins = extract_patches(rgb_image, 4, step=3, channel_axis=-1,
                                           max_patches=max_patches, random_state=3,
                                           return_origins=True)
        np.testing.assert_array_equal(sub, full)
        np.testing.assert_array_equal(sub_origins, origins)


@pytest.mark.parametrize("make_state", [
    lambda: 7, lambda: np.random.RandomState(7), lambda: np.random.default_rng(7),
])
def test_max_patches_is_reproducible(make_state, volume):
    """Check that the same random_state gives the same subset."""
    first = extract_patches(volume, 2, max_patches=20, random_state=make_state(),
                            return_origins=True)
    second = extract_patches(volume, 2, max_patches=20, random_state=make_state(),
                             return_origins=True)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_max_patches_depends_on_random_state(volume):
    """Check that different seeds draw different subsets (120 of 80 choose 20)."""
    subsets = {
        tuple(map(tuple, extract_patches(volume, 2, max_patches=20, random_state=seed,
                                         return_origins=True)[1].tolist()))
        for seed in range(5)
    }
    assert len(subsets) > 1


def test_max_patches_draws_every_patch_eventually(gray_image):
    """Check that the draw reaches every origin (all 63 seen over 200 draws)."""
    seen = set()
    for seed in range(200):
        _, origins = extract_patches(gray_image, (3, 3), max_patches=3,
                                     random_state=seed, return_origins=True)
        seen.update(map(tuple, origins.tolist()))
    assert len(seen) == 63


@pytest.mark.parametrize(("max_patches", "parts"), [
    (0, ["max_patches", "0"]),
    (-3, ["max_patches", "-3"]),
    (64, ["max_patches", "64", "63"]),
    (1000, ["max_patches", "1000", "63"]),
    (0.0, ["max_patches", "0.0"]),
    (1.5, ["max_patches", "1.5"]),
    (-0.5, ["max_patches", "-0.5"]),
])
def test_max_patches_out_of_range_raises(max_patches, parts, gray_image, reference):
    """Check that max_patches outside [1, n_patches] or (0, 1] raises naming it."""
    with pytest.raises(ValueError, match=reference.mentions(*parts)):
        extract_patches(gray_image, (3, 3), max_patches=max_patches, random_state=0)


# --- patch_view --------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "patch_size", "step", "offset"), [
    ("signal", 4, 3, 0), ("signal", 1, 3, 2), ("gray_image", (3, 4), (2, 3), (1, 0)),
    ("gray_image", 9, 1, 0), ("volume", (2, 3, 4), (2, 1, 3), 0),
    ("volume", 2, 3, (0, 1, 2)),
])
def test_patch_view_equals_valid_extraction(fixture, patch_size, step, offset, request):
    """Check that patch_view reshaped equals extract_patches on the 'valid' grid."""
    image = request.getfixturevalue(fixture)
    view = patch_view(image, patch_size, step=step, offset=offset)
    grid = PatchGrid(image.shape, patch_size, step=step, offset=offset, padding="valid")
    assert view.shape == grid.grid_shape + grid.patch_size
    expected = extract_patches(image, patch_size, step=step, offset=offset,
                               padding="valid")
    np.testing.assert_array_equal(view.reshape(expected.shape), expected)


@pytest.mark.parametrize("channel_axis", [0, -1, 2])
def test_patch_view_with_channels(channel_axis, rgb_image):
    """Check patch_view's channels-last shape and values for either channel position."""
    image = np.moveaxis(rgb_image, -1, channel_axis)
    view = patch_view(image, (3, 2), step=(3, 2), channel_axis=channel_axis)
    assert view.shape == (3, 5, 3, 2, 3)
    expected = extract_patches(rgb_image, (3, 2), step=(3, 2), padding="valid",
                               channel_axis=-1)
    np.testing.assert_array_equal(view.reshape(expected.shape), expected)
    assert np.shares_memory(view, image)


@pytest.mark.parametrize("fixture", ["signal", "gray_image", "rgb_image", "volume"])
def test_patch_view_is_read_only_and_zero_copy(fixture, request):
    """Check that the view shares the image's memory and cannot be written to."""
    image = request.getfixturevalue(fixture)
    before = image.copy()
    view = patch_view(image, 2, step=2)
    assert np.shares_memory(view, image)
    assert not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view[(0,) * view.ndim] = -1.0
    with pytest.raises(ValueError, match="read-only"):
        view += 1
    np.testing.assert_array_equal(image, before)


# --- bad input ---------------------------------------------------------------------


def _call(function, image, patch_size, **kwargs):
    result = function(image, patch_size, **kwargs)
    return list(result) if function is iter_patches else result


FUNCTIONS = [extract_patches, patch_view, iter_patches]


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(("shape", "patch_size", "parts"), [
    ((4, 4), 5, ["patch_size", "(5, 5)", "(4, 4)"]),
    ((9, 11), (3, 12), ["patch_size", "(3, 12)", "(9, 11)"]),
    ((3,), 4, ["patch_size", "4", "(3,)"]),
])
def test_patch_larger_than_image_raises(function, shape, patch_size, parts, reference):
    """Check that a patch larger than the image raises naming both shapes."""
    with pytest.raises(ValueError, match=reference.mentions(*parts)):
        _call(function, np.zeros(shape), patch_size)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(("kwargs", "parts"), [
    ({"patch_size": 0}, ["patch_size", "0"]),
    ({"patch_size": (2, -1)}, ["patch_size", "(2, -1)"]),
    ({"step": 0}, ["step", "0"]),
    ({"step": (1, -2)}, ["step", "(1, -2)"]),
])
def test_non_positive_patch_or_step_raises(function, kwargs, parts, gray_image,
                                           reference):
    """Check that patch_size or step <= 0 raises a ValueError naming the value."""
    kwargs = {"patch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=reference.mentions(*parts)):
        _call(function, gray_image, kwargs.pop("patch_size"), **kwargs)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(("kwargs", "parts"), [
    ({"patch_size": 1.5}, ["patch_size", "1.5"]),
    ({"patch_size": "3"}, ["patch_size", "'3'"]),
    ({"patch_size": (2, 2.0)}, ["patch_size", "2.0"]),
    ({"step": 1.5}, ["step", "1.5"]),
    ({"step": "3"}, ["step", "'3'"]),
    ({"offset": 0.5}, ["offset", "0.5"]),
])
def test_non_integer_patch_or_step_raises(function, kwargs, parts, gray_image,
                                          reference):
    """Check that non-integer patch_size, step or offset raise a TypeError naming it."""
    kwargs = {"patch_size": 2, **kwargs}
    with pytest.raises(TypeError, match=reference.mentions(*parts)):
        _call(function, gray_image, kwargs.pop("patch_size"), **kwargs)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(("shape", "patch_size", "channel_axis", "parts"), [
    ((9, 11), (3, 3, 3), None, ["patch_size", "(3, 3, 3)", "2"]),
    ((9, 11, 3), (2, 2, 2), -1, ["patch_size", "(2, 2, 2)", "2"]),
    ((5, 6, 7), (2, 2), None, ["patch_size", "(2, 2)", "3"]),
])
def test_wrong_number_of_patch_axes_raises(function, shape, patch_size, channel_axis,
                                           parts, reference):
    """Check that a patch_size tuple of the wrong length raises naming both lengths."""
    with pytest.raises(ValueError, match=reference.mentions(*parts)):
        _call(function, np.zeros(shape), patch_size, channel_axis=channel_axis)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(("image", "dtype_name"), [
    (np.zeros((5, 5), dtype=complex), "complex128"),
    (np.zeros((5, 5), dtype=np.complex64), "complex64"),
    (np.full((5, 5), None, dtype=object), "object"),
    (np.full((5, 5), "a"), "<U1"),
])
def test_non_real_dtype_raises_type_error(function, image, dtype_name, reference):
    """Check that complex, object and string images raise a TypeError naming dtype."""
    with pytest.raises(TypeError, match=reference.mentions("dtype", dtype_name)):
        _call(function, image, 2)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("shape", [(0,), (0, 5), (4, 0), (3, 0, 2)])
def test_empty_image_raises(function, shape, reference):
    """Check that an empty image raises a ValueError naming its shape."""
    with pytest.raises(ValueError, match=reference.mentions("empty", str(shape))):
        _call(function, np.zeros(shape), 1)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_scalar_image_raises(function):
    """Check that a 0-d image raises a ValueError."""
    with pytest.raises(ValueError, match=r"(?i)scalar|axis|axes|dimension"):
        _call(function, np.float64(3.0), 1)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("channel_axis", [3, -4, 10])
def test_channel_axis_out_of_range_raises(function, channel_axis, rgb_image, reference):
    """Check that channel_axis outside the image's axes raises naming it and ndim."""
    with pytest.raises(ValueError, match=reference.mentions("channel_axis",
                                                            str(channel_axis), "3")):
        _call(function, rgb_image, 2, channel_axis=channel_axis)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_channel_axis_leaving_no_spatial_axis_raises(function, signal):
    """Check that a 1-D image whose only axis is the channel axis raises."""
    with pytest.raises(ValueError, match="spatial"):
        _call(function, signal, 1, channel_axis=0)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("channel_axis", [1.0, "-1"])
def test_non_integer_channel_axis_raises(function, channel_axis, rgb_image):
    """Check that a non-integer channel_axis raises a TypeError naming it."""
    with pytest.raises(TypeError, match="channel_axis"):
        _call(function, rgb_image, 2, channel_axis=channel_axis)


@pytest.mark.parametrize("function", [extract_patches, iter_patches])
@pytest.mark.parametrize("padding", ["same", "periodic", "Reflect"])
def test_unknown_padding_raises(function, padding, gray_image, reference):
    """Check that an unknown padding raises a ValueError naming it."""
    with pytest.raises(ValueError, match=reference.mentions("padding", repr(padding))):
        _call(function, gray_image, 2, padding=padding)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_offset_too_large_raises(function, gray_image, reference):
    """Check that an offset leaving no room for a patch raises naming the offset."""
    with pytest.raises(ValueError, match=reference.mentions("offset", "8")):
        _call(function, gray_image, 2, offset=(8, 0))


def test_origins_outside_the_image_or_with_max_patches_raise(gray_image, reference):
    """Check that origins= refuses patches beyond the image and a max_patches too."""
    with pytest.raises(ValueError, match=reference.mentions("outside", "(0, 13)")):
        extract_patches(gray_image, 3, origins=[[0, 0], [0, 13]])
    with pytest.raises(ValueError, match=reference.mentions("origins", "max_patches")):
        extract_patches(gray_image, 3, origins=[[0, 0]], max_patches=1)
