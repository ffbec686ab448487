"""Exports of a results file to other tools: ``mlflow`` (one MLflow run per record, under a
parent run per benchmark; the optional ``cxrbench[mlflow]`` extra)."""

DEFAULT_EXPERIMENT = "cxrbench"  # the MLflow experiment runs are logged to unless named
