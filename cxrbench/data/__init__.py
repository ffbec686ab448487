"""Data: read data sets into a records table, decode and cache images, audit, synthesise.

Public API::

    load_dataset(path, *, cache_dir=None) -> Dataset
    ImageCache(root=None).load(records, size, channels, workers=None, progress=False)
        -> CachedImages(images, record_ids, failed, n_decoded)
    decode_image(path, size, channels=1) -> np.ndarray (size, size, channels) uint8
    audit_dataset(dataset, workers=None, progress=False) -> dict;  format_audit(report) -> str
    make_synthetic_dataset(root, n_train=(60, 60), n_test=(20, 20), size=128, seed=0) -> Path
    patient_id_from_name(name) -> str;  default_cache_dir() -> Path
    DataError(ValueError), ImageDecodeError(DataError)
"""

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
    compute_data_hash,
)
from cxrbench.data.synthetic import make_synthetic_dataset

__all__ = [
    "CLASS_NAMES",
    "DECODER_VERSION",
    "RECORD_COLUMNS",
    "CachedImages",
    "DataError",
    "Dataset",
    "ImageCache",
    "ImageDecodeError",
    "audit_dataset",
    "compute_data_hash",
    "decode_image",
    "default_cache_dir",
    "format_audit",
    "load_dataset",
    "make_synthetic_dataset",
    "patient_id_from_name",
]
