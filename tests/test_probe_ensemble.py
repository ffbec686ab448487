"""Frozen-embedding probes (cached backbone features + heads) and the ensemble plugin."""

from __future__ import annotations

import numpy as np
import pytest

from cxrbench.plugins import conformance
from cxrbench.plugins.contract import ImageSet, PluginError
from cxrbench.plugins.embeddings import BackboneExtractor
from cxrbench.plugins.ensemble import _val_logloss_weights, adapt_images, member_shape
from cxrbench.plugins.features import ExtractionStats, extract_cached
from cxrbench.plugins.registry import create_model

# A small random-init backbone keeps these tests offline and fast; the ImageNet weights
# themselves are the weights tests' business.
SMALL = {"backbone": "MobileNetV2", "alpha": 0.35, "weights": None, "input_size": 32,
         "cv_folds": 2, "C": (1e-3, 1e-1)}


def data(size: int = 32) -> conformance.CheckData:
    return conformance.make_check_data(size, 1, n_train=40, n_val=16, n_test=12)


# ------------------------------------------------------------------------------ the extractor
def test_cache_key_names_the_weights_not_their_path():
    a = BackboneExtractor(backbone="X", weights_sha256="abc", weights_path="/one/x.h5")
    b = BackboneExtractor(backbone="X", weights_sha256="abc", weights_path="/two/x.h5")
    c = BackboneExtractor(backbone="X", weights_sha256="def", weights_path="/one/x.h5")
    assert a.cache_key(224, 1) == b.cache_key(224, 1)
    assert a.cache_key(224, 1) != c.cache_key(224, 1) != a.cache_key(128, 1)
    assert "weights_path" not in a.spec(224, 1)["params"]
    assert not BackboneExtractor.parallel


@pytest.mark.slow  # builds a Keras backbone
def test_embeddings_are_computed_once_and_read_back(tmp_path):
    d = data()
    train = ImageSet(d.train.images, d.train.labels, d.train.ids, d.train.content_hashes,
                     d.train.groups, cache_dir=tmp_path)
    extractor = BackboneExtractor(backbone="MobileNetV2", alpha=0.35)
    first, second = ExtractionStats(), ExtractionStats()
    a = extract_cached(extractor, train, stats=first)
    b = extract_cached(extractor, train, stats=second)
    assert a.shape == (40, 1280) and np.array_equal(a, b)
    assert (first.misses, second.hits, second.misses) == (40, 40, 0)


# ------------------------------------------------------------------------------ probe heads
@pytest.mark.slow  # builds a Keras backbone
@pytest.mark.parametrize("head", ["logreg", "linear_svm", "xgboost"])
def test_each_head_fits_and_records_its_choice(head):
    d = data()
    params = dict(SMALL, head=head, n_estimators=30)
    model = create_model("probe", **params).fit(d.train, d.val)
    p = model.predict_proba(d.test.without_labels())
    assert p.shape == (12,) and np.all((p >= 0) & (p <= 1))
    info = model.fit_info_
    assert info["head"] == head and info["n_features"] == 1280
    assert info["weights_source"] == "random" and info["weights_sha256"] is None
    if head == "xgboost":
        assert info["early_stopping"] == "val logloss" and info["n_trees"] >= 1
    else:
        assert info["C"] in (1e-3, 1e-1) and len(info["grid"]) == 2
        assert (model.platt_ is not None) == (head == "linear_svm")


@pytest.mark.slow  # builds a Keras backbone
def test_seeds_reuse_the_cached_embeddings():
    d = data()
    create_model("probe", seed=0, **SMALL).fit(d.train, d.val)
    again = create_model("probe", seed=1, **SMALL).fit(d.train, d.val)
    assert again.fit_info_["features"]["cache_misses"] == 0
    assert again.fit_info_["features"]["cache_hits"] == len(d.train)


@pytest.mark.slow  # builds a Keras backbone
def test_standardised_images_get_embeddings_of_their_own():
    d = data()
    plain = create_model("probe", **SMALL).fit(d.train, d.val)
    clahe = create_model("probe", intensity="clahe", **SMALL).fit(d.train, d.val)
    assert plain.fit_info_["features"]["cache_misses"] == len(d.train)
    assert clahe.fit_info_["features"]["cache_misses"] == len(d.train)


# ------------------------------------------------------------------------------ ensemble
def test_adapt_images_resizes_under_new_hashes_and_keeps_views_otherwise():
    d = data(64)
    same = adapt_images(d.train, 64, 1)
    assert same is d.train
    small = adapt_images(d.train, 32, 3)
    assert small.images.shape == (40, 32, 32, 3)
    assert not set(small.content_hashes) & set(d.train.content_hashes)
    assert np.array_equal(adapt_images(d.train, 64, 3).content_hashes, d.train.content_hashes)


def test_member_shape_follows_the_members_own_input_size():
    assert member_shape("hog_svm") == (128, 1)
    assert member_shape("transfer_mobilenetv2") == (128, 3)
    assert member_shape("probe", {"input_size": 96}) == (96, 1)


def test_ensemble_averages_members_and_reports_their_cost():
    d = data(32)
    model = create_model("ensemble", members=("pixels_logreg", "majority"), input_size=32)
    model.fit(d.train, d.val)
    info = model.fit_info_
    assert [m["model"] for m in info["members"]] == ["pixels_logreg", "majority"]
    assert info["weights"] == [0.5, 0.5]
    assert info["member_fit_s_sum"] == pytest.approx(sum(m["fit_s"] for m in info["members"]),
                                                     abs=2e-3)
    test = d.test.without_labels()
    members = [m.predict_proba(adapt_images(test, *member_shape(m.card.name)))
               for m in model.members_]
    assert np.allclose(model.predict_proba(test), np.mean(members, axis=0))


def test_members_are_checked():
    d = data(32)
    for members in (("pixels_logreg",), ("majority", "majority"), ("ensemble", "majority")):
        with pytest.raises(PluginError, match="members|itself"):
            create_model("ensemble", members=members, input_size=32).fit(d.train, d.val)


def test_val_logloss_weights_favour_the_better_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(float)
    good = np.clip(y * 0.8 + 0.1 + rng.normal(0, 0.05, 400), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, 400)
    w = _val_logloss_weights(np.column_stack([good, noise]), y)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.8
