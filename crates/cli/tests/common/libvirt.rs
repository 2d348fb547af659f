//! A private libvirtd with only the node-device driver, run against the
//! emulated tree inside `apmatrix exec` (Debian's libvirt 9.0.0).
//!
//! Everything libvirtd touches is private to the exec's mount namespace:
//! tmpfs over /run (its sockets and pid file; this also hides the machine's
//! udev database and D-Bus), /etc/libvirt (a minimal libvirtd.conf: unix
//! sockets only, no TCP or TLS), /var/lib/libvirt, /var/cache/libvirt,
//! /var/log/libvirt and /etc/mdevctl.d. libvirtd loads every driver module
//! of its driver directory; `LIBVIRT_DRIVER_DIR` points it at a directory
//! holding only `libvirt_driver_nodedev.so`. The node-device driver finds
//! devices by libudev enumeration (no events are needed: the tree's
//! `uevent` files are enough) with `SYSTEMD_DEVICE_VERIFY_SYSFS=0`, since
//! the tree is FUSE, not sysfs; and it runs `mdevctl` from PATH, where a
//! wrapper that logs each call and runs the chosen mdevctl comes first.
//!
//! The private /run gets a `/run/udev/control` again, so that libudev's
//! monitor listens to the udev events exec broadcasts in its private
//! network namespace.
//!
//! The script given to [`run`] is sourced once libvirtd answers; in it,
//! `virsh_nd ARGS` is `virsh -c nodedev:///system ARGS`, `restart_libvirtd`
//! stops and starts the daemon again (so that what it shows comes from
//! mdevctl alone), `mdevctl` is the wrapper, and `$WORK` is the work
//! directory, where `libvirtd.log` and `mdevctl-calls` are left.

use std::path::{Path, PathBuf};

/// The mdevctl libvirt runs.
pub enum Mdevctl {
    /// Debian's, /usr/bin/mdevctl (1.2.0 on bookworm), with the private
    /// /etc/mdevctl.d (its old layout: scripts.d in there).
    Debian,
    /// mdevctl 1.4.0, run with MDEVCTL_ENV_ROOT at a private root whose
    /// etc/mdevctl.d is the private /etc/mdevctl.d (the directory libvirt
    /// watches) and whose sys is /sys.
    V14(PathBuf),
}

impl Mdevctl {
    fn binary(&self) -> PathBuf {
        match self {
            Mdevctl::Debian => PathBuf::from("/usr/bin/mdevctl"),
            Mdevctl::V14(p) => p.clone(),
        }
    }

    /// What `mdevctl --version` says.
    pub fn version(&self) -> &'static str {
        match self {
            Mdevctl::Debian => "mdevctl 1.2.0",
            Mdevctl::V14(_) => "mdevctl 1.4.0",
        }
    }
}

const LIBVIRTD: &str = "/usr/sbin/libvirtd";
const VIRSH: &str = "/usr/bin/virsh";
/// Directories covered by a tmpfs: they must exist (nothing is created on
/// the machine's file systems).
const COVERED: [&str; 6] = [
    "/run",
    "/etc/libvirt",
    "/var/lib/libvirt",
    "/var/cache/libvirt",
    "/var/log/libvirt",
    "/etc/mdevctl.d",
];

/// libvirt's node-device driver module (Debian: libvirt-daemon).
fn nodedev_driver() -> Option<PathBuf> {
    let lib = Path::new("/usr/lib");
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .map(|e| {
            e.path()
                .join("libvirt/connection-driver/libvirt_driver_nodedev.so")
        })
        .chain([lib.join("libvirt/connection-driver/libvirt_driver_nodedev.so")])
        .find(|p| p.is_file())
}

/// What is missing here for [`run`] with `mdevctl` (empty: it can run).
pub fn missing(mdevctl: &Mdevctl) -> Vec<String> {
    let mut out = super::fuse_missing();
    for tool in [LIBVIRTD, VIRSH] {
        if !Path::new(tool).is_file() {
            out.push(format!(
                "no {tool} (Debian: libvirt-daemon, libvirt-clients)"
            ));
        }
    }
    if nodedev_driver().is_none() {
        out.push("no libvirt_driver_nodedev.so (Debian: libvirt-daemon)".into());
    }
    if !mdevctl.binary().is_file() {
        out.push(format!("no {}", mdevctl.binary().display()));
    }
    for dir in COVERED {
        if !Path::new(dir).is_dir() {
            out.push(format!("no {dir} to cover with a tmpfs"));
        }
    }
    out
}

const WRAPPER: &str = r#"set -euo pipefail
cd /
for d in /run /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/mdevctl.d; do
    [ -d "$d" ] || { echo "no $d to cover" >&2; exit 1; }
    mount -t tmpfs -o mode=0755 apmatrix-libvirt-test "$d"
    # The topmost mount there (exec may have put a tmpfs of its own on /run).
    [ "$(findmnt -n -o SOURCE,PROPAGATION --mountpoint "$d" | tail -n 1)" = "apmatrix-libvirt-test private" ]
done
private=/run/apmatrix-test
mkdir -p /run/libvirt /run/lock "$private/bin" "$private/drivers" "$WORK/home"
# The new /run hid exec's udev control stand-in: without it (and without a
# devtmpfs /dev) libudev's monitor hears no udev events (research §4.1).
mkdir -p /run/udev && touch /run/udev/control
ln -s "$NODEDEV_DRIVER" "$private/drivers/"
cat >/etc/libvirt/libvirtd.conf <<CONF
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$WORK/libvirtd.log"
CONF

# The mdevctl libvirt finds first in PATH: logs its arguments, runs the real one.
env_root=
if [ "$MDEVCTL_KIND" = 1.4.0 ]; then
    env_root=$private/mdevctl-root
    mkdir -p "$env_root/etc/mdevctl.d" "$env_root/usr/lib/mdevctl/scripts.d/callouts" \
        "$env_root/usr/lib/mdevctl/scripts.d/notifiers"
    mount --bind /etc/mdevctl.d "$env_root/etc/mdevctl.d"
    ln -s /sys "$env_root/sys"
else
    mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers
fi
cat >"$private/bin/mdevctl" <<SH
#!/bin/bash
printf '%s\n' "\$*" >>"$WORK/mdevctl-calls"
${env_root:+MDEVCTL_ENV_ROOT=$env_root }exec "$MDEVCTL_REAL" "\$@"
SH
chmod 755 "$private/bin/mdevctl"
export PATH=$private/bin:$PATH HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config \
    XDG_CACHE_HOME=$WORK/home/.cache LIBVIRT_DRIVER_DIR=$private/drivers \
    SYSTEMD_DEVICE_VERIFY_SYSFS=0
unset XDG_RUNTIME_DIR LIBVIRT_DEFAULT_URI NOTIFY_SOCKET LIBVIRT_LOG_OUTPUTS
[ "$(mdevctl --version)" = "$MDEVCTL_VERSION" ]

virsh_nd() { virsh -c nodedev:///system "$@"; }
# Whether process $1 (a child of this shell) runs: neither gone nor a zombie.
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $stat != *") Z "* ]]
}
libvirtd_pid=
start_libvirtd() {
    libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirtd.pid >>"$WORK/libvirtd.out" 2>&1 &
    libvirtd_pid=$!
    # Ready once it answers and its enumeration shows the matrix device
    # (node-device calls wait for the enumeration to finish).
    local deadline=$((SECONDS + 60))
    until [ -S /run/libvirt/libvirt-sock ] &&
        virsh_nd nodedev-list --cap ap_matrix 2>/dev/null | grep -qx ap_matrix; do
        running "$libvirtd_pid" || { echo "libvirtd exited" >&2; return 1; }
        [ "$SECONDS" -lt "$deadline" ] || { echo "libvirtd did not answer in 60 s" >&2; return 1; }
        sleep 0.05
    done
}
stop_libvirtd() {
    [ -n "$libvirtd_pid" ] || return 0
    kill -TERM "$libvirtd_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while running "$libvirtd_pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
    if running "$libvirtd_pid"; then kill -KILL "$libvirtd_pid" || true; fi
    wait "$libvirtd_pid" || true
    libvirtd_pid=
}
restart_libvirtd() {
    stop_libvirtd
    start_libvirtd
}
finish() {
    local rc=$?
    stop_libvirtd
    if [ "$rc" != 0 ]; then
        echo "--- libvirtd.log" >&2
        cat "$WORK/libvirtd.log" "$WORK/libvirtd.out" >&2 2>/dev/null || true
        echo "--- mdevctl calls" >&2
        cat "$WORK/mdevctl-calls" >&2 2>/dev/null || true
    fi
    exit "$rc"
}
trap finish EXIT
start_libvirtd
# Only the node-device driver is there: no QEMU driver answers.
if virsh -c qemu:///system uri >/dev/null 2>&1; then
    echo "libvirtd loaded more than the node-device driver" >&2
    exit 1
fi
source "$WORK/body.sh"
"#;

/// Runs `body` (bash, `set -euo pipefail`) against a private libvirtd on a
/// fresh host at `host` following `kernel`, with `work` (an existing
/// directory outside the namespace) for its files and logs and `env` set.
/// Fails the test, with libvirtd's log, if anything fails.
pub fn run(
    host: &Path,
    kernel: &str,
    mdevctl: &Mdevctl,
    work: &Path,
    body: &str,
    env: &[(&str, String)],
) -> super::Ran {
    std::fs::write(work.join("body.sh"), body).unwrap();
    let driver = nodedev_driver().expect("libvirt_driver_nodedev.so (see missing())");
    let kind = match mdevctl {
        Mdevctl::Debian => "debian",
        Mdevctl::V14(_) => "1.4.0",
    };
    let mut all: Vec<(&str, String)> = vec![
        ("WORK", work.display().to_string()),
        ("NODEDEV_DRIVER", driver.display().to_string()),
        ("MDEVCTL_REAL", mdevctl.binary().display().to_string()),
        ("MDEVCTL_KIND", kind.to_string()),
        ("MDEVCTL_VERSION", mdevctl.version().to_string()),
    ];
    all.extend(env.iter().cloned());
    super::exec(host, kernel, WRAPPER, &all)
}
