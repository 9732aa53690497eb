"""Tests for patch_window and the weighting windows used by reconstruction."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skpatch import extract_patches, patch_window, reconstruct_from_patches

NAMED = ["uniform", "gaussian", "hann", "triangular", ("gaussian", 0.5),
         ("gaussian", 3.0)]
TAPERED = ["gaussian", "hann", "triangular", ("gaussian", 1.0)]
PATCH_SIZES = [(1,), (2,), (5,), (8,), (1, 1), (1, 7), (3, 4), (6, 6), (2, 3, 5),
               (1, 1, 1)]


@pytest.mark.parametrize("weights", NAMED)
@pytest.mark.parametrize("patch_size", PATCH_SIZES)
def test_named_windows_are_positive_symmetric_float64(weights, patch_size):
    """Check that named windows are > 0, finite, symmetric and of shape patch_size."""
    window = patch_window(weights, patch_size)
    assert window.shape == patch_size
    assert window.dtype == np.float64
    assert np.all(np.isfinite(window))
    assert np.all(window > 0)
    for axis in range(len(patch_size)):
        np.testing.assert_allclose(np.flip(window, axis=axis), window, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(weights=st.sampled_from(NAMED),
       patch_size=st.lists(st.integers(1, 12), min_size=1, max_size=3).map(tuple))
def test_named_windows_are_positive_property(weights, patch_size):
    """Check positivity, symmetry and shape for any patch size up to 3-D."""
    window = patch_window(weights, patch_size)
    assert window.shape == patch_size
    assert window.min() > 0
    np.testing.assert_allclose(window, window[tuple(slice(None, None, -1)
                                                    for _ in patch_size)], rtol=1e-12)


@pytest.mark.parametrize("weights", NAMED)
@pytest.mark.parametrize("patch_size", [(3, 4), (1, 5), (2, 3, 4)])
def test_named_windows_are_separable(weights, patch_size):
    """Check that an n-D window is the outer product of its 1-D windows."""
    expected = np.ones(())
    for p in patch_size:
        expected = np.multiply.outer(expected, patch_window(weights, (p,)))
    np.testing.assert_allclose(patch_window(weights, patch_size), expected, rtol=1e-12)


@pytest.mark.parametrize("size", [1, 2, 7])
def test_uniform_window_is_constant(size):
    """Check that the uniform window gives every pixel the same weight."""
    window = patch_window("uniform", (size, size + 1))
    np.testing.assert_array_equal(window, np.full_like(window, window.flat[0]))


@pytest.mark.parametrize("weights", TAPERED)
@pytest.mark.parametrize("size", [3, 4, 7, 8])
def test_tapered_windows_peak_in_the_centre(weights, size):
    """Check that tapered windows rise monotonically to the centre, edges lower."""
    window = patch_window(weights, (size,))
    half = window[: (size + 1) // 2]
    assert np.all(np.diff(half) >= 0)
    assert window[0] < window[size // 2]


@pytest.mark.parametrize("size", [4, 9])
def test_gaussian_sigma_controls_the_taper(size):
    """Check that a larger sigma gives a flatter Gaussian (higher edge/centre ratio)."""
    ratios = []
    for sigma in (0.5, 1.0, 2.0, 8.0):
        window = patch_window(("gaussian", sigma), (size,))
        ratios.append(window[0] / window.max())
    assert ratios == sorted(ratios)
    assert ratios[0] < ratios[-1]


@pytest.mark.parametrize("weights", NAMED)
def test_patch_size_one_window_is_positive(weights):
    """Check that a 1-pixel window is a single positive weight."""
    window = patch_window(weights, (1, 1))
    assert window.shape == (1, 1)
    assert window[0, 0] > 0


def test_weight_array_is_returned_as_float64():
    """Check that a valid user array comes back unchanged, as float64."""
    weights = np.arange(1, 7, dtype=np.int32).reshape(2, 3)
    window = patch_window(weights, (2, 3))
    assert window.dtype == np.float64
    np.testing.assert_array_equal(window, weights)


@pytest.mark.parametrize(("weights", "parts"), [
    ("boxcar", ["'boxcar'"]), ("HANN", ["'HANN'"]), (("gaussian", 0), ["0"]),
    (("gaussian", -2.0), ["-2.0"]), (("triangular", 1.0), ["triangular"]),
])
def test_unknown_window_raises(weights, parts, reference):
    """Check that unknown windows or a non-positive sigma raise naming them."""
    with pytest.raises(ValueError, match=reference.mentions("weights", *parts)):
        patch_window(weights, (3, 3))


@pytest.mark.parametrize(("weights", "parts"), [
    (np.ones((3, 2)), ["(3, 2)", "(3, 3)"]),
    (np.zeros((3, 3)), ["> 0"]),
    (-np.ones((3, 3)), ["> 0"]),
    (np.full((3, 3), np.nan), ["finite"]),
])
def test_bad_weight_array_raises(weights, parts, reference):
    """Check that a weight array of the wrong shape, <= 0 or non-finite raises."""
    with pytest.raises(ValueError, match=reference.mentions("weights", *parts)):
        patch_window(weights, (3, 3))


@pytest.mark.parametrize("weights", TAPERED)
def test_windows_never_zero_the_image_border(weights, reference):
    """Check that a tiling keeps its border pixels (unlike a Hann that reaches 0)."""
    image = reference.make_image((8, 8), seed=21)
    patches = extract_patches(image, 4, step=4)
    rebuilt = reconstruct_from_patches(patches, image.shape, step=4, weights=weights,
                                       fill_value=None)
    np.testing.assert_allclose(rebuilt[[0, -1], :], image[[0, -1], :], rtol=1e-12)
    np.testing.assert_allclose(rebuilt[:, [0, -1]], image[:, [0, -1]], rtol=1e-12)


@pytest.mark.parametrize("scale", [1e-3, 2.5, 1e4])
def test_reconstruction_is_invariant_to_window_scale(scale, rng):
    """Check that multiplying the weights by a constant does not change the result."""
    patches = 1.0 + rng.random((16, 3, 3))
    weights = rng.uniform(0.5, 1.5, (3, 3))
    first = reconstruct_from_patches(patches, (6, 6), weights=weights)
    second = reconstruct_from_patches(patches, (6, 6), weights=scale * weights)
    np.testing.assert_allclose(first, second, rtol=1e-12)


def test_windows_change_the_average_of_disagreeing_patches(rng):
    """Check that a tapered window gives a different blend than uniform weights."""
    patches = 1.0 + rng.random((16, 3, 3))
    uniform = reconstruct_from_patches(patches, (6, 6))
    for weights in TAPERED:
        blended = reconstruct_from_patches(patches, (6, 6), weights=weights)
        assert not np.allclose(blended, uniform)
