"""Model plugins: the contract (contract.py, params.py), the registry, the conformance kit,
and the built-in families, one module each (imported by the registry on first use)."""
