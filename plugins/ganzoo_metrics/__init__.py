"""Built-in plugin: standard FID, KID and precision/recall via torch-fidelity, offline."""
