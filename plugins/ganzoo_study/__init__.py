"""Built-in plugin: the study commands (sweep, compare, classify, augment)."""
