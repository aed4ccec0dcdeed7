"""Readers: the data sets as training sees them (datasets, collate functions, transforms)."""
