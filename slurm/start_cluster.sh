#!/usr/bin/env bash
# Start a real one-node SLURM cluster (with accounting, so sacct works) on this Debian 12 machine.
#
#   sudo slurm/start_cluster.sh        # idempotent: a second call only starts what is not running
#   slurm/stop_cluster.sh              # cancels jobs, stops every daemon this script started
#
# Installs (if missing) slurmctld slurmd slurm-client munge slurmdbd mariadb-server, with a
# policy-rc.d that keeps the packages from starting their own services.  Everything it writes
# (config, munge key and socket, MariaDB datadir, state, logs, pid files) lives under
# $NOISYBENCH_SLURM_DIR (default /tmp/noisybench-slurm); the only file outside it is the
# symlink /etc/slurm/slurm.conf -> $DIR/etc/slurm.conf, so that sbatch/sinfo/submitit find the
# cluster without SLURM_CONF (skipped, with a note, if a foreign slurm.conf is already there).
# Needs root, no systemd.  Background and hurdles: shared/notes/slurm.md and slurm/README.md.
set -euo pipefail

DIR=${NOISYBENCH_SLURM_DIR:-/tmp/noisybench-slurm}
CLUSTER=${NOISYBENCH_SLURM_CLUSTER:-noisybench}
DB_PORT=${NOISYBENCH_SLURM_DB_PORT:-16306}
CTLD_PORT=${NOISYBENCH_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${NOISYBENCH_SLURM_SLURMD_PORT:-16818}
DBD_PORT=${NOISYBENCH_SLURM_DBD_PORT:-16819}
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
ETC_LINK=/etc/slurm/slurm.conf

ETC=$DIR/etc; RUN=$DIR/run; LOG=$DIR/log; STATE=$DIR/state; DB=$DIR/mysql; MUNGE=$DIR/munge
export SLURM_CONF=$ETC/slurm.conf   # slurmdbd finds slurmdbd.conf next to it
export DEBIAN_FRONTEND=noninteractive

T0=$(date +%s.%N)
say() { echo "start_cluster: $*" >&2; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# die MESSAGE [LOGFILE...]: clear message, then the tail of the relevant daemon logs.
die() {
    local msg=$1; shift
    echo "start_cluster: ERROR: $msg" >&2
    local f
    for f in "$@"; do
        if [[ -s $f ]]; then
            echo "----- last lines of $f -----" >&2
            tail -n 25 "$f" >&2
        fi
    done
    echo "start_cluster: files are in $DIR; clean up with slurm/stop_cluster.sh" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"

# pid_alive PIDFILE COMM: the pid file names a live process whose command is COMM.
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]
}

# not_dead PIDFILE COMM: false once PIDFILE names a process that is gone (daemon died at start).
not_dead() { [[ ! -s $1 ]] || pid_alive "$1" "$2"; }

WHY=""
# wait_for SECONDS GUARD COMMAND...: retry COMMAND every 0.2 s until it succeeds; give up after
# SECONDS (status 1) or as soon as the shell snippet GUARD fails (status 2: the daemon died).
wait_for() {
    local secs=$1 guard=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { WHY="no answer after $secs s"; return 1; }
        if [[ -n $guard ]] && ! eval "$guard" 2>/dev/null; then WHY="the daemon exited"; return 2; fi
        sleep 0.2
    done
}

# detached COMMAND...: run a daemon without the caller's open file descriptors above 2, so that
# no pipe of a CI runner or $(...) stays open (and blocked) for as long as the daemon lives.
detached() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-"; fi
        done
        exec "$@"
    )
}

# ---------------------------------------------------------------- packages
APT_UNDO=()   # commands that put back what install_packages changed outside $DIR
apt_undo() {
    local cmd
    for cmd in "${APT_UNDO[@]}"; do eval "$cmd"; done
    APT_UNDO=()
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    say "installing ${missing[*]} ..."
    trap apt_undo EXIT; trap "exit 130" INT TERM
    # Package scripts would start the services themselves (munge, mariadb, slurm*): a policy-rc.d
    # that exits 101 forbids it.  An existing policy-rc.d is set aside and put back afterwards.
    local policy=/usr/sbin/policy-rc.d backup
    if [[ -e $policy ]]; then
        backup=$(mktemp /usr/sbin/.policy-rc.d.noisybench.XXXXXX)
        cp -p "$policy" "$backup"
        APT_UNDO+=("mv -f '$backup' '$policy'")
    else
        APT_UNDO+=("rm -f '$policy'")
    fi
    printf '#!/bin/sh\n# written by noisybench slurm/start_cluster.sh during apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    # The man-db trigger took 12 of the ~35 s of the install; skip it this once (as debconf's
    # man-db/auto-update=false would), then put the flag back.
    local mandb=/var/lib/man-db/auto-update
    if [[ -e $mandb ]]; then
        mv -f "$mandb" "$mandb.noisybench"
        APT_UNDO+=("mv -f '$mandb.noisybench' '$mandb'")
    fi
    local rc=0 aptlog=$DIR/log/apt.log
    {
        # --force-unsafe-io: dpkg skips its fsync per unpacked file (an fsync took ~14 ms here).
        local opts=(-y -q --no-install-recommends -o Dpkg::Options::=--force-unsafe-io)
        apt-get install "${opts[@]}" "${missing[@]}" ||
            { apt-get update -q && apt-get install "${opts[@]}" "${missing[@]}"; }
    } >"$aptlog" 2>&1 || rc=$?
    apt_undo
    trap - EXIT INT TERM
    ((rc == 0)) || die "apt-get install ${missing[*]} failed" "$aptlog"
    say "packages installed ($(elapsed) s)"
}

# ---------------------------------------------------------------- configuration
write_if_changed() {   # write_if_changed FILE MODE < content
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    chmod "$2" "$tmp"
    if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; CHANGED+=("$1"); fi
}
CHANGED=()

write_config() {
    # Node topology as slurmd sees it; RealMemory a little lower (5 %) so the node is never
    # drained for having "less memory than configured".
    local line node topo mem
    line=$(slurmd -C 2>/dev/null | head -n 1) || true
    [[ $line == NodeName=* ]] || die "slurmd -C printed no node line: '$line'"
    node=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$line")
    topo=$(sed -E 's/^NodeName=[^ ]+ //; s/ ?RealMemory=[0-9]+//' <<<"$line")
    mem=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$line")
    mem=$(( ${mem:-1024} * 95 / 100 ))
    echo "$node" >"$ETC/nodename"

    write_if_changed "$ETC/slurm.conf" 644 <<EOF
# Written by noisybench slurm/start_cluster.sh -- one-node test cluster, rewritten on every start.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE/munge.socket
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# The default 3 s batch delay made job arrays several times slower.
SchedulerParameters=batch_sched_delay=0
# submitit's job wrapper ignores SIGTERM ("Bypassing signal SIGTERM"), so a cancelled submitit job
# held its CPUs for the default KillWait of 30 s (state CG) and delayed the jobs behind it.
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# Clients reach slurmdbd with the munge socket named here, not AuthInfo's (else sacct fails).
AccountingStoragePass=socket=$MUNGE/munge.socket
NodeName=$node NodeAddr=127.0.0.1 $topo RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

    # The DB password is made once and kept: a running slurmdbd keeps using it.
    [[ -s $ETC/db.password ]] || (umask 077; head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$ETC/db.password")
    write_if_changed "$ETC/slurmdbd.conf" 600 <<EOF
# Written by noisybench slurm/start_cluster.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$ETC/db.password")
StorageLoc=slurm_acct_db
EOF

    write_if_changed "$ETC/my.cnf" 644 <<EOF
# Written by noisybench slurm/start_cluster.sh: private MariaDB for slurmdbd only.
[mysqld]
user=mysql
datadir=$DB
socket=$RUN/mysql/mysqld.sock
pid-file=$RUN/mysql/mariadb.pid
log-error=$LOG/mariadb.log
bind-address=127.0.0.1
port=$DB_PORT
skip-name-resolve
# slurmdbd logs "settings not recommended: innodb_buffer_pool_size": harmless for a test cluster.
innodb_buffer_pool_size=64M
# A throw-away accounting DB: no fsync per transaction (fsync cost ~14 ms on the CI disk, and
# slurmdbd's first start creates dozens of tables).
innodb_flush_log_at_trx_commit=0
innodb_doublewrite=0
innodb_flush_method=nosync
innodb_lock_wait_timeout=900
[client]
socket=$RUN/mysql/mysqld.sock
port=$DB_PORT
EOF

    # Let sbatch/sinfo/sacct and submitit find this cluster without SLURM_CONF.
    # Left alone if it is a real file or points at another live config (then SLURM_CONF is needed).
    if [[ ! -e $ETC_LINK || ( -L $ETC_LINK && $(readlink "$ETC_LINK") == "$ETC/slurm.conf" ) ]]; then
        mkdir -p "$(dirname "$ETC_LINK")"
        ln -sfn "$ETC/slurm.conf" "$ETC_LINK"
    else
        say "note: $ETC_LINK is not this cluster's and was left alone; export SLURM_CONF=$ETC/slurm.conf"
    fi
}

# ---------------------------------------------------------------- daemons
STARTED=()
started() { STARTED+=("$1"); say "starting $1 ($(elapsed) s)"; }

start_munge() {
    pid_alive "$MUNGE/munged.pid" munged && return 0
    # munged refuses to run as root and insists on private, munge-owned key and socket dirs.
    mkdir -p "$MUNGE"
    chown munge:munge "$MUNGE"; chmod 755 "$MUNGE"
    if [[ ! -s $MUNGE/munge.key ]]; then
        runuser -u munge -- mungekey --create --keyfile="$MUNGE/munge.key" >>"$LOG/munged.log" 2>&1 ||
            die "mungekey --create failed" "$LOG/munged.log"
    fi
    chown munge:munge "$MUNGE/munge.key"; chmod 600 "$MUNGE/munge.key"
    touch "$LOG/munged.log"; chown munge:munge "$LOG/munged.log"
    rm -f "$MUNGE/munge.socket" "$MUNGE/munge.socket.lock" "$MUNGE/munged.pid"
    started munged
    detached runuser -u munge -- munged --socket="$MUNGE/munge.socket" --key-file="$MUNGE/munge.key" \
        --pid-file="$MUNGE/munged.pid" --log-file="$LOG/munged.log" --seed-file="$MUNGE/munged.seed" \
        </dev/null >>"$LOG/munged.log" 2>&1 || die "munged did not start" "$LOG/munged.log"
    wait_for 10 'not_dead "$MUNGE/munged.pid" munged' sh -c "munge -n --socket='$MUNGE/munge.socket' | unmunge --socket='$MUNGE/munge.socket'" ||
        die "munge does not answer on $MUNGE/munge.socket ($WHY)" "$LOG/munged.log"
}

# mariadbd_running: a mariadbd of this directory runs (its pid file comes only once it is ready).
mariadbd_running() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(cat "$p/comm" 2>/dev/null) == mariadbd ]] || continue
        { tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | grep -qxF -- "--defaults-file=$ETC/my.cnf" && return 0
    done
    return 1
}

start_mariadb() {
    if ! pid_alive "$RUN/mysql/mariadb.pid" mariadbd; then
        if [[ ! -d $DB/mysql ]]; then
            rm -rf "$DB"; mkdir -p "$DB"; chown mysql:mysql "$DB"
            mariadb-install-db --defaults-file="$ETC/my.cnf" --auth-root-authentication-method=socket \
                --skip-test-db >"$LOG/mariadb-install.log" 2>&1 ||
                die "mariadb-install-db failed" "$LOG/mariadb-install.log"
        fi
        chown -R mysql:mysql "$DB"
        mkdir -p "$RUN/mysql"; chown mysql:mysql "$RUN/mysql"
        touch "$LOG/mariadb.log"; chown mysql:mysql "$LOG/mariadb.log"
        # setsid -f: own session, forked off at once, so it outlives this shell, ignores the
        # caller's signals, and no waiting shell of ours lingers (holding the start lock).
        started mariadbd
        detached setsid -f mariadbd --defaults-file="$ETC/my.cnf" </dev/null >>"$LOG/mariadb.log" 2>&1
        mariadb_starting=1
    fi
    wait_for 60 '[[ -z ${mariadb_starting:-} ]] || mariadbd_running' mariadb-admin --defaults-file="$ETC/my.cnf" ping ||
        die "MariaDB does not answer on $RUN/mysql/mysqld.sock ($WHY)" "$LOG/mariadb.log"
    # (Re)create the slurmdbd user; idempotent.
    mariadb --defaults-file="$ETC/my.cnf" -uroot >>"$LOG/mariadb-install.log" 2>&1 <<EOF ||
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$ETC/db.password")';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$ETC/db.password")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
        die "could not create the slurm database user" "$LOG/mariadb-install.log" "$LOG/mariadb.log"
}

start_slurmdbd() {
    pid_alive "$RUN/slurmdbd.pid" slurmdbd && return 0
    started slurmdbd
    detached slurmdbd </dev/null >>"$LOG/slurmdbd.log" 2>&1 || die "slurmdbd did not start" "$LOG/slurmdbd.log"
    # sacctmgr answers once slurmdbd has connected to MariaDB and built its tables.
    wait_for 60 'not_dead "$RUN/slurmdbd.pid" slurmdbd' sacctmgr -n -P show cluster ||
        die "slurmdbd does not answer on 127.0.0.1:$DBD_PORT ($WHY)" "$LOG/slurmdbd.log"
}

register_cluster() {
    if [[ -z $(sacctmgr -n -P show cluster "$CLUSTER" format=cluster 2>/dev/null) ]]; then
        sacctmgr -i add cluster "$CLUSTER" >>"$LOG/sacctmgr.log" 2>&1 ||
            die "sacctmgr add cluster $CLUSTER failed" "$LOG/sacctmgr.log" "$LOG/slurmdbd.log"
    fi
    if [[ -z $(sacctmgr -n -P show account "$CLUSTER" format=account 2>/dev/null) ]]; then
        sacctmgr -i add account "$CLUSTER" cluster="$CLUSTER" description=noisybench organization=noisybench \
            >>"$LOG/sacctmgr.log" 2>&1 || die "sacctmgr add account failed" "$LOG/sacctmgr.log"
    fi
    if [[ -z $(sacctmgr -n -P show assoc cluster="$CLUSTER" user=root account="$CLUSTER" format=user 2>/dev/null) ]]; then
        sacctmgr -i add user root account="$CLUSTER" cluster="$CLUSTER" >>"$LOG/sacctmgr.log" 2>&1 || true
    fi
}

start_slurmctld() {
    pid_alive "$RUN/slurmctld.pid" slurmctld && return 0
    started slurmctld
    detached slurmctld -f "$ETC/slurm.conf" </dev/null >>"$LOG/slurmctld.log" 2>&1 ||
        die "slurmctld did not start" "$LOG/slurmctld.log"
    wait_for 30 'not_dead "$RUN/slurmctld.pid" slurmctld' scontrol ping ||
        die "slurmctld does not answer on 127.0.0.1:$CTLD_PORT ($WHY)" "$LOG/slurmctld.log"
}

start_slurmd() {
    pid_alive "$RUN/slurmd.pid" slurmd && return 0
    started slurmd
    detached slurmd -f "$ETC/slurm.conf" </dev/null >>"$LOG/slurmd.log" 2>&1 ||
        die "slurmd did not start" "$LOG/slurmd.log"
}

node_idle() {
    local st
    st=$(sinfo -h -n "$(cat "$ETC/nodename")" -o %T 2>/dev/null) || return 1
    [[ $st == idle || $st == mixed || $st == allocated || $st == completing ]]
}

# ---------------------------------------------------------------- main
mkdir -p "$DIR" "$ETC" "$RUN" "$LOG" "$STATE/ctld" "$STATE/slurmd"
chmod 755 "$DIR"
# One start at a time (the daemons do not inherit this descriptor, see detached).
exec 9>"$DIR/.start.lock"
flock -w 300 9 || die "another start_cluster.sh holds $DIR/.start.lock"
install_packages
write_config
ctld_was_running=0
pid_alive "$RUN/slurmctld.pid" slurmctld && ctld_was_running=1
start_munge
start_mariadb
start_slurmdbd
register_cluster
start_slurmctld
start_slurmd
if ((ctld_was_running)) && [[ " ${CHANGED[*]-} " == *" $ETC/slurm.conf "* ]]; then
    say "slurm.conf changed while slurmctld ran: scontrol reconfigure"
    scontrol reconfigure || die "scontrol reconfigure failed" "$LOG/slurmctld.log"
fi
wait_for 60 'not_dead "$RUN/slurmd.pid" slurmd && not_dead "$RUN/slurmctld.pid" slurmctld' node_idle ||
    die "node $(cat "$ETC/nodename") did not become idle ($WHY): $(sinfo -h -N -o '%N %T %E' 2>&1)" \
        "$LOG/slurmd.log" "$LOG/slurmctld.log"
wait_for 30 '' sacct -n -X -S now-1minute ||
    die "sacct does not answer ($WHY)" "$LOG/slurmdbd.log" "$LOG/slurmctld.log"
if ((${#STARTED[@]})); then how="is up in $(elapsed) s"; else how="was already up"; fi
echo "SLURM cluster '$CLUSTER' $how (node $(cat "$ETC/nodename"), partition debug, files in $DIR); stop it with slurm/stop_cluster.sh"
