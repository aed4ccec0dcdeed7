#!/usr/bin/env bash
# One sweep point on a rented machine: what the `setup` and `run` of cloud/*.sky.yaml call, and what
# tests/test_cloud.py runs on this machine against a local git remote, DVC remote and MLflow server.
#
#   cloud/run_experiment.sh setup   clone the team's repository (CVFLOW_GIT_URL at CVFLOW_GIT_REF), install cvflow
#   cloud/run_experiment.sh run     dvc exp run --pull --allow-missing with the point's overrides (CVFLOW_SET),
#                                   tracked to MLFLOW_TRACKING_URI; then dvc push and dvc exp push origin
#
# Everything comes from the environment (SkyPilot's `envs` and `secrets`; docs/cloud.md lists them), so the task
# files stay free of values. DVC has no remote runners, so this script is the runner: it is written by hand, but
# every step is a plain git, pip or dvc command a teammate would type.
set -euo pipefail

SCRIPT=cloud/run_experiment.sh
CLONE=${CVFLOW_CLONE:-$HOME/cvflow}          # the repository on the machine (its venv: $CLONE/.venv)
NODES=${SKYPILOT_NUM_NODES:-1}
RANK=${SKYPILOT_NODE_RANK:-0}

die() {  # the project's rule for user mistakes: one line naming what to fix, exit 2
    echo "$SCRIPT: error: $*" >&2
    exit 2
}

step() {  # run a command, or print it (shell-quoted) when CVFLOW_DRY_RUN=1: check a sweep point before renting
    if [[ ${CVFLOW_DRY_RUN:-0} == 1 ]]; then
        printf '+'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

git_auth() {
    # An HTTPS token (SkyPilot secret GIT_TOKEN) reaches git through a credential helper that reads it from the
    # environment when git asks, so it is never written into the clone's URL or config. Git and DVC's scmrepo (the
    # `dvc exp push`) both run `!`-helpers. SSH URLs use the machine's keys instead.
    if [[ -n ${GIT_TOKEN:-} ]]; then
        # shellcheck disable=SC2016 # expanded by the helper's shell when git runs it, not here
        echo 'credential.helper=!f() { echo "username=${GIT_USERNAME:-x-access-token}"; echo "password=${GIT_TOKEN}"; }; f'
    fi
}

setup() {
    [[ -n ${CVFLOW_GIT_URL:-} ]] || die "CVFLOW_GIT_URL is not set: pass the team's repository, e.g. --env CVFLOW_GIT_URL=https://github.com/team/cvflow.git"
    local helper
    helper=$(git_auth)
    if [[ ! -d $CLONE/.git ]]; then  # a reused cluster (`sky launch -c` again) keeps its clone: fetch instead
        step git ${helper:+-c "$helper"} clone -q "$CVFLOW_GIT_URL" "$CLONE"
    else
        step git -C "$CLONE" ${helper:+-c "$helper"} fetch -q origin
    fi
    # the commit to run (a reused clone moves to it too); DVC bases the experiment on it, detached or not
    step git -C "$CLONE" checkout -q --detach "${CVFLOW_GIT_REF:-origin/HEAD}"
    if [[ -n $helper ]]; then  # for the pushes of `run` (the helper, not the token, is stored)
        step git -C "$CLONE" config credential.helper "${helper#credential.helper=}"
    fi
    # DVC's experiments are git commits: an identity for them, unless the environment gives one
    step git -C "$CLONE" config user.name "${GIT_AUTHOR_NAME:-cvflow on SkyPilot}"
    step git -C "$CLONE" config user.email "${GIT_AUTHOR_EMAIL:-cvflow@skypilot.invalid}"
    if [[ ${CVFLOW_SKIP_INSTALL:-0} == 1 ]]; then
        echo "$SCRIPT: CVFLOW_SKIP_INSTALL=1: using $(command -v python3) as installed"
        return
    fi
    # README's install, plus DVC's plugin for the team's remote (CVFLOW_DVC_EXTRA: s3, gs, azure, ssh...)
    step python3 -m venv "$CLONE/.venv"
    step "$CLONE/.venv/bin/pip" install -q -e "$CLONE" ${CVFLOW_DVC_EXTRA:+"dvc[$CVFLOW_DVC_EXTRA]"}
}

overrides() {
    # CVFLOW_SET ("-S key=value -S ..."): split as a shell would (quotes allowed), without evaluating it
    python3 -c 'import shlex, sys
try:
    print("\0".join(shlex.split(sys.argv[1])), end="")
except ValueError as error:
    sys.exit(f"{sys.argv[2]}: error: CVFLOW_SET: {error}: write it as -S key=value -S key=value")' \
        "${CVFLOW_SET:-}" "$SCRIPT"
}

run() {
    [[ -d $CLONE/.git ]] || die "$CLONE is not a clone: run \`$SCRIPT setup\` first (SkyPilot's setup does)"
    # A run that cannot be recorded must not happen: without a server the runs would land in a file on a machine
    # about to be given back.
    [[ -n ${MLFLOW_TRACKING_URI:-} ]] || die "MLFLOW_TRACKING_URI is not set: pass the team's MLflow server with --secret MLFLOW_TRACKING_URI=https://..."
    cd "$CLONE"
    if [[ -f .venv/bin/activate ]]; then
        # shellcheck disable=SC1091
        . .venv/bin/activate
    fi
    local name=${CVFLOW_EXP_NAME:-sky-$(date -u +%Y%m%d-%H%M%S)}
    local -a args=()
    mapfile -d '' -t args < <(overrides)
    wait $! || exit 2  # a point that does not split must not run as the baseline (overrides printed why)
    if (( NODES > 1 )); then
        # SkyPilot's view of the job, handed to cvflow's launcher (stages/launch.py, docs/gpus.md): the node count
        # is a param (it changes the results), this node's rank and node 0's rendezvous (the first of
        # SKYPILOT_NODE_IPS) are environment variables. Every node runs the same `dvc exp run`, so each training
        # stage starts on every node in the same order and its processes meet; node 0 holds the outputs.
        local head
        head=$(head -n1 <<<"${SKYPILOT_NODE_IPS:?SKYPILOT_NODE_IPS is set by SkyPilot on every node}")
        args+=(-S "common.nodes=$NODES")
        export CVFLOW_NODE_RANK=$RANK CVFLOW_RDZV_ENDPOINT=$head:${CVFLOW_RDZV_PORT:-29400}
        [[ ${CVFLOW_DRY_RUN:-0} != 1 ]] || echo "+ export CVFLOW_NODE_RANK=$CVFLOW_NODE_RANK CVFLOW_RDZV_ENDPOINT=$CVFLOW_RDZV_ENDPOINT"
    fi
    local -a targets=()
    read -r -a targets <<<"${CVFLOW_TARGETS:-}"
    # a reused cluster's clone holds the previous point's results applied (params.yaml, dvc.lock): start clean
    step git reset -q --hard
    step dvc exp run --pull --allow-missing -n "$name" "${args[@]}" "${targets[@]}"
    if (( RANK != 0 )); then  # rank 0, on node 0, wrote the outputs and the runs: its experiment is the result
        echo "$SCRIPT: node $RANK of $NODES: done (node 0 pushes the experiment)"
        return
    fi
    # The outputs of the stages run and the run cache to the DVC remote (a later point's --pull restores the stages
    # it shares from it), then the experiment itself (its git ref, and its data once more) to the git remote
    step dvc push --run-cache ${targets[0]:+--with-deps "${targets[@]}"}
    step dvc exp push origin "$name"
    [[ ${CVFLOW_DRY_RUN:-0} == 1 ]] ||
        echo "$SCRIPT: experiment $name pushed to origin; its runs are on the MLflow server (tag dvc_exp_name=$name)"
}

case ${1:-} in
    setup) setup ;;
    run) run ;;
    *) die "usage: $SCRIPT setup|run (got '${1:-}')" ;;
esac
