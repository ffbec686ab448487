"""Per-image inference latency of every deep plugin, beside plain ``model.predict``.

For each registered Keras plugin (subclasses of ``KerasPlugin``) at its card's input size:

- ``plugin``: ``plugin.predict_proba`` on an ImageSet of uint8 images (what the harness times:
  batches read from the array, converted and preprocessed, then ``predict_on_batch``);
- ``keras_predict``: ``model.predict`` on the same images already converted to float32 and
  preprocessed, the obvious alternative (it skips the conversion but pays Keras' per-call
  data-adapter and callback setup);

each at batch 1 (one image per call: interactive use) and batch 32. Latency does not depend on
the weights' values, so models are built untrained (no training time in a benchmark) and with
random weights (no weights file needed). Run:

    pytest benchmarks/test_inference_latency.py --benchmark-group-by=param:name
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cxrbench.plugins.contract import ImageSet, Plugin
from cxrbench.plugins.keras_common import KerasPlugin
from cxrbench.plugins.registry import create_model, get_model_class, list_models

pytest.importorskip("keras")

DEEP = [name for name in list_models() if issubclass(get_model_class(name), KerasPlugin)]
_built: dict[str, Plugin] = {}


def untrained(name: str) -> Plugin:
    """The plugin with its model built but not trained, ready for ``predict_proba``."""
    if name not in _built:
        from cxrbench.plugins.keras_common import set_seed

        params = {"weights": None} if "weights" in create_model(name).get_params() else {}
        plugin: Any = create_model(name, **params)
        set_seed(0)
        size, channels = int(plugin.input_size), plugin.card.channels
        plugin.fit_info_ = {}
        plugin.model_ = plugin._build((size, size, channels), 1)
        plugin.is_fitted_ = True
        _built[name] = plugin
    return _built[name]


def images(plugin: Plugin, n: int) -> ImageSet:
    size, channels = plugin.card.input_size, plugin.card.channels
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)
    ids = np.array([f"i{i}" for i in range(n)])
    return ImageSet(pixels, None, ids, ids, ids)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("method", ["plugin", "keras_predict"])
@pytest.mark.parametrize("name", DEEP)
def test_inference_latency(benchmark: Any, name: str, method: str, batch: int) -> None:
    from cxrbench.plugins.keras_common import backend_info, load_batch

    plugin: Any = untrained(name)
    data = images(plugin, batch)
    if method == "plugin":
        def run() -> np.ndarray:
            return plugin.predict_proba(data)
    else:
        x = load_batch(data.images, np.arange(batch), plugin.card.channels,
                       plugin._preprocess())

        def run() -> np.ndarray:
            return plugin.model_.predict(x, batch_size=batch, verbose=0)

    out = benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=2)
    assert np.asarray(out).reshape(-1).shape == (batch,)
    benchmark.extra_info.update(images_per_call=batch, input_size=plugin.card.input_size,
                                **backend_info())
    if benchmark.stats is not None:
        benchmark.extra_info["ms_per_image"] = 1000 * benchmark.stats.stats.median / batch
