"""Scoring: decision-threshold rules (chosen on validation) and the metrics every record holds."""
