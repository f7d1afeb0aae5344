#!/usr/bin/env bash
# slurm-single-node.sh - a real single-node Slurm cluster on localhost, for CI.
#
# Target: Debian 12 (bookworm), run as root, systemd NOT PID 1 (container /
# sandbox). Installs Debian's Slurm 22.05 + MUNGE (and, by default, slurmdbd +
# MariaDB so that `sacct` works), writes /etc/slurm/slurm.conf for one node
# named `hostname -s` on 127.0.0.1, starts the daemons directly from their
# binaries, and waits until `sinfo` shows the node up (idle, or busy with jobs).
#
# Usage:
#   slurm-single-node.sh [start] [--no-accounting]   # default action: start
#   slurm-single-node.sh stop                        # stop every daemon by its PID file
#   slurm-single-node.sh status
#   slurm-single-node.sh restart-slurmd              # stop and start slurmd only: running
#                                                    # jobs carry on (tests/test_slurm.py)
#
# Options / environment:
#   --no-accounting          no slurmdbd/MariaDB; AccountingStorageType=none.
#                            `sacct` then fails ("Slurm accounting storage is
#                            disabled"), so the Snakemake profile must set
#                            `slurm-status-command: squeue`.
#   SLURM_CI_PARTITION=name  partition name (default: debug)
#   SLURM_CI_CPUS=N          advertise N CPUs instead of the real count
#                            (oversubscribes the cores; uses config_overrides)
#   SLURM_CI_WAIT=S          seconds to wait for the node to turn idle (default 120)
#
# Idempotent: a second `start` leaves running daemons alone (restarting the
# Slurm daemons only if the generated config changed) and just waits for idle;
# when everything is already up this takes about a second.
#
# Exit codes (the pytest suite maps 3 and 4 to a skip with the reason):
#   0  cluster up (start) / done (stop, status, restart-slurmd)
#   1  a daemon failed to start or the node did not turn idle (logs printed)
#   2  usage error
#   3  apt-get could not install the packages (log: /tmp/slurm-single-node-apt.log)
#   4  unsupported machine: not root, or not Debian (no apt-get/dpkg)
# Daemons write their PIDs to:
#   /run/munge/munged.pid /run/mysqld/mysqld.pid /run/slurmdbd.pid
#   /run/slurmctld.pid /run/slurmd.pid
# `stop` signals exactly those PIDs (never kills by name).
set -euo pipefail

ACTION=start
ACCOUNTING=1
for arg in "$@"; do
    case "$arg" in
        start|stop|status|restart-slurmd) ACTION=$arg ;;
        --no-accounting) ACCOUNTING=0 ;;
        --accounting) ACCOUNTING=1 ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

PARTITION=${SLURM_CI_PARTITION:-debug}
WAIT_S=${SLURM_CI_WAIT:-120}
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=slurm-ci-local     # MariaDB listens on 127.0.0.1 only; CI use only

MUNGE_PID=/run/munge/munged.pid
MYSQL_PID=/run/mysqld/mysqld.pid
DBD_PID=/run/slurmdbd.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[slurm-single-node] $*"; }
# die MESSAGE [CODE]: print MESSAGE and exit with CODE (default 1)
die() { echo "[slurm-single-node] ERROR: $1" >&2; exit "${2:-1}"; }

T_START=$(now)

[[ $(id -u) -eq 0 ]] || die "must run as root" 4

# is_running PIDFILE COMM: true if the PID in PIDFILE is alive and is COMM.
is_running() {
    local pidfile=$1 comm=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(</proc/"$pid"/comm) == "$comm" ]]
}

# stop_pidfile PIDFILE COMM: SIGTERM that PID, wait up to 30 s, then SIGKILL.
stop_pidfile() {
    local pidfile=$1 comm=$2 pid i
    if ! is_running "$pidfile" "$comm"; then
        log "$comm: not running"
        rm -f "$pidfile"
        return 0
    fi
    pid=$(<"$pidfile")
    log "$comm: stopping PID $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
        [[ -d /proc/$pid ]] || break
        sleep 0.25
    done
    if [[ -d /proc/$pid ]]; then
        log "$comm: still alive after 30 s, sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
}

# wait_for DESCRIPTION SECONDS CMD...: poll CMD (5 s cap per try) every
# 0.25 s, for about SECONDS; on timeout print the daemon logs and exit.
wait_for() {
    local what=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 4; i++)); do
        if timeout 5 "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    show_logs
    die "timed out after ${secs}s waiting for: $what"
}

show_logs() {
    local f
    for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/slurm/slurmdbd.log; do
        [[ -f $f ]] && { echo "--- tail $f"; tail -n 20 "$f"; }
    done
    return 0
}

do_stop() {
    # reverse start order; only our PID files, never by name
    stop_pidfile "$SLURMD_PID" slurmd
    stop_pidfile "$CTLD_PID" slurmctld
    stop_pidfile "$DBD_PID" slurmdbd
    stop_pidfile "$MYSQL_PID" mariadbd
    stop_pidfile "$MUNGE_PID" munged
}

do_status() {
    local pf comm
    for pf in "$MUNGE_PID:munged" "$MYSQL_PID:mariadbd" "$DBD_PID:slurmdbd" \
              "$CTLD_PID:slurmctld" "$SLURMD_PID:slurmd"; do
        comm=${pf##*:}
        pf=${pf%:*}
        if is_running "$pf" "$comm"; then
            printf '%-10s running  PID %s\n' "$comm" "$(<"$pf")"
        else
            printf '%-10s stopped\n' "$comm"
        fi
    done
    if command -v sinfo >/dev/null && is_running "$CTLD_PID" slurmctld; then
        sinfo
    fi
}

# start_slurmd: start slurmd unless it runs, and wait for its PID file.
start_slurmd() {
    if is_running "$SLURMD_PID" slurmd; then
        log "slurmd already running (PID $(<"$SLURMD_PID"))"
        return 0
    fi
    rm -f "$SLURMD_PID"
    /usr/sbin/slurmd
    wait_for "slurmd pid file" 30 test -s "$SLURMD_PID"
    log "slurmd started (PID $(<"$SLURMD_PID"))"
}

# do_restart_slurmd: stop slurmd (the slurmstepd of running jobs carry on without
# it), start it again and wait until slurmctld has its registration.
do_restart_slurmd() {
    local started
    is_running "$CTLD_PID" slurmctld || die "slurmctld is not running: start the cluster first"
    stop_pidfile "$SLURMD_PID" slurmd
    started=$(date +%FT%T)
    start_slurmd
    # SlurmdStartTime=<ISO time> in `scontrol show node`: not older than this start
    wait_for "slurmd registered with slurmctld" 60 bash -c \
        '[[ $(scontrol show node "$1") =~ SlurmdStartTime=([^ ]+) ]] && ! [[ ${BASH_REMATCH[1]} < $2 ]]' \
        _ "$(hostname -s)" "$started"
    log "slurmd restarted in $(since "$T_START")s"
}

case $ACTION in
    stop) do_stop; exit 0 ;;
    status) do_status; exit 0 ;;
    restart-slurmd) do_restart_slurmd; exit 0 ;;
esac

# ---------------------------------------------------------------- packages
T_PKG=$(now)
if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    die "not a Debian machine (needs /etc/debian_version, apt-get, dpkg-query)" 4
fi
pkgs=(munge slurmctld slurmd slurm-client)
((ACCOUNTING)) && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $st == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    # Keep maintainer scripts from starting services: we start them ourselves.
    tmp_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        tmp_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/slurm-single-node-apt.log 2>&1; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update -q >>/tmp/slurm-single-node-apt.log 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/slurm-single-node-apt.log 2>&1 ||
            { tail -n 30 /tmp/slurm-single-node-apt.log; ((tmp_policy)) && rm -f /usr/sbin/policy-rc.d
              die "apt-get install ${missing[*]} failed (log: /tmp/slurm-single-node-apt.log)" 3; }
    fi
    ((tmp_policy)) && rm -f /usr/sbin/policy-rc.d
else
    log "packages already installed"
fi
PKG_S=$(since "$T_PKG")
T_DAEMONS=$(now)

# ---------------------------------------------------------------- munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    runuser -u munge -- /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
if is_running "$MUNGE_PID" munged; then
    log "munged already running (PID $(<"$MUNGE_PID"))"
else
    rm -f "$MUNGE_PID"
    # --force: get past a stale socket left by an unclean stop
    runuser -u munge -- /usr/sbin/munged --force
    log "munged started (PID $(<"$MUNGE_PID"))"
fi
wait_for "munge round trip" 20 bash -c 'munge -n | unmunge'

# ---------------------------------------------------------------- slurm.conf
NODE=$(hostname -s)
# slurmd -C prints the real topology: NodeName=x CPUs=2 Boards=1 ... RealMemory=24105
hw=$(slurmd -C)
hw=${hw%%$'\n'*}
hwval() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
CPUS=$(hwval CPUs)
REALMEM=$(hwval RealMemory)
MEM=$((REALMEM * 90 / 100))       # leave ~10% for the OS / daemons
if [[ -n ${SLURM_CI_CPUS:-} ]]; then
    node_hw="CPUs=$SLURM_CI_CPUS"
    overrides="SlurmdParameters=config_overrides"
    CPUS=$SLURM_CI_CPUS
else
    node_hw="CPUs=$CPUS Boards=$(hwval Boards) SocketsPerBoard=$(hwval SocketsPerBoard) CoresPerSocket=$(hwval CoresPerSocket) ThreadsPerCore=$(hwval ThreadsPerCore)"
    overrides="#SlurmdParameters=config_overrides"
fi
DEFMEM=$((MEM / CPUS))
((DEFMEM > 1000)) && DEFMEM=1000   # jobs without --mem get 1 GB/CPU, not the whole node

if ((ACCOUNTING)); then
    # job_comment: keep `sbatch --comment` in the database, so that `sacct -o Comment`
    # shows the Snakemake plugin's "rule_<rule>_wildcards_<values>" per job
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment"
else
    acct="AccountingStorageType=accounting_storage/none"
fi

new_conf=$(mktemp)
cat >"$new_conf" <<EOF
# Written by slurm-single-node.sh: single-node CI cluster on 127.0.0.1
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups in this sandbox: plain /proc process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEFMEM
# finished jobs stay visible to squeue for 300 s (the Snakemake plugin's
# squeue status mode needs >= 3 x its first status-check delay)
MinJobAge=300
KillWait=5
$acct
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$overrides
NodeName=$NODE NodeAddr=127.0.0.1 $node_hw RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
install -d -o slurm -g slurm -m 0755 /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
conf_changed=0
if ! cmp -s "$new_conf" "$CONF"; then
    install -m 0644 "$new_conf" "$CONF"
    conf_changed=1
    log "wrote $CONF"
fi
rm -f "$new_conf"
if ((conf_changed)); then
    # running daemons would keep the old config: restart them
    if is_running "$SLURMD_PID" slurmd || is_running "$CTLD_PID" slurmctld; then
        log "config changed: restarting slurmd/slurmctld"
        stop_pidfile "$SLURMD_PID" slurmd
        stop_pidfile "$CTLD_PID" slurmctld
    fi
fi

# ---------------------------------------------------------------- accounting
if ((ACCOUNTING)); then
    install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        log "initialising MariaDB data directory"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    if is_running "$MYSQL_PID" mariadbd; then
        log "mariadbd already running (PID $(<"$MYSQL_PID"))"
    else
        rm -f "$MYSQL_PID"
        # Debian's config: pid /run/mysqld/mysqld.pid, socket
        # /run/mysqld/mysqld.sock, bind 127.0.0.1
        setsid /usr/sbin/mariadbd --user=mysql --innodb-lock-wait-timeout=900 \
            </dev/null >>/var/log/mysql/slurm-single-node.log 2>&1 &
        wait_for "MariaDB" 60 mariadb-admin --socket=/run/mysqld/mysqld.sock ping
        wait_for "MariaDB pid file" 10 test -s "$MYSQL_PID"
        log "mariadbd started (PID $(<"$MYSQL_PID"))"
    fi
    mariadb --socket=/run/mysqld/mysqld.sock <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
    new_dbd=$(mktemp)
    cat >"$new_dbd" <<EOF
# Written by slurm-single-node.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
DebugLevel=info
LogFile=/var/log/slurm/slurmdbd.log
PidFile=$DBD_PID
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
    if ! cmp -s "$new_dbd" "$DBD_CONF"; then
        install -m 0600 -o slurm -g slurm "$new_dbd" "$DBD_CONF"
        log "wrote $DBD_CONF"
        stop_pidfile "$DBD_PID" slurmdbd >/dev/null
    fi
    rm -f "$new_dbd"
    chown slurm:slurm "$DBD_CONF"
    chmod 0600 "$DBD_CONF"
    if is_running "$DBD_PID" slurmdbd; then
        log "slurmdbd already running (PID $(<"$DBD_PID"))"
    else
        rm -f "$DBD_PID"
        /usr/sbin/slurmdbd
        wait_for "slurmdbd on port 6819" 60 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'
        log "slurmdbd started (PID $(<"$DBD_PID"))"
    fi
fi

# ---------------------------------------------------------------- slurmctld, slurmd
if is_running "$CTLD_PID" slurmctld; then
    log "slurmctld already running (PID $(<"$CTLD_PID"))"
else
    rm -f "$CTLD_PID"
    /usr/sbin/slurmctld
    wait_for "slurmctld (scontrol ping)" 60 bash -c 'scontrol ping | grep -q UP'
    log "slurmctld started (PID $(<"$CTLD_PID"))"
fi
start_slurmd

# ---------------------------------------------------------------- wait for idle
state=""
resumed=0
for ((i = 0; i < WAIT_S * 4; i++)); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    state=${state%%$'\n'*}
    case $state in
        # up: idle, or already running jobs (a second `start` during a test run)
        idle | mix | alloc | comp) break ;;
        down* | drain* | drng* | fail*)
            # e.g. "Node unexpectedly rebooted" after an unclean stop
            if ((!resumed && i > 8)); then
                log "node state '$state': resuming it"
                scontrol update NodeName="$NODE" State=RESUME || true
                resumed=1
            fi
            ;;
    esac
    sleep 0.25
done
if [[ ! $state =~ ^(idle|mix|alloc|comp)$ ]]; then
    sinfo -N -l || true
    show_logs
    die "node $NODE not idle after ${WAIT_S}s (state: '${state:-?}')"
fi

if ((ACCOUNTING)); then
    # The cluster registers itself with slurmdbd when slurmctld starts;
    # make sure it has, so that sacct/sacctmgr answer.
    wait_for "cluster 'ci' in slurmdbd" 30 bash -c 'sacctmgr -n -P list cluster format=cluster | grep -qx ci'
fi

sinfo
log "node $NODE idle; partition '$PARTITION'; accounting: $( ((ACCOUNTING)) && echo slurmdbd || echo none )"
log "PIDs: munged=$(<"$MUNGE_PID")$( ((ACCOUNTING)) && echo " mariadbd=$(<"$MYSQL_PID") slurmdbd=$(<"$DBD_PID")") slurmctld=$(<"$CTLD_PID") slurmd=$(<"$SLURMD_PID")"
log "timing: packages ${PKG_S}s, daemons $(since "$T_DAEMONS")s, total $(since "$T_START")s"
log "stop with: $0 stop"
