#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by slurm/start_cluster.sh.
#
# Cancels every queued or running job, then stops the daemons newest first (slurmd, slurmctld,
# slurmdbd, mariadbd, munged) through their PID files, waits until each is gone (SIGKILL after a
# grace period), kills job steps orphaned by a dead slurmd (with their processes) and removes the
# /etc/slurm/slurm.conf symlink.  Touches only processes of $NOISYBENCH_SLURM_DIR (other clusters
# on the machine keep running).  Safe to call when nothing runs
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
    [[ -z $pidfile ]] || rm -f "$pidfile"
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

# 2. Daemons, newest first (the daemons' pid files; see our_pids for the fallback).
stop slurmd    "$RUN/slurmd.pid"    15
stop slurmctld "$RUN/slurmctld.pid" 15
stop slurmdbd  "$RUN/slurmdbd.pid"  15
stop mariadbd  "$RUN/mysql/mariadb.pid" 60
stop munged    "$MUNGE/munged.pid"  10

# 3. Job steps of this cluster that outlived their slurmd (they carry its SLURM_CONF), with the
#    job processes under them: SIGKILL to the whole tree (scancel has already been tried).
descendants() {   # descendants PID...: all processes below the given ones
    local p stat ppid
    declare -A kids=()
    for p in /proc/[0-9]*; do
        stat=$(cat "$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }; ppid=$(cut -d' ' -f2 <<<"$stat")
        kids[$ppid]+=" ${p#/proc/}"
    done
    local queue=("$@") pid
    while ((${#queue[@]})); do
        pid=${queue[0]}; queue=("${queue[@]:1}")
        for p in ${kids[$pid]-}; do echo "$p"; queue+=("$p"); done
    done
}
steps=$(our_pids slurmstepd "")
if [[ -n $steps ]]; then
    tree=$(descendants $steps)
    say "killing orphaned job steps $(echo $steps) and their processes $(echo $tree)"
    kill -KILL $steps $tree 2>/dev/null
    sleep 0.5
    for pid in $steps; do alive "$pid" slurmstepd && { say "ERROR: slurmstepd $pid survived SIGKILL"; failed=1; }; done
fi

if [[ -L $ETC_LINK && $(readlink "$ETC_LINK") == "$ETC/slurm.conf" ]]; then
    rm -f "$ETC_LINK"
fi
((failed)) && exit 1
say "SLURM cluster stopped (files kept in $DIR)"
exit 0
