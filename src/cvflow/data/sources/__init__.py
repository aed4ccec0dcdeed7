"""Sources: downloads, archives, the d2l hub, Kaggle, and one atomic fetch per data set."""
