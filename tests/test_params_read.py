"""Every params key a stage reads is tracked by that stage in dvc.yaml (issue 25, item 3).

The suite's two passes over every stage (the smoke pass on the real profile, then the demo's repro) run with
``CVFLOW_PARAMS_TRACE`` set: each stage command records the params keys it actually read
(:func:`cvflow.params.trace_reads`). A key read but tracked by none of the stage's dvc.yaml params (a section
covers its keys) means editing it changes what the stage writes while DVC calls the stage up to date; only
:data:`cvflow.params.UNTRACKED` (keys that change no output) may be read untracked.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from cvflow.params import UNTRACKED, unread_declared, untracked_reads

pytestmark = pytest.mark.slow

#: what `cvflow dag` adds to every stage of a task the smoke section changes: tracked for the switch's values
#: (and the profile's), not because the stage reads them under these names
SWITCHES = ("profile", "common.smoke")


def _traces(request, profile: str) -> tuple[str, dict, dict]:
    """(the profile, dvc.yaml's stages, {stage: its trace}) of one of the suite's two passes over every stage, each
    run with a trace folder of conftest.py's (``pipeline_copy.traces``): the smoke pass (the real profile under
    the smoke switch), then the demo's repro."""
    copy = request.getfixturevalue("smoke_pass")  # the callers name it too (see below); the pass runs first
    run = copy.smoke if profile == "real" else request.getfixturevalue("demo_repo")[3]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stages = yaml.safe_load((copy.root / "dvc.yaml").read_text())["stages"]
    folder = Path(copy.traces) / profile
    return profile, stages, {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}


# Each names `smoke_pass`: `demo_repo` runs the smoke pass first when a collected test needs it.
@pytest.fixture(scope="module", params=["real", "demo"])
def traced(request, smoke_pass):
    return _traces(request, request.param)


@pytest.fixture(scope="module")
def both(request, smoke_pass):
    return [_traces(request, profile) for profile in ("real", "demo")]


def test_every_stage_left_a_trace(traced):
    profile, stages, traces = traced
    assert sorted(set(stages) - set(traces)) == [], "stages that ran without writing their read trace"
    assert all(trace["profile"] == profile for trace in traces.values())


def test_every_param_a_stage_reads_is_in_its_dvc_params(traced):
    _, stages, traces = traced
    missing = {name: untracked_reads(traces[name]["read"], stage.get("params", []), traces[name]["profile"])
               for name, stage in stages.items() if name in traces}
    missing = {name: keys for name, keys in missing.items() if keys}
    assert missing == {}, "read but not in the stage's dvc.yaml params (declare them in pipelines/<task>.py, " \
                          f"then `cvflow dag`): {json.dumps(missing, indent=1)}"


def test_every_declared_param_is_read_by_some_stage(request, smoke_pass):
    """A declared key that nothing reads reruns stages for edits that change nothing. A key one stage declares
    but reads only under the other profile (kaggle-dogs' training reads ``reorg`` with ``views: 0``, the real
    profile's) is no error: those are reported as a warning, for a look. The demo's pass is the one to ask: the real
    profile leaves whole sections unread by design (its ImageNet weights skip the source pretraining's)."""
    profile, stages, traces = _traces(request, "demo")
    read = set().union(*(trace["read"] for trace in traces.values()))
    unread, by_stage = set(), {}
    for name, stage in stages.items():
        own = [key for key in stage.get("params", []) if key not in SWITCHES and not key.startswith("smoke.")]
        unread.update(unread_declared(read, own, profile))
        if name in traces and (keys := unread_declared(traces[name]["read"], own, traces[name]["profile"])):
            by_stage[name] = keys
    assert sorted(unread) == [], "declared in dvc.yaml but read by no stage of the demo's repro"
    if by_stage:
        warnings.warn(f"declared but not read by the stage in the demo's repro: {by_stage}")


def test_every_untracked_key_is_read_somewhere(both):
    """The allow-list holds no stale key: each is read by some stage of the two passes (else it should simply be
    dropped)."""
    read = set().union(*(trace["read"] for _, _, traces in both for trace in traces.values()))
    assert sorted(set(UNTRACKED) - read) == []
