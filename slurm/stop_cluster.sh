#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by slurm/start_cluster.sh.
#
# Cancels every queued or running job, then stops the daemons newest first (slurmd, slurmctld,
# slurmdbd, mariadbd, munged) through their PID files, waits until each is gone (SIGKILL after a
# grace period) and removes the /etc/slurm/slurm.conf symlink.  Safe to call when nothing runs
# (exit 0).  Keeps $NOISYBENCH_SLURM_DIR (state, accounting DB, logs) so a restart is quick;
# `rm -rf` it for a clean slate.  Exit status 1 only if a daemon could not be stopped.
set -uo pipefail

DIR=${NOISYBENCH_SLURM_DIR:-/tmp/noisybench-slurm}
ETC=$DIR/etc; RUN=$DIR/run; MUNGE=$DIR/munge
ETC_LINK=/etc/slurm/slurm.conf
export SLURM_CONF=$ETC/slurm.conf

say() { echo "stop_cluster: $*" >&2; }

# our_pids COMM PIDFILE: live processes called COMM that belong to this cluster: the one named in
# PIDFILE, plus any whose command line or environment mentions $DIR (a lost pid file).
our_pids() {
    local comm=$1 pidfile=$2 pid p
    {
        if [[ -s $pidfile ]]; then
            pid=$(tr -dc 0-9 <"$pidfile")
            [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && echo "$pid"
        fi
        for p in /proc/[0-9]*; do
            [[ $(cat "$p/comm" 2>/dev/null) == "$comm" ]] || continue
            if { tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | grep -qF "$DIR/" ||
                { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$SLURM_CONF"; then
                echo "${p#/proc/}"
            fi
        done
    } | sort -u
}

# alive PID COMM: PID is a live (not zombie) process called COMM.
alive() {
    [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# stop COMM PIDFILE GRACE: SIGTERM, wait up to GRACE s, then SIGKILL; wait until gone.
failed=0
stop() {
    local comm=$1 pidfile=$2 grace=$3 pids pid deadline
    pids=$(our_pids "$comm" "$pidfile")
    if [[ -n $pids ]]; then
        say "stopping $comm (pid $(echo $pids))"
        kill -TERM $pids 2>/dev/null
        deadline=$((SECONDS + grace))
        for pid in $pids; do
            while alive "$pid" "$comm"; do
                if ((SECONDS >= deadline)); then
                    say "$comm (pid $pid) ignored SIGTERM for ${grace} s: SIGKILL"
                    kill -KILL "$pid" 2>/dev/null
                    sleep 0.5
                    alive "$pid" "$comm" && { say "ERROR: $comm (pid $pid) survived SIGKILL"; failed=1; }
                    break
                fi
                sleep 0.1
            done
        done
    fi
    rm -f "$pidfile"
}

# 1. Cancel jobs while slurmctld still runs, and give the job steps a moment to end.
if [[ -f $SLURM_CONF ]] && [[ -n $(our_pids slurmctld "$RUN/slurmctld.pid") ]] && command -v squeue >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u)
    if [[ -n $jobs ]]; then
        say "cancelling jobs: $(echo $jobs)"
        timeout 10 scancel $jobs 2>/dev/null
        deadline=$((SECONDS + 15))
        while [[ -n $(timeout 10 squeue -h -o %A 2>/dev/null | head -n 1) ]] && ((SECONDS < deadline)); do
            sleep 0.3
        done
    fi
fi

# 2. Daemons, newest first.
stop slurmd    "$RUN/slurmd.pid"    15
stop slurmctld "$RUN/slurmctld.pid" 15
stop slurmdbd  "$RUN/slurmdbd.pid"  15
stop mariadbd  "$RUN/mysql/mariadb.pid" 60
stop munged    "$MUNGE/munged.pid"  10

# 3. Job steps orphaned by a slurmd that died before its jobs.
for p in /proc/[0-9]*; do
    [[ $(cat "$p/comm" 2>/dev/null) == slurmstepd ]] || continue
    say "warning: slurmstepd pid ${p#/proc/} is still running (not started from $DIR?)"
done


if [[ -L $ETC_LINK && $(readlink "$ETC_LINK") == "$ETC/slurm.conf" ]]; then
    rm -f "$ETC_LINK"
fi
((failed)) && exit 1
say "SLURM cluster stopped (files kept in $DIR)"
exit 0
