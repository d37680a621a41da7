#!/usr/bin/env bash
# CI: a single-node Slurm from Debian's packages (munge, slurmctld, slurmd),
# a sharded sweep as a 4-task array job, the merge as a job that depends on
# it, compared byte for byte with the unsharded run (docs/cluster.md).
# Needs root (installs packages, starts daemons); stops what it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "slurm.sh: needs root (apt-get, daemons); skipped" >&2
	exit 0
fi
[ -x ./lifsim ] || { echo "slurm.sh: build lifsim first (./quickstart test)" >&2; exit 1; }

missing=""
for p in slurm-wlm munge; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

work=$(mktemp -d /tmp/lifsim-slurm.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
	set +e
	[ -n "${SLURM_CONF:-}" ] && scancel --user=root >/dev/null 2>&1
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null
		for _ in $(seq 50); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
	done
	rm -rf "$work"
}
trap cleanup EXIT

# munge: a key (made by the package, else here) and a daemon unless one runs
if [ ! -s /etc/munge/munge.key ]; then
	mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
		dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
	chown munge:munge /etc/munge/munge.key
	chmod 400 /etc/munge/munge.key
fi
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
	mkdir -p /run/munge /var/log/munge /var/lib/munge
	chown munge:munge /run/munge /var/log/munge /var/lib/munge
	runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/lifsim-ci.pid
	for _ in $(seq 50); do [ -s /run/munge/lifsim-ci.pid ] && break; sleep 0.1; done
	pids+=("$(cat /run/munge/lifsim-ci.pid)")
	munge -n </dev/null | unmunge >/dev/null
fi

# slurm: one node with this machine's CPUs; everything under $work
host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$work/ctld" "$work/d"
export SLURM_CONF=$work/slurm.conf
cat >"$SLURM_CONF" <<EOT
ClusterName=lifsimci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$work/ctld
SlurmdSpoolDir=$work/d
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOT
slurmctld -f "$SLURM_CONF" -i
for _ in $(seq 100); do [ -s "$work/slurmctld.pid" ] && break; sleep 0.1; done
pids+=("$(cat "$work/slurmctld.pid")")
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do [ -s "$work/slurmd.pid" ] && break; sleep 0.1; done
pids+=("$(cat "$work/slurmd.pid")")
up=""
for _ in $(seq 120); do
	state=$(sinfo -h -N -o %t 2>/dev/null | head -1)
	case $state in idle* | mix* | alloc*) up=1; break ;; esac
	sleep 0.5
done
if [ -z "$up" ]; then
	echo "slurm.sh: the node did not come up (state '$state')" >&2
	tail -20 "$work/slurmctld.log" "$work/slurmd.log" >&2
	exit 1
fi

# the sweep: 8 points of a small synthetic OPT-6.7B
cat >"$work/x.ini" <<EOT
[experiment]
model = $src/models/llms/opt-6.7b.ini
device = $src/models/devices/m1max.ini
[synth]
tokens = 40
[sim]
window = 0, 4
layout = separate, rowcol
parallelism = 8, 32
EOT
./lifsim -q sweep "$work/x.ini" -o "$work/whole"
cd "$work"
jid=$(sbatch --parsable --array=0-3 --cpus-per-task=1 --output="$work/shard-%a.out" \
	--wrap "$src/lifsim -q sweep $work/x.ini -o $work/shard\$SLURM_ARRAY_TASK_ID --shard \$SLURM_ARRAY_TASK_ID/4")
sbatch --wait --dependency=afterok:"$jid" --output="$work/merge.out" \
	--wrap "$src/lifsim -q merge $work/shard0 $work/shard1 $work/shard2 $work/shard3 -o $work/merged" >/dev/null ||
	{ echo "slurm.sh: the merge job failed" >&2; cat "$work"/*.out >&2; exit 1; }
for f in results.csv results.jsonl config.resolved.ini; do
	cmp "$work/whole/$f" "$work/merged/$f" || { echo "slurm.sh: merged $f differs from the unsharded run" >&2; exit 1; }
done
for i in 0 1 2 3; do
	grep -q '"threads":[[:space:]]*1,' "$work/shard$i/provenance.json" ||
		{ echo "slurm.sh: shard $i did not run one thread under --cpus-per-task=1" >&2; cat "$work/shard$i/provenance.json" >&2; exit 1; }
	grep -q "\"shard\":[[:space:]]*\"$i/4\"" "$work/shard$i/provenance.json"
done
echo "slurm.sh: 4-task array job + dependent merge: results.csv, results.jsonl and config.resolved.ini equal the unsharded run's ($(($(wc -l <"$work/whole/results.csv") - 1)) points)"
