"""benchmarks/gpu_check.py (issue 27, item 5): the effect check the GPU check exits on, which must see a failing
effect, and its CPU smoke form end to end (on the suite's own demo repro, so the suite runs the demo once)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))


def test_effects_reads_a_failing_effect_from_the_metrics(tmp_path):
    """The check the script exits on reads each effect from the metrics as the report does: one flipped effect
    is the one seen failing (an effects() that reported every effect as holding, or none, would pass a broken
    GPU run)."""
    from gpu_check import effects
    from test_report import _fake_outputs, _values

    flip = "fine-tuning beats training from scratch on the test images"
    _fake_outputs(tmp_path, _values(flip=flip))
    found = effects(tmp_path)
    assert len(found) == 11
    assert [e["effect"] for e in found if e["holds"] is not True] == [flip]
    _fake_outputs(tmp_path, _values())
    assert all(e["holds"] is True for e in effects(tmp_path))


@pytest.mark.slow
def test_the_smoke_form_times_every_training_stage_after_the_demos_repro(demo_repo, tmp_path):
    """`gpu_check.py --smoke` on the demo the suite reproduced (the e2e tests' copy, left as it is): every effect is
    read as holding, then every training stage of dvc.yaml runs its own command on the real profile (smoke-sized,
    on CPU) with its fit bounded to 1 + 2 steps, and the JSON has a measured row for each."""
    root, env, _, _ = demo_repo
    before = (root / "params.yaml").read_bytes()
    out = tmp_path / "gpu_check.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--reuse", str(root),
                          "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["demo"]["report"] and len(result["demo"]["effects"]) == 11
    assert all(e["holds"] is True for e in result["demo"]["effects"]), result["demo"]["effects"]
    stages = {name for name in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"] if name.startswith("train-")}
    rows = {r["stage"]: r for r in result["stages"]}
    assert set(rows) == stages
    for name, row in rows.items():
        assert row.get("images_per_sec", 0) > 0 and row["images"] == 2 * row["batch"], (name, row)
        assert row["device"] == "cpu" and row["precision"] == "fp32"
    assert (root / "params.yaml").read_bytes() == before  # the suite's copy is left as it is
