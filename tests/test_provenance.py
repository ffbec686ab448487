"""Package versions in every record's provenance."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError

import pytest

from cxrbench import provenance


@pytest.mark.parametrize("library, build", [("xgboost", "xgboost-cpu"),
                                            ("tensorflow", "tensorflow-cpu")])
def test_a_cpu_only_build_is_recorded_under_its_own_name(monkeypatch, library, build):
    """Another build of the same version can give other numbers (xgboost-cpu samples other
    columns for the same seed), so `compare` must see which build made a result."""
    installed = {"numpy": "2.0.0", build: "9.9.9"}

    def version(distribution: str) -> str:
        if distribution not in installed:
            raise PackageNotFoundError(distribution)
        return installed[distribution]

    monkeypatch.setattr(provenance, "version", version)
    assert provenance.package_versions() == {"numpy": "2.0.0", build: "9.9.9"}
