"""A small synthetic chest-X-ray-like data set, for tests and the offline demo.

Each image: dark background, a soft-tissue torso, two lung fields brighter than the background
and crossed by ribs, a bright mediastinum and spine, vessel-like texture and noise. Pneumonia
images add diffuse patchy opacities to one or both lungs, of varying extent and density (some
faint), so the classes are learnable but not trivially: HOG + SVM (64 px) reaches a test ROC AUC
of 0.75-0.94 on the default set depending on the seed, about 0.9-0.95 with 100 + 100 training
images per class; never 1.0. Patients (anatomy, exposure) vary; a patient's two images share
their anatomy.

Written in the Kaggle layout with Kaggle-style file names (``IM-0007-0001.jpeg``,
``NORMAL2-IM-0012-0001.jpeg``, ``person3_bacteria_11.jpeg``, ``person4_virus_12.jpeg``) and a
``SYNTHETIC.txt`` marker, so loaders report it as synthetic. Deterministic for a seed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from cxrbench.data.records import DataError

MARKER = "SYNTHETIC.txt"
_P_SECOND_IMAGE = 0.25  # share of patients with two images


def make_synthetic_dataset(
    root: str | Path,
    n_train: tuple[int, int] = (60, 60),
    n_test: tuple[int, int] = (20, 20),
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write ``root/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg``; counts are (normal, pneumonia)."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise DataError(f"{root} exists and is not empty; pick a new folder for the "
                            "synthetic data set")
        for split in ("train", "val", "test"):  # regenerate a previous synthetic set
            shutil.rmtree(root / split, ignore_errors=True)
    rng = np.random.default_rng(seed)
    grid = _Grid(size)
    counters = {"im": 1, "person": 1, "image": 1}
    for split, (n_normal, n_pneumonia) in (("train", n_train), ("test", n_test)):
        for label, n in ((0, n_normal), (1, n_pneumonia)):
            folder = root / split / ("PNEUMONIA" if label else "NORMAL")
            folder.mkdir(parents=True, exist_ok=True)
            for name, pixels in _patients(rng, grid, label, n, counters):
                Image.fromarray(pixels, mode="L").save(folder / name, quality=92)
    (root / MARKER).write_text(
        "Synthetic chest-X-ray-like images made by cxrbench.data.make_synthetic_dataset "
        f"(seed={seed}, size={size}, train={n_train}, test={n_test}).\n"
        "Not medical data: for tests and demos only; results on it mean nothing clinically.\n"
    )
    return root


class _Grid:
    def __init__(self, size: int) -> None:
        self.size = size
        ax = np.linspace(-1.0, 1.0, size)
        self.y, self.x = np.meshgrid(ax, ax, indexing="ij")


def _patients(rng: np.random.Generator, grid: _Grid, label: int, n: int,
              counters: dict[str, int]):
    """Yield ``(file name, uint8 image)``; some patients get two images."""
    made = 0
    while made < n:
        n_images = 2 if (n - made >= 2 and rng.random() < _P_SECOND_IMAGE) else 1
        anatomy = _anatomy(rng)
        if label:
            kind = "bacteria" if rng.random() < 0.65 else "virus"
            person = counters["person"]
            counters["person"] += 1
        else:
            prefix = "NORMAL2-IM" if rng.random() < 0.35 else "IM"
            im_id = counters["im"]
            counters["im"] += 1
        for k in range(1, n_images + 1):
            if label:
                name = f"person{person}_{kind}_{counters['image']}.jpeg"
                counters["image"] += 1
            else:
                name = f"{prefix}-{im_id:04d}-{k:04d}.jpeg"
            yield name, _render(rng, grid, anatomy, label)
            made += 1


def _anatomy(rng: np.random.Generator) -> dict[str, float]:
    return {
        "cx": rng.normal(0, 0.04), "cy": rng.normal(0.02, 0.04),
        "body_w": rng.uniform(0.78, 0.95), "lung_w": rng.uniform(0.22, 0.3),
        "lung_h": rng.uniform(0.48, 0.62), "lung_gap": rng.uniform(0.34, 0.42),
        "tissue": rng.uniform(95, 125), "lung": rng.uniform(55, 80),
        "rib_freq": rng.uniform(9, 12), "gain": rng.uniform(0.9, 1.1),
    }


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: low-resolution noise upsampled bicubically."""
    low = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    img = Image.fromarray(low, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img), -1, 1)


def _render(rng: np.random.Generator, g: _Grid, a: dict[str, float], label: int) -> np.ndarray:
    x = g.x - a["cx"] + rng.normal(0, 0.015)
    y = g.y - a["cy"] + rng.normal(0, 0.015)
    img = np.full(x.shape, 12.0)
    body = (x / a["body_w"]) ** 2 + ((y - 0.15) / 1.05) ** 2 < 1
    img[body] = a["tissue"]
    lungs = []
    for side in (-1, 1):
        lx = (x - side * a["lung_gap"]) / a["lung_w"]
        ly = (y + 0.02) / a["lung_h"]
        lungs.append(np.clip(1 - (lx**2 + ly**2), 0, 1) ** 0.35)  # soft-edged lung field
    lung = lungs[0] + lungs[1]
    img = img * (1 - lung) + a["lung"] * lung
    ribs = np.sin(a["rib_freq"] * (y + 0.35 * x**2) * np.pi / 2) > 0.55
    img += 22 * ribs * (lung > 0.05) * (0.6 + 0.4 * np.abs(x))
    img += 70 * np.exp(-((x / 0.11) ** 2)) * (y > -0.75)  # mediastinum and spine
    img += 8 * _smooth_noise(rng, g.size, 24) * lung  # vessels / normal lung texture
    if label:
        img += _opacities(rng, g.size, lungs)
    img = img * a["gain"] + rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _opacities(rng: np.random.Generator, size: int, lungs: list[np.ndarray]) -> np.ndarray:
    """Diffuse patchy consolidation in one or both lungs, faint to dense."""
    sides = [0, 1] if rng.random() < 0.45 else [int(rng.integers(2))]
    out = np.zeros((size, size))
    for side in sides:
        field = _smooth_noise(rng, size, int(rng.integers(5, 10)))
        patches = np.clip(field - rng.uniform(-0.4, 0.2), 0, None)  # patchy, variable extent
        density = rng.uniform(90, 170)
        out += density * patches * lungs[side]
    return out
