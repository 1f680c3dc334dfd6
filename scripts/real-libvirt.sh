#!/usr/bin/env bash
# Real libvirt + QEMU for the tests, on a Debian machine without systemd (run as root).
#
#   scripts/real-libvirt.sh install       install what is missing and configure, start nothing
#   scripts/real-libvirt.sh [start]       install what is missing, configure, start virtlogd and
#                                         libvirtd (qemu:///system) and probe QEMU once
#   scripts/real-libvirt.sh stop          stop every daemon this script started (below too), by
#                                         the PIDs in their pid files
#   scripts/real-libvirt.sh status        exit 0 when qemu:///system answers
#   scripts/real-libvirt.sh session-start start the two unprivileged session libvirtds that
#                                         the live-migration tests migrate between; prints
#                                         one URI per line
#   scripts/real-libvirt.sh session-stop  stop them by PID
#
# Idempotent: `start` on a machine where everything runs only checks. Nothing is installed
# from libvirt-daemon-system: it pulls in systemd, so its setup is done here by hand.
set -euo pipefail

RUN_DIR=/run/cloudctl-test
LIBVIRTD_PID=/run/libvirtd.pid
VIRTLOGD_PID=/run/virtlogd.pid
SESSION_USERS=(cloudctl-mig0 cloudctl-mig1)
SESSION_HOME=/var/lib/cloudctl-test
PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
          busybox-static)

say() { echo "real-libvirt: $*" >&2; }

# Run a daemon with no file descriptor but stdin/stdout/stderr: it outlives this script, and a
# pipe it inherited (a CI runner's, say) would never see its end of file.
detached() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        exec "$@"
    )
}

# libvirtd on one CPU. It caches QEMU's capabilities (an ~8 s probe) keyed on the host's CPUID,
# which here differs from one CPU to the next, so an unpinned daemon re-probes at every other
# restart. The QEMUs it starts still get every CPU: libvirt sets their affinity itself.
pinned() {
    if command -v taskset >/dev/null 2>&1; then detached taskset -c 0 "$@"; else detached "$@"; fi
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "must run as root (it installs packages and starts libvirtd)"
        exit 1
    fi
}

install_packages() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        2> >(grep -v '^debconf: delaying package configuration' >&2)
}

configure() {
    # What libvirt-daemon-system's maintainer scripts would have done.
    id libvirt-qemu >/dev/null 2>&1 \
        || useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin \
            libvirt-qemu
    mkdir -p /etc/libvirt /var/log/libvirt/qemu /var/lib/libvirt/qemu "$RUN_DIR"
    local conf=/etc/libvirt/qemu.conf
    local want='# Written by cloudctl scripts/real-libvirt.sh: QEMU runs as root, no sVirt labels.
user = "root"
group = "root"
security_driver = "none"'
    if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
        printf '%s\n' "$want" >"$conf"
    fi
}

# A PID from a pid file, printed when that process still runs.
live_pid() {
    local file=$1 pid
    [ -s "$file" ] || return 1
    pid=$(cat "$file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Wait until `virsh -c URI` answers (the daemon has its socket up), at most $2 seconds.
wait_for() {
    local uri=$1 limit=$2 i
    for ((i = 0; i < limit * 10; i++)); do
        virsh -q -c "$uri" version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

start_system() {
    need_root
    install_packages
    configure
    if ! live_pid "$VIRTLOGD_PID" >/dev/null; then
        detached virtlogd -d --pid-file "$VIRTLOGD_PID"
    fi
    if ! live_pid "$LIBVIRTD_PID" >/dev/null; then
        # A libvirtd someone started with another pid file holds the socket: use that one.
        if ! virsh -q -c qemu:///system version >/dev/null 2>&1; then
            pinned libvirtd -d --pid-file "$LIBVIRTD_PID"
        fi
    fi
    if ! wait_for qemu:///system 30; then
        say "libvirtd did not answer on qemu:///system within 30 s"
        exit 1
    fi
    # The first use probes QEMU's capabilities (~8 s on a fresh machine, cached afterwards);
    # pay it here rather than inside the first test.
    virsh -q -c qemu:///system domcapabilities --virttype qemu >/dev/null
}

# Stop the daemons whose pid files are given (SIGTERM to all, then wait for each). The daemons
# remove their pid files themselves; removing them here could remove a successor's.
stop_pid_files() {
    local file pid pids=() i status=0
    for file in "$@"; do
        if pid=$(live_pid "$file"); then
            kill "$pid"
            pids+=("$pid")
        fi
    done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || continue 2
            sleep 0.1
        done
        say "daemon PID $pid did not stop within 10 s"
        status=1
    done
    return "$status"
}

stop_system() {
    # libvirtd first: it talks to virtlogd until it exits.
    stop_pid_files "$LIBVIRTD_PID"
    stop_pid_files "$VIRTLOGD_PID"
}

# -- two session libvirtds, one per unprivileged user, for live migration ------------------

session_runtime() { echo "$RUN_DIR/$1"; }
session_uri() { echo "qemu+unix:///session?socket=$(session_runtime "$1")/libvirt/libvirt-sock"; }

session_env() {
    local user=$1 home=$SESSION_HOME/$1
    echo "HOME=$home" "USER=$user" "XDG_RUNTIME_DIR=$(session_runtime "$user")" \
        "XDG_CONFIG_HOME=$home/.config" "XDG_CACHE_HOME=$home/.cache" "PATH=/usr/sbin:/usr/bin:/bin"
}

configure_session() {
    local user=$1 home=$SESSION_HOME/$1 runtime
    runtime=$(session_runtime "$user")
    id "$user" >/dev/null 2>&1 \
        || useradd --system --home-dir "$home" --shell /usr/sbin/nologin "$user"
    mkdir -p "$home/.config/libvirt" "$home/.cache" "$runtime"
    # Migration refuses a destination with the source's host UUID; both share the machine's.
    local uuid_file=$home/.config/libvirt/host-uuid
    [ -s "$uuid_file" ] || cat /proc/sys/kernel/random/uuid >"$uuid_file"
    printf 'host_uuid = "%s"\n' "$(cat "$uuid_file")" >"$home/.config/libvirt/libvirtd.conf"
    # Serial logs go straight to their files: no session virtlogd to spawn and leave behind.
    printf 'stdio_handler = "file"\n' >"$home/.config/libvirt/qemu.conf"
    chown -R "$user:" "$home" "$runtime"
    chmod 700 "$runtime"
}

start_sessions() {
    need_root
    start_system >/dev/null  # the packages, and a probe cache the sessions do not share
    local user
    for user in "${SESSION_USERS[@]}"; do
        configure_session "$user"
        local runtime pid_file
        runtime=$(session_runtime "$user")
        pid_file=$runtime/libvirtd.pid
        if ! live_pid "$pid_file" >/dev/null; then
            # shellcheck disable=SC2046 # word splitting of the environment is intended
            pinned runuser -u "$user" -- env -i $(session_env "$user") \
                libvirtd -d --pid-file "$pid_file"
        fi
    done
    for user in "${SESSION_USERS[@]}"; do
        if ! wait_for "$(session_uri "$user")" 30; then
            say "session libvirtd of $user did not answer within 30 s"
            exit 1
        fi
    done
    # Probe both QEMU capability caches at once (each ~8 s the first time).
    local probes=()
    for user in "${SESSION_USERS[@]}"; do
        virsh -q -c "$(session_uri "$user")" domcapabilities --virttype qemu >/dev/null &
        probes+=($!)
    done
    for pid in "${probes[@]}"; do wait "$pid"; done
    for user in "${SESSION_USERS[@]}"; do session_uri "$user"; done
}

stop_sessions() {
    local user files=()
    for user in "${SESSION_USERS[@]}"; do
        files+=("$(session_runtime "$user")/libvirtd.pid")
    done
    stop_pid_files "${files[@]}"
}

# One run of this script at a time: two test runs starting the daemons at once would each
# start one, and the loser fails on the pid file's lock. (The daemons do not inherit it.)
if [ "$(id -u)" -eq 0 ] && command -v flock >/dev/null 2>&1; then
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/real-libvirt.lock"
    flock 9
fi

case "${1:-start}" in
    install) need_root; install_packages; configure ;;
    start) start_system ;;
    stop) stop_sessions; stop_system ;;
    status) virsh -q -c qemu:///system version >/dev/null 2>&1 ;;
    session-start) start_sessions ;;
    session-stop) stop_sessions ;;
    session-users) printf '%s\n' "${SESSION_USERS[@]}" ;;
    *)
        say "unknown command ${1:-} (install, start, stop, status, session-start, session-stop)"
        exit 2
        ;;
esac
