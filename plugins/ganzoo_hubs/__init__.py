"""Built-in plugin: model-hub backends (local-dir, hf-hub)."""
