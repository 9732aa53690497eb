"""Tests for skpatch.sklearn against scikit-learn's feature_extraction.image."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.feature_extraction import image as sk_image
from sklearn.utils._param_validation import InvalidParameterError

from skpatch import sklearn as sp

IMAGES = {
    "gray": ((13, 17), np.float64),
    "gray-float32": ((13, 17), np.float32),
    "one-channel": ((11, 12, 1), np.float64),
    "colour-uint8": ((13, 17, 3), np.uint8),
    "colour-float": ((10, 9, 4), np.float64),
}


def _image(name, seed=0):
    shape, dtype = IMAGES[name]
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, 256, size=shape).astype(dtype)
    return rng.random(shape).astype(dtype)


@pytest.mark.parametrize("max_patches", [None, 1, 7, 0.3, 0.999, 10_000])
@pytest.mark.parametrize("patch_size", [(1, 1), (4, 5), (9, 9)])
@pytest.mark.parametrize("name", list(IMAGES))
def test_extract_patches_2d_identical_to_sklearn(name, patch_size, max_patches):
    """Check that patches, order, dtype and random draw equal scikit-learn's."""
    image = _image(name)
    expected = sk_image.extract_patches_2d(
        image, patch_size, max_patches=max_patches, random_state=42
    )
    actual = sp.extract_patches_2d(
        image, patch_size, max_patches=max_patches, random_state=42
    )
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    assert_array_equal(actual, expected)


def test_extract_patches_2d_shares_a_random_state_like_sklearn():
    """Check that a RandomState instance is consumed as scikit-learn consumes it."""
    image = _image("gray")
    ours, theirs = np.random.RandomState(3), np.random.RandomState(3)
    for _ in range(3):
        assert_array_equal(
            sp.extract_patches_2d(image, (3, 3), max_patches=4, random_state=ours),
            sk_image.extract_patches_2d(
                image, (3, 3), max_patches=4, random_state=theirs
            ),
        )


def test_extract_patches_2d_returns_a_copy():
    """Check that the patches are a writeable copy, not a view of the image."""
    image = _image("gray")
    patches = sp.extract_patches_2d(image, (3, 3))
    patches[0, 0, 0] = -1.0
    assert image[0, 0] != -1.0


@pytest.mark.parametrize("patch_size", [(1, 1), (3, 4), (13, 17), (5, 1)])
@pytest.mark.parametrize("name", ["gray", "colour-float", "colour-uint8"])
def test_reconstruct_from_patches_2d_matches_sklearn(name, patch_size, reference):
    """Check that the overlap average equals scikit-learn's, as float64."""
    image = _image(name)
    if patch_size[0] > image.shape[0] or patch_size[1] > image.shape[1]:
        pytest.skip("patch larger than image")
    if reference.sklearn_miscounts(image.shape, patch_size):
        pytest.skip("this scikit-learn miscounts patches spanning an axis (#10910)")
    rng = np.random.default_rng(1)
    patches = sk_image.extract_patches_2d(image, patch_size).astype(np.float64)
    patches += rng.normal(size=patches.shape)
    expected = sk_image.reconstruct_from_patches_2d(patches, image.shape)
    actual = sp.reconstruct_from_patches_2d(patches, image.shape)
    assert actual.dtype == expected.dtype == np.float64
    assert actual.shape == expected.shape
    assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


def test_reconstruct_from_patches_2d_float32_patches_give_float64():
    """Check that float32 patches give a float64 image, as in scikit-learn."""
    image = _image("gray-float32")
    patches = sk_image.extract_patches_2d(image, (3, 3))
    expected = sk_image.reconstruct_from_patches_2d(patches, image.shape)
    actual = sp.reconstruct_from_patches_2d(patches, image.shape)
    assert actual.dtype == np.float64
    assert_allclose(actual, expected, rtol=1e-12)


def test_reconstruct_from_patches_2d_round_trip():
    """Check that unchanged patches give the image back."""
    image = _image("colour-float")
    patches = sp.extract_patches_2d(image, (4, 3))
    assert_allclose(sp.reconstruct_from_patches_2d(patches, image.shape), image)


def test_reconstruct_from_patches_2d_refuses_missing_patches():
    """Check that too few patches are an error, where scikit-learn is silent."""
    image = _image("gray")
    patches = sp.extract_patches_2d(image, (3, 3))
    with pytest.raises(ValueError, match=r"expected 165 patches.*got 164"):
        sp.reconstruct_from_patches_2d(patches[:-1], image.shape)


@pytest.mark.parametrize("max_patches", [None, 3, 0.2, 500])
@pytest.mark.parametrize("shape", [(3, 12, 14), (2, 12, 14, 3), (2, 12, 14, 1)])
def test_patch_extractor_identical_to_sklearn(shape, max_patches):
    """Check that PatchExtractor.transform equals scikit-learn's, draw included."""
    X = np.random.default_rng(2).random(shape)
    kwargs = {"patch_size": (4, 3), "max_patches": max_patches, "random_state": 0}
    expected = sk_image.PatchExtractor(**kwargs).fit(X).transform(X)
    actual = sp.PatchExtractor(**kwargs).fit(X).transform(X)
    assert actual.dtype == expected.dtype == np.float64
    assert actual.shape == expected.shape
    assert_array_equal(actual, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_patch_extractor_default_patch_size_matches_sklearn(dtype):
    """Check that patch_size=None uses a tenth of the image, as scikit-learn does."""
    X = (np.random.default_rng(3).random((2, 40, 51)) * 255).astype(dtype)
    expected = sk_image.PatchExtractor().transform(X)
    actual = sp.PatchExtractor().transform(X)
    assert actual.shape == expected.shape == (2 * 37 * 47, 4, 5)
    assert actual.dtype == expected.dtype
    assert_array_equal(actual, expected)


def test_patch_extractor_signature_matches_sklearn():
    """Check that the parameters and their defaults are scikit-learn's."""
    assert sp.PatchExtractor().get_params() == sk_image.PatchExtractor().get_params()


def test_patch_extractor_validates_in_transform():
    """Check that transform validates parameters, unlike scikit-learn's."""
    X = np.zeros((1, 8, 8))
    with pytest.raises(InvalidParameterError, match="'max_patches' parameter"):
        sp.PatchExtractor(max_patches=-1).transform(X)
    with pytest.raises(ValueError, match=r"two integers, got \(2, 2, 2\)"):
        sp.PatchExtractor(patch_size=(2, 2, 2)).transform(X)


def test_patch_extractor_refuses_wrong_ndim():
    """Check that images must be a 3-D or 4-D batch, naming the shape received."""
    with pytest.raises(ValueError, match=r"got shape \(8, 8\)"):
        sp.PatchExtractor(patch_size=(2, 2)).transform(np.zeros((8, 8)))


@pytest.mark.parametrize(
    ("patch_size", "match"),
    [
        ((14, 2), "patch height 14.*image height 13"),
        ((2, 18), "patch width 18.*image width 17"),
    ],
)
def test_extract_patches_2d_refuses_patch_larger_than_image(patch_size, match):
    """Check that a patch larger than the image is refused with both sizes."""
    with pytest.raises(ValueError, match=match):
        sp.extract_patches_2d(_image("gray"), patch_size)


def test_extract_patches_2d_refuses_nan_like_sklearn():
    """Check that NaN in the image is refused, as scikit-learn refuses it."""
    image = _image("gray")
    image[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sk_image.extract_patches_2d(image, (3, 3))
    with pytest.raises(ValueError, match="NaN"):
        sp.extract_patches_2d(image, (3, 3))


@pytest.mark.parametrize("max_patches", [0, -2, 1.5, "all"])
def test_extract_patches_2d_validates_max_patches(max_patches):
    """Check that invalid max_patches raise scikit-learn's InvalidParameterError."""
    with pytest.raises(InvalidParameterError, match="'max_patches' parameter"):
        sp.extract_patches_2d(_image("gray"), (3, 3), max_patches=max_patches)
