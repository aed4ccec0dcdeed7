"""Experiments on rented GPUs through SkyPilot (cloud/, docs/cloud.md), tested without a cloud.

SkyPilot's own loader (`sky.Task.from_yaml`) validates both task files; the script their `setup` and `run` call
(cloud/run_experiment.sh) runs end to end as a rented machine would, against a local bare git remote (origin), a
folder DVC remote and a loopback `mlflow server`: the experiments then show in a teammate's clone of origin
(`dvc exp pull`, `dvc exp show`) and their runs on the server. SkyPilot is an optional extra (`.[cloud]`), not part of
`.[test]`: it adds about 140 MB and pins click < 8.2 and uvicorn < 0.36, older than what the rest of the suite runs
MLflow's server with; without it the loader test skips, saying so.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO, MlflowServer, beside_unit_tests, beside_unit_tests_result, free_port, git_copy, ran_stages

CLOUD = REPO / "cloud"
TASK_FILES = (CLOUD / "sweep.sky.yaml", CLOUD / "multinode.sky.yaml")
SCRIPT = CLOUD / "run_experiment.sh"
#: what a tracked result needs on the machine: the one secret a launch cannot go without
REQUIRED_SECRET = "MLFLOW_TRACKING_URI"


def _task(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _run(args, cwd, env, ok=True, timeout=900):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def _machine_env(task: dict, environ: dict | None = None, **envs: str) -> dict:
    """The environment SkyPilot gives setup and run: the task file's envs and secrets, overridden as `--env` and
    `--secret` do, on top of this machine's (``environ``, default this process's; its PATH reaches this venv's dvc,
    python3 and cvflow). Commands start warm, cvflow's default, as on the rented machine."""
    environ = os.environ if environ is None else environ
    env = {**environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environ['PATH']}"}
    for key, value in {**task["envs"], **task["secrets"]}.items():
        env[key] = "" if value is None else str(value)
    env.update(envs)
    return env


def _sky_job(task: dict, env: dict) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The task's own `setup`, then its `run`, each a bash command started in the synced workdir (~/sky_workdir:
    the task file's `workdir`, relative to the repository's root, from where `sky launch` runs)."""
    workdir = REPO / task["workdir"]
    setup = _run(["bash", "-c", task["setup"]], workdir, env)
    return setup, _run(["bash", "-c", task["run"]], workdir, env)


# --------------------------------------------------------------------------- the task files (fast)


def test_skypilots_loader_accepts_both_task_files_and_rejects_a_broken_one():
    sky = pytest.importorskip("sky", reason="SkyPilot is not installed (an optional extra: pip install -e '.[cloud]')")
    for path in TASK_FILES:
        task = sky.Task.from_yaml(str(path))
        assert (REPO / task.workdir / "run_experiment.sh").is_file(), (path, task.workdir)
        assert "run_experiment.sh setup" in task.setup and "run_experiment.sh run" in task.run, path
        # the tracking server has no default: a launch without it fails in SkyPilot, before a machine is rented
        assert [ref.name for ref in task.managed_secret_refs] == [REQUIRED_SECRET], path
        assert all(not value.get_secret_value() for value in task.secrets.values()), path  # no credential inside
        assert task.resources and all(r.accelerators for r in task.resources), path
    assert sky.Task.from_yaml(str(TASK_FILES[1])).num_nodes > 1
    # the loader is a real check: the same file with a misspelt field is refused
    broken = TASK_FILES[0].read_text().replace("\nsetup:", "\nsetpu:")
    with pytest.raises(Exception, match="setpu"):
        sky.Task.from_yaml_str(broken)


def test_task_files_hold_no_values_and_share_their_commands():
    """Every secret is named, none has a value (the credentials come at launch), and the multi-node file is the
    sweep's job with more nodes: the same envs, secrets, setup and run (SkyPilot has no include)."""
    sweep, multinode = (_task(path) for path in TASK_FILES)
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "GIT_TOKEN"} <= \
        set(sweep["secrets"])
    for task in (sweep, multinode):
        assert all(value in (None, "") for value in task["secrets"].values()), task["secrets"]
        assert all(value == "" for value in task["envs"].values()), task["envs"]  # defaults only, no endpoints
    for key in ("workdir", "envs", "secrets", "setup", "run"):
        assert sweep[key] == multinode[key], key
    assert sweep.get("num_nodes", 1) == 1 and multinode["num_nodes"] > 1


# --------------------------------------------------------------------------- the script, dry (fast)


def _dry(phase: str, tmp_path: Path, **envs: str) -> subprocess.CompletedProcess:
    clone = tmp_path / "clone"
    if phase == "run":  # what setup leaves; setup itself starts with no clone, as on a new machine
        (clone / ".git").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CVFLOW_CLONE": str(clone), "CVFLOW_DRY_RUN": "1", **envs}
    return _run(["bash", str(SCRIPT), phase], REPO, env, ok=False, timeout=60)


def _commands(dry: subprocess.CompletedProcess) -> list[str]:
    """The commands a dry run printed (the script's own messages left out)."""
    return [line for line in dry.stdout.splitlines() if line.startswith("+ ")]


def test_multinode_hands_skypilots_node_rank_and_head_to_the_launcher(tmp_path):
    """On node 1 of 2, `dvc exp run` gets SkyPilot's node count as the param common.nodes after the point's own
    (quotes kept), and cvflow's launcher (stages/launch.py) this node's rank and node 0's rendezvous (the first of
    SKYPILOT_NODE_IPS) in its environment variables; node 1 does not push, node 0 does."""
    skypilot = {"SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_IPS": "10.0.0.7\n10.0.0.8", "MLFLOW_TRACKING_URI": "http://x",
                "CVFLOW_SET": "-S 'style.demo.scales=[[48, 72]]' -S hotdog.demo.finetune.optim.lr=0.01",
                "CVFLOW_EXP_NAME": "p1", "CVFLOW_TARGETS": "evaluate-hotdog"}
    worker = _dry("run", tmp_path, SKYPILOT_NODE_RANK="1", **skypilot)
    assert worker.returncode == 0, worker.stderr
    command = next(line for line in worker.stdout.splitlines() if line.startswith("+ dvc exp run"))
    assert command == ("+ dvc exp run --pull --allow-missing -n p1 -S style.demo.scales=\\[\\[48\\,\\ 72\\]\\] "
                       "-S hotdog.demo.finetune.optim.lr=0.01 -S common.nodes=2 evaluate-hotdog"), command
    assert "+ export CVFLOW_NODE_RANK=1 CVFLOW_RDZV_ENDPOINT=10.0.0.7:29400" in _commands(worker), worker.stdout
    assert not [line for line in _commands(worker) if "push" in line], worker.stdout
    head = _dry("run", tmp_path, SKYPILOT_NODE_RANK="0", **skypilot)
    assert "+ export CVFLOW_NODE_RANK=0 CVFLOW_RDZV_ENDPOINT=10.0.0.7:29400" in _commands(head), head.stdout
    assert [line for line in _commands(head) if "push" in line] == \
        ["+ dvc push --run-cache --with-deps evaluate-hotdog", "+ dvc exp push origin p1"], head.stdout
    single = _dry("run", tmp_path, MLFLOW_TRACKING_URI="http://x", SKYPILOT_NUM_NODES="1")
    assert "common.nodes" not in single.stdout and "CVFLOW_NODE_RANK" not in single.stdout, single.stdout
    assert "+ dvc exp push origin sky-" in single.stdout, single.stdout


def test_a_missing_server_or_repository_or_a_broken_point_stops_the_job_in_one_line(tmp_path):
    """No MLFLOW_TRACKING_URI: the run would leave its results on a machine about to be given back; no
    CVFLOW_GIT_URL: nothing to clone; a CVFLOW_SET that does not split (an unclosed quote) must not run the baseline
    instead of the point. Each stops with exit 2 and one line naming the variable."""
    for phase, name, envs in (("run", "MLFLOW_TRACKING_URI", {"MLFLOW_TRACKING_URI": ""}),
                              ("setup", "CVFLOW_GIT_URL", {"CVFLOW_GIT_URL": ""}),
                              ("run", "CVFLOW_SET", {"MLFLOW_TRACKING_URI": "http://x", "CVFLOW_SET": "-S 'a=1"})):
        stopped = _dry(phase, tmp_path, **envs)
        assert stopped.returncode == 2, stopped
        assert stopped.stderr.count("\n") == 1 and name in stopped.stderr, stopped.stderr
        assert "+ dvc" not in stopped.stdout and "+ git" not in stopped.stdout


def test_a_git_token_reaches_git_through_a_helper_never_the_url(tmp_path):
    """The setup clones with a credential helper that reads GIT_TOKEN when git asks: the token is in no command
    line and no config, only the helper that reads it."""
    setup = _dry("setup", tmp_path, CVFLOW_GIT_URL="https://example.invalid/team/cvflow.git", GIT_TOKEN="s3cr3t",
                 CVFLOW_SKIP_INSTALL="1")
    assert setup.returncode == 0, setup.stderr
    assert "s3cr3t" not in setup.stdout + setup.stderr
    clone = next(line for line in _commands(setup) if " clone " in line)
    assert "credential.helper" in clone and "GIT_TOKEN" in clone, clone
    assert clone.endswith(" clone -q https://example.invalid/team/cvflow.git " + str(tmp_path / "clone")), clone


def test_the_clone_keeps_a_helper_that_answers_git_with_the_token_and_stores_no_token(tmp_path):
    """A real setup (install skipped) of a local origin with GIT_TOKEN set: git's own `credential fill` in the clone
    answers with the token of the environment it runs in, and no file of the clone holds the token."""
    origin, env = tmp_path / "origin", {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    _run(["git", "init", "-q", str(origin)], tmp_path, env)
    _run(["git", "commit", "-q", "--allow-empty", "-m", "c"], origin, env)
    clone = tmp_path / "machine" / "cvflow"
    _run(["bash", str(SCRIPT), "setup"], REPO, {**env, "CVFLOW_GIT_URL": str(origin), "CVFLOW_CLONE": str(clone),
                                                "CVFLOW_SKIP_INSTALL": "1", "GIT_TOKEN": "s3cr3t"}, timeout=60)
    asked = subprocess.run(["git", "credential", "fill"], cwd=clone, env={**env, "GIT_TOKEN": "t0k3n", "GIT_TERMINAL_PROMPT": "0"}, text=True,
                           input="protocol=https\nhost=example.invalid\n\n", capture_output=True, timeout=60)
    assert "password=t0k3n" in asked.stdout.splitlines(), asked
    assert not [path for path in (clone / ".git").rglob("*") if path.is_file() and b"s3cr3t" in path.read_bytes()]


# --------------------------------------------------------------------------- the launcher, dry (fast)


def _launch(tmp_path: Path, *args: str, push: bool = True, **envs: str) -> subprocess.CompletedProcess:
    """cloud/launch_sweep.py --dry-run in a repository of its own whose origin is a bare folder."""
    work, origin = tmp_path / "work", tmp_path / "origin.git"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", **envs}
    shutil.copytree(CLOUD, work / "cloud")
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "c"],
                    ["git", "init", "-q", "--bare", str(origin)], ["git", "remote", "add", "origin", str(origin)]):
        _run(command, work, env)
    if push:
        _run(["git", "push", "-q", "origin", "main"], work, env)
    return _run([sys.executable, "cloud/launch_sweep.py", "--dry-run", *args], work, env, ok=False, timeout=60)


def test_launch_sweep_starts_one_job_per_point_with_secrets_by_name(tmp_path):
    launched = _launch(tmp_path, "--prefix", "lr", "--targets", "evaluate-hotdog", "--grid",
                       "hotdog.demo.finetune.optim.lr=1e-4,1e-3", "--grid", "hotdog.demo.finetune.optim.head_lr_mult=1,10",
                       MLFLOW_TRACKING_URI="http://team:s3cr3t@mlflow.invalid", GIT_TOKEN="")
    assert launched.returncode == 0, launched.stderr
    lines = launched.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("sky jobs launch") for line in lines), lines
    head = _run(["git", "rev-parse", "HEAD"], tmp_path / "work", os.environ).stdout.strip()
    sets = []
    for number, line in enumerate(lines, 1):
        words = shlex.split(line)
        envs = dict(word.removeprefix("--env=").split("=", 1) for word in words if word.startswith("--env="))
        assert envs["CVFLOW_EXP_NAME"] == f"lr-{number}" and f"--name=lr-{number}" in words
        assert envs["CVFLOW_GIT_REF"] == head and envs["CVFLOW_GIT_URL"] == str(tmp_path / "origin.git")
        assert envs["CVFLOW_TARGETS"] == "evaluate-hotdog"
        assert [w for w in words if w.startswith("--secret")] == ["--secret=MLFLOW_TRACKING_URI"]  # set ones, by name
        assert words[-1].endswith("cloud/sweep.sky.yaml")
        sets.append(envs["CVFLOW_SET"])
    assert "s3cr3t" not in launched.stdout + launched.stderr
    assert sorted(sets) == sorted(f"-S hotdog.demo.finetune.optim.lr={lr} -S hotdog.demo.finetune.optim.head_lr_mult={m}"
                                  for lr in ("1e-4", "1e-3") for m in ("1", "10"))


def test_launch_sweep_refuses_a_commit_the_remote_lacks(tmp_path):
    refused = _launch(tmp_path, "-S hotdog.demo.finetune.optim.lr=1e-3", push=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused
    assert "git push" in refused.stderr and not refused.stdout


# --------------------------------------------------------------------------- end to end on loopback (slow)


SWEEP = {"point-1": "0.01", "point-2": "0.05"}  # the sweep's points: the fine-tune's learning rate


@beside_unit_tests("sweep")
def _sweep(folder: Path, environ: dict) -> SimpleNamespace:
    """Two jobs of cloud/sweep.sky.yaml, each on its own "machine" (a fresh clone of origin, this venv as installed),
    then a teammate's clone of origin pulling the experiments, and the MLflow server's finetune runs. Runs beside the
    unit tests (conftest.py's `beside_unit_tests`): its processes compute on one thread each."""
    from mlflow.tracking import MlflowClient

    dvc = [sys.executable, "-m", "dvc"]
    seed, origin, remote = folder / "seed", folder / "origin.git", folder / "dvc-remote"
    env = git_copy(seed, environ)
    _run([*dvc, "remote", "add", "-d", "team", str(remote)], seed, env)
    _run(["git", "commit", "-qam", "the team's DVC remote"], seed, env)
    _run(["git", "clone", "-q", "--bare", str(seed), str(origin)], folder, env)
    server = MlflowServer(folder / "mlflow", free_port(), env=environ)
    server.root.mkdir()
    server.start()
    try:
        task = _task(TASK_FILES[0])
        runs = {}
        for name, lr in SWEEP.items():
            machine = _machine_env(
                task, environ, CVFLOW_GIT_URL=str(origin), CVFLOW_CLONE=str(folder / name / "cvflow"),
                CVFLOW_SKIP_INSTALL="1", CVFLOW_SET=f"-S common.smoke=true -S hotdog.demo.finetune.optim.lr={lr}",
                CVFLOW_EXP_NAME=name, CVFLOW_TARGETS="train-hotdog-finetune",  # the stage the point changes
                MLFLOW_TRACKING_URI=server.uri, **{key: env[key] for key in env if key.startswith("GIT_")},
                OMP_NUM_THREADS="1")  # beside the unit tests (a rented machine's threads change nothing checked)
            runs[name] = _sky_job(task, machine)[1]
        teammate = folder / "teammate"
        _run(["git", "clone", "-q", str(origin), str(teammate)], folder, env)
        _run([*dvc, "exp", "pull", "origin"], teammate, env)  # the experiments of its HEAD, the sweep's base
        shown = json.loads(_run([*dvc, "exp", "show", "--json"], teammate, env).stdout)
        client = MlflowClient(server.uri)
        finetunes = [run for run in client.search_runs([client.get_experiment_by_name("hotdog").experiment_id])
                     if run.info.run_name == "finetune"]
        return SimpleNamespace(runs=runs, shown=shown, finetunes=[
            (r.data.tags.get("dvc_exp_name"), r.info.status, float(r.data.params["run.recipe.optim.lr"]))
            for r in finetunes])
    finally:
        server.kill()


@pytest.fixture(scope="session")
def sweep(tmp_path_factory) -> SimpleNamespace:
    return beside_unit_tests_result("sweep", tmp_path_factory)


@pytest.mark.slow  # two `dvc exp run`s of the hot dog stages (smoke-sized)
def test_two_sweep_points_run_as_on_rented_machines_and_come_back_to_git_dvc_and_mlflow(sweep):
    """Two jobs of cloud/sweep.sky.yaml, each on its own "machine" (a fresh clone of origin, this venv as installed):
    the second restores the stages the points share from the DVC remote's run cache instead of rerunning them; a
    teammate's clone of origin then pulls both experiments with their params and metrics, and the MLflow server holds
    their finished runs, each tagged with its experiment's name and trained with its point's learning rate."""
    runs = sweep.runs
    for name in SWEEP:
        assert f"experiment {name} pushed to origin" in runs[name].stdout, runs[name].stdout[-2000:]
    shared = {"fetch-hotdog", "pretrain-hotdog"}
    assert shared <= ran_stages(runs["point-1"].stdout), runs["point-1"].stdout[-3000:]
    assert "train-hotdog-finetune" in ran_stages(runs["point-2"].stdout)
    assert not shared & ran_stages(runs["point-2"].stdout), runs["point-2"].stdout[-3000:]  # from the run cache

    experiments = {e["name"]: e["data"] for baseline in sweep.shown for exp in (baseline.get("experiments") or [])
                   for e in exp["revs"] if e.get("name")}
    assert sorted(experiments) == sorted(SWEEP), sweep.shown
    for name, lr in SWEEP.items():
        params = experiments[name]["params"]["params.yaml"]["data"]
        assert params["common"]["smoke"] is True
        assert params["hotdog"]["demo"]["finetune"]["optim"]["lr"] == float(lr)
        # metrics are DVC outputs (git-ignored): shown only because the experiment's data came from the remote
        metrics = experiments[name]["metrics"]["metrics/hotdog/finetune.json"]["data"]
        assert "train_acc" in metrics, metrics

    assert sorted(sweep.finetunes) == sorted((name, "FINISHED", float(lr)) for name, lr in SWEEP.items())
