"""Per-task bindings: which data, model, loss, metrics and recipe each experiment uses."""
