"""Tests for PatchGrid: origins, counts, padding geometry and argument checks."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skpatch import PatchGrid

PAD_MODES = ("reflect", "symmetric", "edge", "constant", "wrap")


def closed_form_count(size, patch, step, offset, padding):
    """Patches on one axis from the counting formula (not from a list of origins)."""
    canvas = size + 2 * (patch - 1) if padding in PAD_MODES else size
    regular = (canvas - patch - offset) // step + 1
    if padding == "valid":
        return regular
    return regular + (offset > 0) + ((canvas - patch - offset) % step != 0)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_grid_origins_match_reference(data, reference):
    """Check that axis_origins and origins() match the origins read off the contract."""
    geom = data.draw(reference.geometries(channels=False))
    grid = PatchGrid(geom.spatial_shape, geom.patch_size, **geom.grid_kwargs)
    expected = reference.origins(geom)
    np.testing.assert_array_equal(grid.origins(), expected)
    pad = [p - 1 if geom.padding in PAD_MODES else 0 for p in geom.patch_size]
    for axis, origins in enumerate(grid.axis_origins):
        expected_axis = reference.axis_origins(
            geom.spatial_shape[axis], geom.patch_size[axis], geom.step[axis],
            geom.offset[axis], geom.padding,
        )
        np.testing.assert_array_equal(origins, np.array(expected_axis) + pad[axis])


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_patch_count_formula(data, reference):
    """Check that n_patches == prod(grid_shape) == the closed-form count per axis."""
    geom = data.draw(reference.geometries(channels=False))
    grid = PatchGrid(geom.spatial_shape, geom.patch_size, **geom.grid_kwargs)
    expected_shape = tuple(
        closed_form_count(*args, geom.padding)
        for args in zip(geom.spatial_shape, geom.patch_size, geom.step, geom.offset,
                        strict=True)
    )
    assert grid.grid_shape == expected_shape
    assert grid.n_patches == math.prod(expected_shape)
    assert grid.origins().shape == (grid.n_patches, len(geom.spatial_shape))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_snap_and_pad_grids_cover_every_pixel(data, reference):
    """Check that snap and pad-mode grids cover every pixel when step <= patch."""
    policies = (None, *PAD_MODES)
    geom = data.draw(reference.geometries(channels=False, policies=policies,
                                          max_step="patch"))
    grid = PatchGrid(geom.spatial_shape, geom.patch_size, **geom.grid_kwargs)
    coverage = reference.coverage(geom.spatial_shape, geom.patch_size, grid.origins())
    assert coverage.min() >= 1


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_origins_are_unique_and_sorted_in_c_order(data, reference):
    """Check that origins() has no duplicates and is lexicographically increasing."""
    geom = data.draw(reference.geometries(channels=False))
    grid = PatchGrid(geom.spatial_shape, geom.patch_size, **geom.grid_kwargs)
    origins = grid.origins()
    as_tuples = [tuple(o) for o in origins.tolist()]
    assert as_tuples == sorted(set(as_tuples))


def test_grid_example_by_hand():
    """Check a 10x11 image, patch 4, step 3 against origins worked out by hand."""
    grid = PatchGrid((10, 11), 4, step=3)
    np.testing.assert_array_equal(grid.axis_origins[0], [0, 3, 6])
    np.testing.assert_array_equal(grid.axis_origins[1], [0, 3, 6, 7])
    assert grid.grid_shape == (3, 4)
    assert grid.n_patches == 12
    np.testing.assert_array_equal(grid.origins()[:5], [[0, 0], [0, 3], [0, 6], [0, 7],
                                                       [3, 0]])


def test_offset_adds_a_first_patch_at_zero():
    """Check that offset > 0 prepends a patch at 0 with snap and not with 'valid'."""
    snap = PatchGrid((10,), 3, step=3, offset=2)
    valid = PatchGrid((10,), 3, step=3, offset=2, padding="valid")
    np.testing.assert_array_equal(snap.axis_origins[0], [0, 2, 5, 7])
    np.testing.assert_array_equal(valid.axis_origins[0], [2, 5])
    assert (snap.n_patches, valid.n_patches) == (4, 2)


def test_valid_drops_remainder():
    """Check that 'valid' keeps range(offset, size - patch + 1, step) only."""
    grid = PatchGrid((11, 7), (3, 2), step=(4, 2), padding="valid")
    np.testing.assert_array_equal(grid.axis_origins[0], [0, 4, 8])
    np.testing.assert_array_equal(grid.axis_origins[1], [0, 2, 4])
    assert grid.grid_shape == (3, 3)


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize(("shape", "patch"), [((7,), 3), ((6, 5), (3, 2)),
                                              ((4, 5, 3), (2, 3, 1))])
def test_pad_mode_geometry(mode, shape, patch):
    """Check pad_width, padded_shape and that crop undoes np.pad."""
    grid = PatchGrid(shape, patch, padding=mode)
    patch = (patch,) * len(shape) if isinstance(patch, int) else patch
    assert grid.pad_width == tuple((p - 1, p - 1) for p in patch)
    assert grid.padded_shape == tuple(s + 2 * (p - 1) for s, p in zip(shape, patch,
                                                                      strict=True))
    image = np.arange(math.prod(shape), dtype=float).reshape(shape)
    padded = np.pad(image, grid.pad_width, mode=mode)
    assert padded.shape == grid.padded_shape
    np.testing.assert_array_equal(padded[grid.crop], image)
    origins = grid.origins()
    np.testing.assert_array_equal(origins.min(axis=0), [1 - p for p in patch])
    np.testing.assert_array_equal(origins.max(axis=0), [s - 1 for s in shape])


@pytest.mark.parametrize("padding", [None, "valid"])
def test_no_padding_geometry(padding):
    """Check that None and 'valid' neither pad nor crop."""
    grid = PatchGrid((6, 5), 2, padding=padding)
    assert grid.pad_width == ((0, 0), (0, 0))
    assert grid.padded_shape == (6, 5)
    image = np.ones((6, 5))
    assert image[grid.crop].shape == (6, 5)


def test_pad_mode_origins_start_in_padding():
    """Check that pad-mode origins are in image coordinates and start at 1 - patch."""
    grid = PatchGrid((5,), 3, step=2, padding="reflect")
    # Canvas of 5 + 2 + 2 = 9: regular origins 0, 2, 4, 6; last canvas origin 6.
    np.testing.assert_array_equal(grid.axis_origins[0], [0, 2, 4, 6])
    np.testing.assert_array_equal(grid.origins()[:, 0], [-2, 0, 2, 4])


def test_grid_broadcasts_ints_and_accepts_numpy_integers():
    """Check that int arguments broadcast and numpy integers are accepted."""
    grid = PatchGrid((6, 7, 8), np.int64(2), step=np.int32(3), offset=1)
    assert grid.patch_size == (2, 2, 2)
    assert grid.step == (3, 3, 3)
    assert grid.offset == (1, 1, 1)
    assert grid.ndim == 3
    assert grid.image_shape == (6, 7, 8)
    assert grid.padding is None


def test_grid_is_immutable():
    """Check that the geometry cannot be changed after construction."""
    grid = PatchGrid((6, 6), 2)
    with pytest.raises((AttributeError, dataclasses.FrozenInstanceError)):
        grid.step = (3, 3)
    assert grid.step == (1, 1)


@pytest.mark.parametrize(("shape", "patch", "parts"), [
    ((4, 4), 5, ["patch_size", "(5, 5)", "(4, 4)"]),
    ((8, 3), (2, 4), ["patch_size", "(2, 4)", "(8, 3)"]),
    ((6,), 7, ["patch_size", "7", "6"]),
])
def test_patch_larger_than_image_raises(shape, patch, parts, reference):
    """Check that a patch larger than the image raises a ValueError naming both."""
    with pytest.raises(ValueError, match=reference.mentions(*parts)):
        PatchGrid(shape, patch)


@pytest.mark.parametrize("name", ["patch_size", "step"])
@pytest.mark.parametrize("value", [0, -1, (2, 0)])
def test_non_positive_sizes_raise(name, value, reference):
    """Check that patch_size or step <= 0 raises a ValueError naming the value."""
    kwargs = {"patch_size": 2, "step": 1, name: value}
    with pytest.raises(ValueError, match=reference.mentions(name, str(value))):
        PatchGrid((6, 6), kwargs.pop("patch_size"), **kwargs)


@pytest.mark.parametrize("name", ["patch_size", "step", "offset"])
@pytest.mark.parametrize("value", [1.5, "3", (2, 1.5), None])
def test_non_integer_sizes_raise_type_error(name, value, reference):
    """Check that non-integer patch_size, step or offset raise a TypeError naming it."""
    kwargs = {"patch_size": 2, "step": 1, "offset": 0, name: value}
    with pytest.raises(TypeError, match=reference.mentions(name, repr(value))):
        PatchGrid((6, 6), kwargs.pop("patch_size"), **kwargs)


@pytest.mark.parametrize(("name", "value"), [
    ("patch_size", (2, 2, 2)), ("step", (1, 1, 1)), ("offset", (0,)),
])
def test_wrong_tuple_length_raises(name, value, reference):
    """Check that a tuple with the wrong number of axes raises naming both counts."""
    kwargs = {"patch_size": 2, "step": 1, "offset": 0, name: value}
    pattern = reference.mentions(name, str(len(value)), "2")
    with pytest.raises(ValueError, match=pattern):
        PatchGrid((6, 6), kwargs.pop("patch_size"), **kwargs)


@pytest.mark.parametrize(("padding", "offset"), [(None, 5), ("valid", (0, 6)),
                                                 ("reflect", 8), (None, -1)])
def test_offset_out_of_range_raises(padding, offset, reference):
    """Check that an offset leaving no room for a patch raises naming the offset."""
    with pytest.raises(ValueError, match=reference.mentions("offset")):
        PatchGrid((6, 6), 2, offset=offset, padding=padding)


@pytest.mark.parametrize("padding", ["same", "REFLECT", "mean", ""])
def test_unknown_padding_raises(padding, reference):
    """Check that an unknown padding raises a ValueError naming it and the options."""
    with pytest.raises(ValueError, match=reference.mentions(repr(padding), "valid",
                                                            "reflect")):
        PatchGrid((6, 6), 2, padding=padding)
