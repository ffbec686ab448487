"""Plugins that fail on purpose, for the fault-tolerance tests.

A module (not a test file), so that job processes and Dask workers can import it: the harness
passes each plugin's "fault_plugins:Class" to them in ``Job.plugin_source``. Spawned children
inherit the test process's ``sys.path`` (pytest puts tests/ on it); a ``cxrbench`` subprocess
needs ``PYTHONPATH=tests``. Importing the module registers the plugins; tests use
``registered()`` so that they leave the registry as they found it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator

import numpy as np

from cxrbench.plugins import registry
from cxrbench.plugins.contract import ImageSet, ModelCard, Plugin
from cxrbench.plugins.registry import register_model


def _card(name: str, description: str) -> ModelCard:
    return ModelCard(name=name, family="baseline", framework="numpy", description=description,
                     input_size=32, channels=1)


def _mean_intensity(images: ImageSet) -> np.ndarray:
    """A deterministic, image-dependent probability (streams the images in batches)."""
    out = [images.images[i:i + 256].mean(axis=(1, 2, 3)) / 255.0
           for i in range(0, len(images), 256)]
    return np.concatenate(out)


@register_model
class Raises(Plugin):
    card = _card("fault_raises", "Raises in fit.")

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        raise RuntimeError("fault_raises: deliberate failure in fit")

    def _predict(self, images: ImageSet) -> np.ndarray:
        raise AssertionError("unreachable")


@register_model
class ReturnsNaN(Plugin):
    card = _card("fault_nan", "Predicts NaN for every image.")

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.fit_info_ = {}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return np.full(len(images), np.nan)


@register_model
class Sleeps(Plugin):
    """Sleeps (or spins a core when ``busy``) for ``sleep_s`` in fit, then predicts brightness."""

    card = _card("fault_sleep", "Slow on purpose: sleeps or burns CPU in fit.")

    def __init__(self, *, sleep_s: float = 60.0, busy: bool = False, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.sleep_s = sleep_s
        self.busy = busy

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        end = time.monotonic() + self.sleep_s
        while time.monotonic() < end:
            if not self.busy:
                time.sleep(min(0.1, max(end - time.monotonic(), 0)))
        self.fit_info_ = {"slept_s": self.sleep_s}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return _mean_intensity(images)


@register_model
class Segfaults(Plugin):
    card = _card("fault_segfault", "Kills its own process with SIGSEGV in fit.")

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)

    def _predict(self, images: ImageSet) -> np.ndarray:
        raise AssertionError("unreachable")


@register_model
class OutOfMemory(Plugin):
    card = _card("fault_oom", "SIGKILLs its own process in fit, as the out-of-memory killer does.")

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def _predict(self, images: ImageSet) -> np.ndarray:
        raise AssertionError("unreachable")


@register_model
class KillsParent(Plugin):
    """SIGKILLs the process that started its job: on a Dask worker (jobs in children), the
    worker.

    Never run it with the inline or process executor: the parent would be the test run.
    """

    card = _card("fault_kill_parent", "Kills the process that started it (a Dask worker).")

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        import psutil

        parent = psutil.Process().parent()  # a forked job's parent is the fork server
        if parent is not None and "forkserver" in " ".join(parent.cmdline()):
            parent = parent.parent()
        assert parent is not None
        os.kill(parent.pid, signal.SIGKILL)
        time.sleep(30)

    def _predict(self, images: ImageSet) -> np.ndarray:
        raise AssertionError("unreachable")


@register_model
class DeepProbe(Plugin):
    """Says it wants an accelerator (so the Dask executor pins it to GPU workers) but only
    averages."""

    card = ModelCard(name="fault_deep_probe", family="cnn", framework="numpy",
                     description="A stand-in for a deep job, for resource-pinning tests.",
                     input_size=32, channels=1, accelerator=True)

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.fit_info_ = {}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return _mean_intensity(images)


@register_model
class ReportsProcess(Plugin):
    """Notes the process it fits in: an environment variable, and whether skops was imported
    before the job began (preloaded by the fork server)."""

    card = _card("fault_process", "Reports its job process in fit_info.")

    def _fit(self, train: ImageSet, val: ImageSet) -> None:
        self.fit_info_ = {"mark": os.environ.get("CXRBENCH_TEST_MARK"), "pid": os.getpid(),
                          "skops_preloaded": "skops.io" in sys.modules}

    def _predict(self, images: ImageSet) -> np.ndarray:
        return _mean_intensity(images)


PLUGINS = (Raises, ReturnsNaN, Sleeps, Segfaults, OutOfMemory, KillsParent, DeepProbe,
           ReportsProcess)


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """The fault plugins in the registry for the block, and gone after it."""
    for cls in PLUGINS:
        if cls.card.name not in registry.list_models(cls.card.name):
            register_model(cls)
    try:
        yield
    finally:
        for cls in PLUGINS:
            registry._registry.pop(cls.card.name, None)
            registry._sources.pop(cls.card.name, None)
