#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost for the tests (Debian's slurm-wlm and munge):
#   cluster.sh start   install if missing, write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   cluster.sh stop    stop the daemons this script started (clients then fail at once, not after ~9 s)
# Partitions `cpu` (default) and `gpu` are the same node; SLURM enforces --mem (OverMemoryKill).
# Needs root. Not for real sites: see profiles/slurm/ for those.
set -euo pipefail
state=/tmp/nnunet-workflow-slurm
case "${1:-}" in
start)
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
    mkdir -p "$state" /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
    chown munge: /etc/munge/munge.key /run/munge && chmod 400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    cpus=$(nproc)
    memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > /etc/slurm/slurm.conf <<CONF
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
NodeName=localhost CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
CONF
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd -N localhost
    for _ in $(seq 60); do
        sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && exit 0
        sleep 1
    done
    echo "SLURM did not come up; see /var/log/slurm/" >&2
    exit 1
    ;;
stop)
    for daemon in slurmd slurmctld; do
        if [ -f "$state/$daemon.pid" ]; then kill "$(cat "$state/$daemon.pid")" 2>/dev/null || true
        else pkill -x "$daemon" 2>/dev/null || true; fi
    done
    pkill -x munged 2>/dev/null || true
    # With the controller gone, every `scontrol show config` would wait ~9 s for it, and the slurm executor
    # plugin runs that at import, in every later snakemake start on this machine: let clients give up at once
    # (`start` writes the file anew).
    if [ -f /etc/slurm/slurm.conf ] && ! grep -q '^MessageTimeout=' /etc/slurm/slurm.conf; then
        echo "MessageTimeout=1" >> /etc/slurm/slurm.conf
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
