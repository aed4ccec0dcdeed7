"""A team shares results through a DVC remote, and sweeps with DVC's experiment queue (README).

One clone runs a stage and `dvc push`es; a teammate's fresh `git clone` `dvc pull`s and finds
everything up to date: `dvc status` is clean and `dvc repro` reruns nothing. The remote is a local
folder, as `dvc remote add -d team /path` makes it; S3, GCS or SSH behave the same to DVC.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import git_copy

pytestmark = pytest.mark.slow  # `dvc repro`, `dvc exp run`

#: A small stage with an upstream stage: fetch-photos -> figures-anchors.
TARGET = "figures-anchors"


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


def test_pull_in_a_fresh_clone_restores_outputs_and_retrains_nothing(tmp_path):
    dvc = [sys.executable, "-m", "dvc"]
    origin, remote, clone = tmp_path / "origin", tmp_path / "remote", tmp_path / "clone"
    env = git_copy(origin)
    _run([*dvc, "remote", "add", "-d", "team", str(remote)], origin, env)
    _run(["git", "commit", "-qam", "a team remote"], origin, env)

    _run([*dvc, "repro", TARGET], origin, env)
    pushed = _run([*dvc, "push", "--with-deps", TARGET], origin, env)
    assert "pushed" in pushed.stdout, pushed.stdout
    assert not _run(["git", "status", "--porcelain"], origin, env).stdout  # dvc.lock reproduced

    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    assert not (clone / "data" / "reports" / "anchors").exists()
    _run([*dvc, "pull", "--with-deps", TARGET], clone, env)
    assert sorted(p.name for p in (clone / "data" / "reports" / "anchors").iterdir()) == \
        sorted(p.name for p in (origin / "data" / "reports" / "anchors").iterdir())
    for name in ("anchors", "photos"):  # the same bytes as the teammate's
        folder = "data/reports/anchors" if name == "anchors" else "data/photos"
        for path in (origin / folder).iterdir():
            assert (clone / folder / path.name).read_bytes() == path.read_bytes(), path
    status = _run([*dvc, "status", "--with-deps", TARGET], clone, env)
    assert "up to date" in status.stdout, status.stdout
    repro = _run([*dvc, "repro", TARGET], clone, env)
    assert "Running stage" not in repro.stdout, repro.stdout


def test_a_queued_sweep_runs_each_point_and_tracks_it_in_the_project_store(tmp_path):
    """`dvc exp run --queue` twice, then the queue with two workers at once: two DVC experiments, and two
    MLflow runs in the user's own store, both FINISHED though two processes wrote to its sqlite file at
    once (a queued experiment runs in a temporary copy; DVC_ROOT names the repository), each tagged with
    its experiment's name."""
    import json

    from mlflow.tracking import MlflowClient

    dvc = [sys.executable, "-m", "dvc"]
    root = tmp_path / "project"
    env = git_copy(root)

    _run([*dvc, "exp", "run", "--queue", "-S", "style.demo.steps=4", "stylize"], root, env)
    _run([*dvc, "exp", "run", "--queue", "-S", "style.demo.steps=8", "stylize"], root, env)
    # two workers at once, both writing to the one sqlite store (what `dvc queue start -j 2` does, waited for)
    ran = _run([*dvc, "exp", "run", "--run-all", "-j", "2"], root, env)
    assert ran.returncode == 0 and "database is locked" not in ran.stdout + ran.stderr, ran.stderr[-3000:]

    shown = json.loads(_run([*dvc, "exp", "show", "--json"], root, env).stdout)
    experiments = {e["name"]: e["data"]["params"]["params.yaml"]["data"]["style"]["demo"]["steps"]
                   for baseline in shown for exp in (baseline.get("experiments") or [])
                   for e in exp["revs"] if e.get("name")}
    assert sorted(experiments.values()) == [4, 8], shown
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("style").experiment_id])
    assert sorted((r.data.tags.get("dvc_exp_name"), r.info.status) for r in runs) == \
        sorted((name, "FINISHED") for name in experiments)
    assert {r.data.tags["dvc_exp_name"]: r.data.params["run.steps"] for r in runs} == \
        {name: f"[{steps}]" for name, steps in experiments.items()}
