"""Planning a run: the split plan, the jobs (one per model x seed) and the image cache they
read, each decoded image shape built once before any job starts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cxrbench.data import Dataset, ImageCache
from cxrbench.plugins.registry import get_card, model_source
from cxrbench.plugins.sources import class_payload, plugin_origin
from cxrbench.run.config import ModelSpec, RunConfig
from cxrbench.run.jobs import Job, job_id
from cxrbench.run.saving import model_folder
from cxrbench.splits import SplitPlan, make_split_plan


class RunError(ValueError):
    """The run cannot start as configured (bad data, mismatched resume, ...)."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plan_split(config: RunConfig, dataset: Dataset) -> SplitPlan:
    """The run's split plan; refused when a split lacks one of the two classes."""
    plan = make_split_plan(dataset.records, val_fraction=config.val_fraction,
                           seed=config.split_seed, given_val=dataset.val_given,
                           carve_test=config.carve_test)
    labels = dataset.records.set_index("record_id")["label"]
    for split in ("train", "val", "test"):
        present = set(labels.loc[list(plan.ids(split))].tolist())
        if present != {0, 1}:
            names = {0: "NORMAL", 1: "PNEUMONIA"}
            have = ", ".join(names[c] for c in sorted(present)) or "no images"
            raise RunError(
                f"the {split} split of {dataset.root} has only {have}; a pneumonia benchmark "
                "needs both NORMAL and PNEUMONIA images in train, val and test. "
                "Add the missing class folder or check the data path."
            )
    for message in dataset.warnings():  # once the data is accepted
        _log(f"warning: {message}")
    return plan


def input_shape(spec: ModelSpec) -> tuple[int, int]:
    """(image size, channels) a model gets: its card's, unless its params override them."""
    card = get_card(spec.name)
    return (int(spec.params.get("input_size", card.input_size)),
            int(spec.params.get("channels", card.channels)))


def build_jobs(config: RunConfig, dataset: Dataset, plan: SplitPlan, plan_path: Path,
               cache_dir: Path) -> list[Job]:
    jobs = []
    for spec in config.models:
        size, channels = input_shape(spec)
        payload, origin = class_payload(spec.name), plugin_origin(spec.name)
        jobs += [Job(
            model=spec.name,
            seed=seed,
            # The path as given (a manifest's root is its folder, not the CSV file itself).
            data_path=str(Path(config.data_path).expanduser().absolute()),
            data_hash=dataset.data_hash,
            split_plan_path=str(plan_path),
            split_sha256=plan.sha256,
            cache_dir=str(cache_dir),
            threshold_rule=str(config.threshold_rule),
            image_size=size,
            channels=channels,
            params=dict(spec.params),
            timeout_s=spec.timeout_s if spec.timeout_s is not None else config.timeout_s,
            plugin_source=model_source(spec.name),
            allow_outside_root=config.allow_outside_root,
            plugin_payload=payload,
            plugins=tuple(config.plugins),
            plugin_origin=origin,
            save_model_to=(str(model_folder(config.out_dir.absolute(),
                                            job_id(spec.name, spec.params, seed)))
                           if config.save_models else None),
            model_metadata=_model_metadata(config, dataset, plan) if config.save_models else {},
        ) for seed in config.seeds]
    return jobs


def _model_metadata(config: RunConfig, dataset: Dataset, plan: SplitPlan) -> dict[str, Any]:
    """What a saved model's ``model.json`` says about its training data and run."""
    return {"data_kind": dataset.kind, "synthetic": dataset.synthetic,
            "n_records": len(dataset.records), "split_counts": plan.counts(dataset.records),
            "split_seed": plan.seed, "val_fraction": plan.val_fraction, "suite": config.suite,
            "command": config.command, "allow_outside_root": config.allow_outside_root}


def prepare_cache(
    dataset: Dataset, plan: SplitPlan, cache: ImageCache, shapes: set[tuple[int, int]]
) -> set[str]:
    """Decode every image once per (size, channels), split by split, in plan order.

    Jobs then load each split as exactly one cached shard (a zero-copy memmap). Returns the
    record ids that could not be decoded; they are skipped, with a warning naming them.
    """
    records = dataset.records.set_index("record_id", drop=False)
    failed: dict[str, str] = {}
    for size, channels in sorted(shapes):
        for split in ("train", "val", "test"):
            subset = records.loc[list(plan.ids(split))]
            _log(f"cache: {split} ({len(subset)} images) at {size}px x {channels}ch")
            result = cache.load(subset, size, channels, progress=sys.stderr.isatty())
            for item in result.failed:
                failed[item["record_id"]] = item["reason"]
    for record_id, reason in sorted(failed.items()):
        _log(f"warning: skipping unreadable image {record_id}: {reason}")
    return set(failed)
