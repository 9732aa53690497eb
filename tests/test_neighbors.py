"""Tests for the similar-patch search (skpatch._neighbors)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from skpatch import (
    PatchGrid,
    extract_patches,
    iter_similar_patches,
    search_similar_patches,
)
from skpatch._neighbors import Claims, WindowSearch


def brute_force_search(image, patch_size, n_neighbors, window, references, guide):
    """Every candidate of the shifted window compared by hand, sorted by
    (distance, C-order position): the documented contract, written with loops."""
    spatial = guide.shape[: len(patch_size)]
    guide = guide.reshape(*spatial, -1)
    n_positions = [s - p + 1 for s, p in zip(spatial, patch_size, strict=True)]
    neighbors, distances = [], []
    for reference in references:
        axes = []
        for r, n, w in zip(reference, n_positions, window, strict=True):
            width = min(w, n)
            start = min(max(r - w // 2, 0), n - width)
            axes.append(range(start, start + width))
        ref_patch = guide[
            tuple(slice(r, r + p) for r, p in zip(reference, patch_size, strict=True))
        ]
        found = []
        for candidate in itertools.product(*axes):
            patch = guide[
                tuple(
                    slice(c, c + p) for c, p in zip(candidate, patch_size, strict=True)
                )
            ]
            found.append((float(((patch - ref_patch) ** 2).sum()), candidate))
        found.sort()
        neighbors.append([c for _, c in found[:n_neighbors]])
        distances.append([d for d, _ in found[:n_neighbors]])
    return np.array(neighbors), np.array(distances)


@st.composite
def search_cases(draw):
    ndim = draw(st.integers(1, 3))
    max_size = {1: 14, 2: 9, 3: 6}[ndim]
    spatial = tuple(draw(st.integers(1, max_size)) for _ in range(ndim))
    patch = tuple(draw(st.integers(1, s)) for s in spatial)
    window = tuple(draw(st.integers(1, 7)) for _ in range(ndim))
    step = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    n_channels = draw(st.sampled_from([None, 1, 3]))
    n_candidates = np.prod(
        [min(w, s - p + 1) for w, s, p in zip(window, spatial, patch, strict=True)]
    )
    n_neighbors = draw(st.integers(1, int(n_candidates)))
    seed = draw(st.integers(0, 2**16))
    # Small integers: exact sums, and many ties to exercise the tie rule.
    levels = draw(st.sampled_from([2, 4, 1000]))
    return spatial, patch, window, step, n_channels, n_neighbors, seed, levels


@settings(max_examples=150, deadline=None)
@given(case=search_cases())
def test_search_matches_brute_force(case):
    """Check that the search equals a brute-force search, ties and borders included."""
    spatial, patch, window, step, n_channels, n_neighbors, seed, levels = case
    rng = np.random.default_rng(seed)
    shape = spatial if n_channels is None else (*spatial, n_channels)
    image = rng.integers(0, levels, shape).astype(np.float64)
    channel_axis = None if n_channels is None else -1
    neighbors, distances = search_similar_patches(
        image,
        patch,
        n_neighbors=n_neighbors,
        search_window=window,
        step=step,
        channel_axis=channel_axis,
    )
    references = PatchGrid(spatial, patch, step=step).origins()
    expected, expected_distances = brute_force_search(
        image, patch, n_neighbors, window, references, image
    )
    assert_array_equal(neighbors, expected)
    assert_array_equal(distances, expected_distances)


@settings(max_examples=40, deadline=None)
@given(case=search_cases(), guide_channels=st.sampled_from([None, 2]))
def test_search_on_guide_returns_image_patches(case, guide_channels):
    """Check that distances come from the guide and patches from the image."""
    spatial, patch, window, step, n_channels, n_neighbors, seed, levels = case
    rng = np.random.default_rng(seed)
    channel_axis = None if n_channels is None else -1
    image = rng.random(spatial if n_channels is None else (*spatial, n_channels))
    if channel_axis is None:
        guide_channels = None
    guide_shape = spatial if guide_channels is None else (*spatial, guide_channels)
    guide = rng.integers(0, levels, guide_shape).astype(np.float64)
    neighbors, distances, patches = search_similar_patches(
        image,
        patch,
        n_neighbors=n_neighbors,
        search_window=window,
        step=step,
        guide=guide,
        channel_axis=channel_axis,
        return_patches=True,
    )
    references = PatchGrid(spatial, patch, step=step).origins()
    expected, expected_distances = brute_force_search(
        image, patch, n_neighbors, window, references, guide
    )
    assert_array_equal(neighbors, expected)
    assert_array_equal(distances, expected_distances)
    cut = extract_patches(
        image,
        patch,
        origins=neighbors.reshape(-1, len(spatial)),
        channel_axis=channel_axis,
    )
    assert_array_equal(patches, cut.reshape(patches.shape))


def test_search_float_distances_match_brute_force():
    """Check the search on random floats against the brute force (no ties)."""
    rng = np.random.default_rng(1)
    image = rng.random((23, 19, 3))
    references = rng.integers(0, [19, 15], size=(30, 2))
    neighbors, distances = search_similar_patches(
        image,
        5,
        n_neighbors=9,
        search_window=(7, 9),
        origins=references,
        channel_axis=-1,
    )
    expected, expected_distances = brute_force_search(
        image, (5, 5), 9, (7, 9), references, image
    )
    assert_array_equal(neighbors, expected)
    assert_allclose(distances, expected_distances, rtol=1e-12)


def test_window_is_shifted_at_the_border():
    """Check that the window keeps its size at the edge, shifted into the image."""
    image = np.random.default_rng(2).random((30, 30))
    neighbors, _ = search_similar_patches(
        image, 4, n_neighbors=25, search_window=5, origins=[[0, 0], [26, 13]]
    )
    # Corner reference: candidates 0..4 on both axes, not -2..2 clipped to 0..2.
    assert {tuple(o) for o in neighbors[0]} == set(
        itertools.product(range(5), range(5))
    )
    # Last origin (26): the window is 22..26 on that axis, and centred on the other.
    assert {tuple(o) for o in neighbors[1]} == set(
        itertools.product(range(22, 27), range(11, 16))
    )


def test_window_larger_than_image_holds_every_origin():
    """Check that an image smaller than the window makes every patch a candidate."""
    image = np.random.default_rng(3).random((6, 7))
    neighbors, _ = search_similar_patches(
        image, 3, n_neighbors=20, search_window=21, step=2
    )
    assert neighbors.shape == (9, 20, 2)
    assert all(len({tuple(o) for o in group}) == 20 for group in neighbors)
    with pytest.raises(ValueError, match="between 1 and the number of candidates"):
        search_similar_patches(image, 3, n_neighbors=21, search_window=21)


def test_ties_go_to_the_first_origin_in_c_order():
    """Check that on a constant image the nearest are the first candidates."""
    image = np.ones((10, 10))
    neighbors, distances = search_similar_patches(
        image, 3, n_neighbors=4, search_window=3, origins=[[4, 4]]
    )
    assert neighbors[0].tolist() == [[3, 3], [3, 4], [3, 5], [4, 3]]
    assert_array_equal(distances, 0)


def test_search_is_deterministic_and_includes_the_reference():
    """Check that two runs agree and that the nearest patch is at distance 0."""
    image = np.random.default_rng(4).random((40, 30))
    first = search_similar_patches(image, 5, n_neighbors=10, step=3)
    second = search_similar_patches(image, 5, n_neighbors=10, step=3)
    assert_array_equal(first[0], second[0])
    assert_array_equal(first[1], second[1])
    references = PatchGrid(image.shape, 5, step=3).origins()
    assert_array_equal(first[0][:, 0], references)
    assert_array_equal(first[1][:, 0], 0)
    assert np.all(np.diff(first[1], axis=1) >= 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, bool])
def test_dtypes(dtype):
    """Check that float32 is searched as it is and patches keep the image dtype."""
    rng = np.random.default_rng(5)
    image = (rng.random((16, 17)) * 200).astype(dtype)
    neighbors, distances, patches = search_similar_patches(
        image, 4, n_neighbors=6, search_window=5, step=4, return_patches=True
    )
    assert distances.dtype == np.float64
    assert patches.dtype == image.dtype
    assert neighbors.dtype == np.intp
    _, expected_distances = brute_force_search(
        image,
        (4, 4),
        6,
        (5, 5),
        PatchGrid(image.shape, 4, step=4).origins(),
        image.astype(np.float64),
    )
    assert_allclose(distances, expected_distances, rtol=1e-6)


def test_iter_similar_patches_matches_search():
    """Check that the batches concatenate to the one-shot search."""
    rng = np.random.default_rng(6)
    image = rng.random((20, 21, 2))
    neighbors, distances, patches = search_similar_patches(
        image,
        3,
        n_neighbors=5,
        search_window=7,
        step=2,
        channel_axis=-1,
        return_patches=True,
    )
    batches = list(
        iter_similar_patches(
            image,
            3,
            n_neighbors=5,
            search_window=7,
            step=2,
            channel_axis=-1,
            batch_size=7,
        )
    )
    assert [len(b[0]) for b in batches[:-1]] == [7] * (len(batches) - 1)
    assert_array_equal(
        np.concatenate([b[0] for b in batches]),
        PatchGrid((20, 21), 3, step=2).origins(),
    )
    assert_array_equal(np.concatenate([b[1] for b in batches]), neighbors)
    assert_array_equal(np.concatenate([b[2] for b in batches]), distances)
    assert_array_equal(np.concatenate([b[3] for b in batches]), patches)


def test_channel_axis_first():
    """Check that a channel axis anywhere gives the channels-last search."""
    rng = np.random.default_rng(7)
    image = rng.random((3, 15, 16))
    first = search_similar_patches(
        image, 4, n_neighbors=5, search_window=5, channel_axis=0, return_patches=True
    )
    last = search_similar_patches(
        np.moveaxis(image, 0, -1),
        4,
        n_neighbors=5,
        search_window=5,
        channel_axis=-1,
        return_patches=True,
    )
    for a, b in zip(first, last, strict=True):
        assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_neighbors": 0}, ValueError, "n_neighbors must be between 1"),
        ({"n_neighbors": 2.5}, TypeError, "n_neighbors must be an int"),
        ({"search_window": 0}, ValueError, "search_window must be >= 1"),
        ({"search_window": (3, 3, 3)}, ValueError, "search_window has 3 axes"),
        ({"step": 0}, ValueError, "step must be >= 1"),
        ({"origins": [[0, 9]]}, ValueError, "origins put a patch outside"),
        ({"origins": [[0.5, 1]]}, TypeError, "origins must be integers"),
        ({"guide": np.zeros((10, 11))}, ValueError, "guide must have the image's"),
        ({"guide": np.zeros((12, 12, 2))}, ValueError, "guide must have the image's"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    """Check that bad arguments raise errors that say what was expected."""
    image = np.zeros((12, 12))
    kwargs = {"n_neighbors": 3, "search_window": 5, **kwargs}
    with pytest.raises(error, match=match):
        search_similar_patches(image, 4, **kwargs)


def test_bad_images():
    """Check NaN, a patch larger than the image, and a non-numeric image."""
    image = np.zeros((8, 8))
    image[2, 3] = np.nan
    with pytest.raises(ValueError, match="image must be finite"):
        search_similar_patches(image, 3, n_neighbors=2)
    with pytest.raises(ValueError, match="guide must be finite"):
        search_similar_patches(np.zeros((8, 8)), 3, n_neighbors=2, guide=image)
    with pytest.raises(ValueError, match=r"patch_size .* is larger than"):
        search_similar_patches(np.zeros((4, 4)), 5, n_neighbors=1)
    with pytest.raises(TypeError, match="must hold real numbers"):
        search_similar_patches(np.array([["a", "b"]]), 1, n_neighbors=1)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(iter_similar_patches(np.zeros((8, 8)), 3, n_neighbors=2, batch_size=0))


@settings(max_examples=100, deadline=None)
@given(
    case=search_cases(),
    block=st.integers(1, 6),
    shift=st.integers(0, 5),
    batch=st.integers(1, 40),
)
def test_claims_follow_the_paste_rule(case, block, shift, batch):
    """Check the references kept under claims against the rule written as a loop.

    In C order, a reference is skipped if an earlier kept reference of its
    claim block has it among its neighbours; batches (any size) do not change
    which are kept, nor their neighbours.
    """
    spatial, patch, window, step, n_channels, n_neighbors, seed, levels = case
    rng = np.random.default_rng(seed)
    shape = (*spatial, 1 if n_channels is None else n_channels)
    image = rng.integers(0, levels, shape).astype(np.float64)
    references = PatchGrid(spatial, patch, step=step).origins()
    expected_neighbors, _ = brute_force_search(
        image, patch, n_neighbors, window, references, image
    )

    def block_of(origin):
        return tuple((o + shift) // block for o in origin)

    claimed, kept = set(), []
    for origin, neighbors in zip(
        map(tuple, references), expected_neighbors, strict=True
    ):
        if origin in claimed:
            continue
        kept.append(origin)
        claimed |= {
            tuple(n) for n in neighbors.tolist() if block_of(n) == block_of(origin)
        }
    search = WindowSearch(image, patch, window, n_neighbors)
    claims = Claims(spatial, (shift,) * len(spatial), block)
    positions = search.positions_of(references)
    got, got_neighbors = [], []
    for start in range(0, len(positions), batch):
        members, _, keep = search.nearest(
            positions[start : start + batch], None, claims
        )
        got.extend(map(tuple, references[start : start + batch][keep].tolist()))
        got_neighbors.extend(search.origins_of(members))
    assert got == kept
    index = [list(map(tuple, references.tolist())).index(o) for o in kept]
    assert_array_equal(
        np.array(got_neighbors).reshape(-1), expected_neighbors[index].reshape(-1)
    )
