"""Built-in plugin families, one module each (imported lazily by the registry)."""
