"""Real semantics: the offline pipeline (bundled ImageNet EfficientNet-Lite0) on real CC0 garment photos."""

import numpy as np

from core.photos import load_image

from .conftest import real_photos


def test_t_shirt_queries_find_t_shirts_not_shoes(offline_settings):
    from search.pipeline.registry import get_pipeline

    pipeline = get_pipeline()
    categories = {"T-Shirt": 6, "Shoes": 6, "Dress": 3, "Pants": 3}
    paths, labels = [], []
    for category, count in categories.items():
        for path in real_photos(category, count):
            paths.append(path)
            labels.append(category)
    results = pipeline.process([load_image(path, max_side=pipeline.max_side) for path in paths])
    vectors = np.stack([garments[0].embedding for garments in results])
    labels = np.array(labels)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)

    t_shirts, shoes = np.flatnonzero(labels == "T-Shirt"), np.flatnonzero(labels == "Shoes")
    top5 = np.argsort(-similarity[t_shirts], axis=1)[:, :5]
    # chance would be 5/17 T-shirts and 6/17 shoes among the 5 nearest
    assert (labels[top5] == "T-Shirt").mean() >= 0.4
    assert (labels[top5] == "Shoes").mean() <= 0.2
    within = similarity[np.ix_(t_shirts, t_shirts)]
    to_shoes = similarity[np.ix_(t_shirts, shoes)].mean()
    assert within[np.isfinite(within)].mean() > to_shoes + 0.05
