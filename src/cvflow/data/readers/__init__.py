"""Readers: the data sets as training sees them (datasets, collate functions, transforms)."""

#: the hidden file every demo twin holds and the real data lacks (:mod:`cvflow.twins.output` writes it)
DEMO_MARKER = ".cvflow-demo.json"
