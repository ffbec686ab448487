"""Data: read data sets into a records table, decode and cache images, audit, synthesise.

Public API::

    load_dataset(path, *, cache_dir=None, allow_outside_root=False) -> Dataset
        Dataset.records, .skipped (unreadable / ignored / alias files), .warnings(), .val_given
    ImageCache(root=None).load(records, size, channels, workers=None, progress=False)
        -> CachedImages(images, record_ids, failed, n_decoded)
    ImageCache.check_space(records, shapes) -> bytes needed (CacheWriteError if not free)
    decode_image(path, size, channels=1) -> np.ndarray (size, size, channels) uint8
    audit_dataset(dataset, workers=None, progress=False) -> dict;  format_audit(report) -> str
    make_synthetic_dataset(root, n_train=(60, 60), n_test=(20, 20), size=128, seed=0) -> Path
    patient_id_from_name(name) -> str;  default_cache_dir() -> Path
    DataError(ValueError), ImageDecodeError(DataError), CacheWriteError(DataError)

Names are imported on first use (PEP 562), so decode worker processes, which import
``cxrbench.data.cache``, do not pay for pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "audit_dataset": "audit",
    "format_audit": "audit",
    "CacheWriteError": "shards",
    "CachedImages": "cache",
    "ImageCache": "cache",
    "default_cache_dir": "cache",
    "DECODER_VERSION": "decode",
    "ImageDecodeError": "decode",
    "decode_image": "decode",
    "patient_id_from_name": "patients",
    "load_dataset": "readers",
    "CLASS_NAMES": "records",
    "RECORD_COLUMNS": "records",
    "SkippedFile": "records",
    "DataError": "records",
    "Dataset": "records",
    "compute_data_hash": "records",
    "make_synthetic_dataset": "synthetic",
}
__all__ = [
    "CLASS_NAMES",
    "CacheWriteError",
    "CachedImages",
    "DECODER_VERSION",
    "DataError",
    "Dataset",
    "ImageCache",
    "ImageDecodeError",
    "RECORD_COLUMNS",
    "SkippedFile",
    "audit_dataset",
    "compute_data_hash",
    "decode_image",
    "default_cache_dir",
    "format_audit",
    "load_dataset",
    "make_synthetic_dataset",
    "patient_id_from_name",
]

if TYPE_CHECKING:
    from cxrbench.data.audit import audit_dataset, format_audit
    from cxrbench.data.cache import CachedImages, ImageCache, default_cache_dir
    from cxrbench.data.decode import DECODER_VERSION, ImageDecodeError, decode_image
    from cxrbench.data.patients import patient_id_from_name
    from cxrbench.data.readers import load_dataset
    from cxrbench.data.records import (
        CLASS_NAMES,
        RECORD_COLUMNS,
        DataError,
        Dataset,
        SkippedFile,
        compute_data_hash,
    )
    from cxrbench.data.shards import CacheWriteError
    from cxrbench.data.synthetic import make_synthetic_dataset


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cxrbench.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cxrbench.data.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
