"""The book's photos (catdog.jpg for the anchor figures, rainier.jpg and autumn-oak.jpg for style
transfer, cat1.jpg): ``cvflow fetch photos``.

This module is the declaration alone; the schema is in ``schema.py``, the stage's function in ``fetching.py``.
"""

from __future__ import annotations

from cvflow.pipelines.photos.fetching import fetch
from cvflow.pipelines.photos.schema import PhotosProfile  # noqa: F401  (the schema, re-exported)
from cvflow.pipelines.task import Task, fetch_stage

TASK: Task[PhotosProfile] = Task(
    name="photos", profile=PhotosProfile, title="the book's photos",
    stages=(fetch_stage(fetch, "data/photos", "demo | d2l | local",
                        "The book's photos (catdog, rainier, autumn-oak, cat1; SHA-1 checked) into data/photos/.",
                        params=("",)),),
)
