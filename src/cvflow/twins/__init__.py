"""Twins: offline demo data in the real data sets' formats, drawn with :mod:`cvflow.twins.raster`."""
