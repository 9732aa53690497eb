"""Common estimator checks: scikit-learn's data-independent ones, then skpatch's own.

scikit-learn's generic suite feeds 2-D tables, so for estimators taking batches of
images (3-D, 4-D, 5-D arrays) ``parametrize_with_checks`` would run one check and
skip the rest. The data-independent checks are called directly here; what the
generic suite would test with data (pickling, idempotence, input not mutated,
dtype preservation, parameter validation in every method) is re-checked below
on image data.
"""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_feature_names_out_error,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_param_validation,
    check_parameters_default_constructible,
    check_set_params,
    check_transformers_unfitted,
    check_valid_tag_types,
)

import skpatch
import skpatch.sklearn
from skpatch import PatchExtractor, PatchReconstructor


def _images(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(shape).astype(dtype)


def _patch_rows(n_images, image_shape, patch_size, step, seed=0):
    images = _images((n_images, *image_shape), seed=seed)
    return PatchExtractor(patch_size, step=step).fit(images).transform(images)


def estimator_cases():
    """Return (id, estimator, input data) for every skpatch estimator.

    Other estimators join the common checks by being added here.
    """
    cases = [
        ("PatchExtractor-gray", PatchExtractor((4, 4), step=2), _images((3, 12, 13))),
        (
            "PatchExtractor-colour",
            PatchExtractor(3, step=2, padding="reflect", weights="hann"),
            _images((2, 10, 11, 3), seed=1),
        ),
        (
            "PatchExtractor-volume",
            PatchExtractor((3, 3, 3), step=2, aggregate="median"),
            _images((2, 6, 7, 8), seed=2),
        ),
        (
            "PatchReconstructor",
            PatchReconstructor((12, 13), (4, 4), step=2),
            _patch_rows(3, (12, 13), (4, 4), 2, seed=3),
        ),
        (
            "sklearn.PatchExtractor",
            skpatch.sklearn.PatchExtractor(
                patch_size=(4, 4), max_patches=5, random_state=0
            ),
            _images((3, 12, 13), seed=4),
        ),
    ]
    if hasattr(skpatch, "PatchDenoiser"):
        cases.append(
            (
                "PatchDenoiser",
                skpatch.PatchDenoiser(PCA(n_components=4)),
                _images((3, 16, 17), seed=5),
            )
        )
    if hasattr(skpatch, "NonLocalBayes"):
        cases.extend(
            [
                (
                    "NonLocalBayes-gray",
                    skpatch.NonLocalBayes(noise_sigma=0.1),
                    _images((2, 14, 15), seed=6),
                ),
                (
                    "NonLocalBayes-colour",
                    skpatch.NonLocalBayes(noise_sigma=0.1, channel_axis=-1),
                    _images((2, 12, 13, 3), seed=7),
                ),
            ]
        )
    return cases


CASES = estimator_cases()
IDS = [case[0] for case in CASES]
ESTIMATORS = [case[1] for case in CASES]


def _output(estimator, X):
    method = getattr(estimator, "transform", None) or estimator.predict
    return method(X)


def _fitted(estimator, X):
    return clone(estimator).fit(X)


@pytest.mark.parametrize(
    "check",
    [
        check_no_attributes_set_in_init,
        check_get_params_invariance,
        check_set_params,
        check_estimator_repr,
        check_parameters_default_constructible,
        check_estimator_cloneable,
        check_mixin_order,
        check_valid_tag_types,
        check_estimator_tags_renamed,
        check_do_not_raise_errors_in_init_or_set_params,
        check_param_validation,
    ],
    ids=lambda check: check.__name__,
)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_sklearn_data_independent_checks(estimator, check):
    """Check that each estimator passes scikit-learn's data-independent checks."""
    check(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_sklearn_unfitted_checks(estimator):
    """Check that unfitted estimators refuse transform and get_feature_names_out."""
    tags = get_tags(estimator)
    if not tags.requires_fit:
        pytest.skip("stateless estimator: transform works without fit")
    if hasattr(estimator, "transform"):
        check_transformers_unfitted(type(estimator).__name__, clone(estimator))
    if hasattr(estimator, "get_feature_names_out"):
        check_get_feature_names_out_error(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_unfitted_estimator_raises_not_fitted_on_real_input(name, estimator, X):
    """Check that transform on valid input before fit raises NotFittedError."""
    if not get_tags(estimator).requires_fit:
        pytest.skip("stateless estimator: transform works without fit")
    with pytest.raises(NotFittedError):
        _output(clone(estimator), X)


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_fit_returns_self(name, estimator, X):
    """Check that fit returns the estimator itself."""
    estimator = clone(estimator)
    assert estimator.fit(X) is estimator


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_pickle_round_trip_gives_same_output(name, estimator, X):
    """Check that a pickled and loaded fitted estimator gives the same output."""
    fitted = _fitted(estimator, X)
    loaded = pickle.loads(pickle.dumps(fitted))
    assert_array_equal(_output(loaded, X), _output(fitted, X))
    if hasattr(fitted, "inverse_transform"):
        Xt = _output(fitted, X)
        assert_array_equal(loaded.inverse_transform(Xt), fitted.inverse_transform(Xt))


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_fit_is_idempotent(name, estimator, X):
    """Check that fitting twice gives the same output as fitting once."""
    once = _fitted(estimator, X)
    twice = _fitted(estimator, X).fit(X)
    assert_allclose(_output(twice, X), _output(once, X))


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_input_not_mutated(name, estimator, X):
    """Check that fit, transform and inverse_transform leave their input intact."""
    original = X.copy()
    fitted = _fitted(estimator, X)
    Xt = _output(fitted, X)
    assert_array_equal(X, original)
    if hasattr(fitted, "inverse_transform"):
        Xt_original = np.array(Xt, copy=True)
        fitted.inverse_transform(Xt)
        assert_array_equal(Xt, Xt_original)


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_read_only_and_list_input(name, estimator, X):
    """Check that read-only, Fortran and nested-list input give the same output."""
    expected = _output(_fitted(estimator, X), X)
    read_only = X.copy()
    read_only.setflags(write=False)
    assert_allclose(_output(_fitted(estimator, read_only), read_only), expected)
    fortran = np.asfortranarray(X)
    assert_allclose(_output(_fitted(estimator, fortran), fortran), expected)
    as_list = X.tolist()
    assert_allclose(_output(_fitted(estimator, as_list), as_list), expected)


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_preserves_dtype_tag_is_truthful(name, estimator, X):
    """Check that every dtype in the preserves_dtype tag comes out of transform."""
    preserved = get_tags(estimator).transformer_tags.preserves_dtype
    assert "float64" in preserved
    for dtype in preserved:
        X_typed = X.astype(dtype)
        fitted = _fitted(estimator, X_typed)
        Xt = _output(fitted, X_typed)
        assert Xt.dtype == np.dtype(dtype)
        if hasattr(fitted, "inverse_transform"):
            assert fitted.inverse_transform(Xt).dtype == np.dtype(dtype)


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_float32_preserved_where_claimed(name, estimator, X):
    """Check that the image estimators claim, and keep, float32."""
    if name == "sklearn.PatchExtractor":
        pytest.skip("scikit-learn's PatchExtractor always returns float64")
    assert "float32" in get_tags(estimator).transformer_tags.preserves_dtype


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_clone_of_fitted_estimator_is_unfitted(name, estimator, X):
    """Check that clone keeps the parameters and drops the fitted state."""
    fitted = _fitted(estimator, X)
    cloned = clone(fitted)
    assert cloned.get_params().keys() == fitted.get_params().keys()
    assert repr(cloned) == repr(fitted)
    assert not [key for key in vars(cloned) if key.endswith("_")]
    if get_tags(estimator).requires_fit:
        with pytest.raises(NotFittedError):
            _output(cloned, X)


def _validated_params(estimator):
    return [
        name
        for name, constraints in estimator._parameter_constraints.items()
        if constraints != "no_validation"
    ]


@pytest.mark.parametrize(("name", "estimator", "X"), CASES, ids=IDS)
def test_invalid_parameter_raises_in_fit_and_transform(name, estimator, X):
    """Check that a bad parameter raises InvalidParameterError in every method."""
    bad = type("BadType", (), {})()
    fitted = _fitted(estimator, X)
    Xt = _output(fitted, X)
    for param in _validated_params(estimator):
        match = f"The '{param}' parameter of {type(estimator).__name__} must be"
        unfitted = clone(estimator).set_params(**{param: bad})
        with pytest.raises(InvalidParameterError, match=match):
            unfitted.fit(X)
        with pytest.raises(InvalidParameterError, match=match):
            unfitted.fit_transform(X)
        broken = pickle.loads(pickle.dumps(fitted)).set_params(**{param: bad})
        with pytest.raises(InvalidParameterError, match=match):
            _output(broken, X)
        if hasattr(broken, "inverse_transform"):
            with pytest.raises(InvalidParameterError, match=match):
                broken.inverse_transform(Xt)
