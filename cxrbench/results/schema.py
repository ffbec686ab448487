"""The results file's schema, as types: what every field of the file and of a record holds.

``schema_version`` 2 (version 1 files, which have no ``external``, ``source_check``,
``model_artifact`` or ``evaluation.*.subgroups``, are still read). The file is JSON;
undefined numbers (a metric on one class, NaN) are stored as ``null``. ``summary`` and
``statistics`` are derived from the records (``cxrbench.stats.with_statistics``): readers
recompute them rather than trust stored copies, and files written before a derived section
(``small_data``) existed still read.
``cxrbench.results.validate`` checks a parsed file against these types and ranges.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

SCHEMA_VERSION = 2  # the newest version this cxrbench writes and reads (it reads 1..this)
# 2: external[NAME] (external validation), source_check, records' model_artifact, subgroups
SPLITS = ("val", "test")
RecordStatus = Literal["ok", "error", "timeout"]
RECORD_STATUSES: tuple[str, ...] = ("ok", "error", "timeout")
RunStatus = Literal["running", "complete", "interrupted"]
RUN_STATUSES: tuple[str, ...] = ("running", "complete", "interrupted")


class ResultsError(ValueError):
    """A results file is missing, truncated, hand-edited into an invalid state, or too new.

    ``problems`` lists every problem found, one message each.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


# --------------------------------------------------------------------------------- a record
class JobError(TypedDict):
    type: str  # the exception's class name, "timeout" or "crash"
    message: str
    traceback: str | None


class Confusion(TypedDict):
    tp: int
    tn: int
    fp: int
    fn: int


class Timing(TypedDict):
    fit_s: float  # wall-clock seconds of plugin.fit(train, val)
    predict_s: float  # seconds to predict the test split
    predict_ms_per_image: float
    peak_rss_mb: float  # peak resident memory of the job's process during fit and predict
    predict_val_s: NotRequired[float]  # seconds to predict the validation split
    job_s: NotRequired[float]  # the whole job in its process: data loading, plugin, scoring


class SkippedImages(TypedDict):
    count: int  # images of the plan the job could not decode (also in provenance.data)
    record_ids: list[str]


class Origin(TypedDict, total=False):
    """Added by ``cxrbench merge``: where a record came from."""

    file: str
    commit: str | None
    dirty: bool | None


# Where a record's plugin came from (cxrbench.plugins.sources.plugin_origin): "class"
# ("module:Class"), "file" (where the class was defined; null for a notebook cell), "sha256"
# (of that file, or of the class's source text, or of its methods' where Python cannot read
# the class's: "sha256_of" says file or class source; null when there is no source).
PluginOrigin = TypedDict("PluginOrigin", {
    "class": str, "file": str | None, "sha256": str | None,
    "sha256_of": Literal["file", "class source"] | None,
})
class ModelArtifact(TypedDict):
    """Where ``--save-models`` saved a record's fitted model (``path`` None when it failed)."""

    path: str | None  # relative to the results file: "models/<job_id>"
    model_json_sha256: NotRequired[str]  # checked before the model is loaded again
    bytes: NotRequired[int]  # size on disk of the model folder
    error: JobError | None


class Record(TypedDict):
    """One job: a plugin x params x seed. Failed jobs keep the first block and ``error``."""

    job_id: str  # "model[seed=0]", or "model[<params digest>,seed=0]" with params
    model: str  # the registered plugin name (non-empty)
    seed: int
    status: RecordStatus
    family: NotRequired[str]  # from the plugin's card
    framework: NotRequired[str]
    params: NotRequired[dict[str, Any]]  # hyperparameters overridden for this run
    error: NotRequired[JobError | None]  # null when ok
    image_size: NotRequired[int]  # the input the plugin was given, pixels per side
    channels: NotRequired[int]
    threshold_rule: NotRequired[str]  # canonical: "youden", "fixed:0.5", "sensitivity:0.95"
    started: NotRequired[str]  # ISO 8601, UTC
    finished: NotRequired[str]
    # ok records only:
    threshold: NotRequired[float | None]  # the decision threshold chosen on validation
    metrics: NotRequired[dict[str, dict[str, float | None]]]  # split -> metric -> [0, 1]
    confusion: NotRequired[dict[str, Confusion]]  # split -> counts at the threshold
    timing: NotRequired[Timing]
    fit_info: NotRequired[dict[str, Any]]  # what the plugin reports (history, chosen params)
    n_params: NotRequired[int | None]
    predictions: NotRequired[dict[str, list[float]]]  # split -> one probability per image,
    # aligned with evaluation[split].ids
    skipped_images: NotRequired[SkippedImages]
    origin: NotRequired[Origin]
    worker: NotRequired[dict[str, Any]]  # the Dask worker that ran it: address, hostname
    plugin: NotRequired[PluginOrigin]  # its class, source file and sha256
    model_artifact: NotRequired[ModelArtifact]  # with --save-models


# ------------------------------------------------------------------------------- the file
class Tool(TypedDict):
    name: str
    version: str


class ResumeSession(TypedDict, total=False):
    """One ``--resume`` of the run: who continued it, where, at which commit, which jobs."""

    started: str
    finished: str
    command: list[str] | None  # the command line, as given
    hostname: str
    cpu_model: str
    git: dict[str, Any]  # commit, dirty, error
    jobs: list[str]  # job ids this session ran


class RunTiming(TypedDict, total=False):
    """Where this invocation's time went (``cxrbench.run.timing``); a resume's own share."""

    wall_s: float  # from the start of `cxrbench run` to the report written
    plugin_s: float  # the plugins' fit + predict (val, test; external sets) seconds
    harness_s: float  # everything else: wall_s - plugin_s
    harness_fraction: float  # harness_s / wall_s
    jobs: int  # records this invocation produced
    parts_s: dict[str, float]  # prepare, jobs, jobs_outside_plugins, results_writes, ...


class Run(TypedDict, total=False):
    models: list[str]
    seeds: list[int]
    threshold_rule: str  # canonical spelling (older files may hold "0.5": the same rule)
    suite: str | None
    executor: str
    status: RunStatus
    started: str
    finished: str | None
    command: list[str] | None  # the command line that started the run; null from Python
    resumed: list[ResumeSession]
    timing: RunTiming
    merged: str  # `cxrbench merge` only: when, a note, and the source files
    note: str
    sources: list[dict[str, Any]]


class DataProvenance(TypedDict, total=False):
    path: str
    kind: str  # kaggle | folders | manifest
    data_hash: str
    synthetic: bool
    n_records: int
    unreadable: list[str]  # record ids that could not be decoded, skipped by every job


class Provenance(TypedDict, total=False):
    """Where the numbers came from (``cxrbench.provenance.collect_provenance``)."""

    cxrbench_version: str
    packages: dict[str, str]
    git: dict[str, Any]  # commit, dirty, error
    python: str
    platform: str
    hostname: str
    cpu_count: int
    cpu_model: str
    backend: str  # Keras backend
    device: str  # "cpu" or "gpu: <names>"
    openmp_wait_policy: str | None  # OMP_WAIT_POLICY in force (cxrbench run: PASSIVE)
    date: str
    data: DataProvenance
    split_sha256: str


class Split(TypedDict, total=False):
    sha256: str
    seed: int
    val_fraction: float
    strategy: str
    counts: dict[str, dict[str, int]]  # split -> {"normal": n, "pneumonia": n}
    file: str  # the plan file beside results.json


class EvaluationSplit(TypedDict):
    ids: list[str]  # the images every record was scored on, in prediction order
    labels: list[int]  # 0 NORMAL, 1 PNEUMONIA
    groups: list[str]  # patient ids: the bootstrap's resampling unit
    subgroups: NotRequired[list[str]]  # version 2: each image's subgroup ("" for none)


class ExternalRecord(TypedDict, total=False):
    """One saved model scored on an external set, at its validation threshold."""

    status: RecordStatus  # "ok" or "error"
    error: dict[str, Any] | None  # type, message
    model: str
    seed: int
    threshold: float
    decoder_version: int
    metrics: dict[str, float | None]  # the metrics of metrics.test
    confusion: Confusion
    predictions: list[float]  # aligned with the entry's ids
    timing: dict[str, float]  # load_s, predict_s, predict_ms_per_image, decode_s


class ExternalSet(TypedDict, total=False):
    """``external[NAME]``: a labelled set from another source, scored by the saved models.

    ``status`` "error" entries hold only path, error and evaluated. The images every record
    was scored on are ``ids`` (with ``labels``, ``groups``, ``subgroups``), in prediction order.
    """

    status: Literal["ok", "error"]
    error: dict[str, Any] | None
    path: str
    kind: str
    data_hash: str
    synthetic: bool
    n_records: int
    unreadable: list[str]  # record ids that could not be decoded (left out for every model)
    counts: dict[str, int]  # NORMAL, PNEUMONIA, patients (of the evaluated images)
    ids: list[str]
    labels: list[int]
    groups: list[str]
    subgroups: list[str]
    decoder_version: int
    cxrbench_version: str
    evaluated: str  # ISO 8601, UTC
    command: list[str] | None
    decode_s: dict[str, float]  # "128x1" -> seconds to decode (and cache) the set
    records: dict[str, ExternalRecord]  # job_id -> the model's scores
    source_check: dict[str, Any]  # see cxrbench.run.source_check


class SmallData(TypedDict):
    """Derived (``cxrbench.stats.small_data``): splits too small for the numbers to mean much."""

    flagged: bool
    min_images_per_class: int  # val or test with fewer images of a class is flagged
    reasons: list[str]  # one sentence each: which split or model, and why


class ResultsFile(TypedDict):
    schema_version: int
    run: Run
    provenance: Provenance
    split: Split
    records: list[Record]
    tool: NotRequired[Tool]
    evaluation: NotRequired[dict[str, EvaluationSplit]]  # "val" and "test"
    summary: NotRequired[dict[str, Any]]  # derived: cxrbench.stats.summarize
    statistics: NotRequired[dict[str, Any]]  # derived: cxrbench.stats.compute_statistics
    small_data: NotRequired[SmallData]  # derived: cxrbench.stats.small_data (absent in older files)
    data_audit: NotRequired[dict[str, Any]]
    external: NotRequired[dict[str, ExternalSet]]  # version 2: name -> external set
    source_check: NotRequired[dict[str, Any]]  # version 2: "val"/"test" -> source check
