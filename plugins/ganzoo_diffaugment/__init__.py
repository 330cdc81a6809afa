"""Built-in plugin: DiffAugment for small datasets."""
