//! `apmatrix mount` and `apmatrix exec`: the emulated host as a live sysfs
//! tree, at a directory of the user's choice or over /sys in a private
//! mount namespace.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::store::{ServerOptions, Store};
use crate::CliError;

/// What libudev needs in its environment to take the tree's devices: it
/// refuses a syspath that is not on sysfs unless this is set to false
/// (docs/research/uevents.md §4.3).
pub const VERIFY_SYSFS_ENV: (&str, &str) = ("SYSTEMD_DEVICE_VERIFY_SYSFS", "0");

/// The parts of /sys the emulated tree provides, relative to the root.
pub const SYS_SUBTREES: [&str; 7] = [
    "bus/ap",
    "bus/matrix",
    "bus/mdev",
    "devices/ap",
    "devices/vfio_ap",
    "class/mdev_bus",
    "kernel/iommu_groups",
];

fn fail(msg: impl Into<String>) -> CliError {
    CliError::Failed(msg.into())
}

fn check_fuse() -> Result<(), CliError> {
    apmatrix_fuse::unusable().map_or(Ok(()), |why| Err(fail(why)))
}

fn mount_error(dir: &Path, e: io::Error) -> CliError {
    fail(format!(
        "cannot mount the emulated tree at {}: {e}",
        dir.display()
    ))
}

/// Blocks the termination signals in this thread (and the threads it
/// starts), so that they can be waited for with `sigtimedwait`.
fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is a valid value to initialise with
    // sigemptyset; the set lives on our stack for each call that takes it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// `apmatrix mount DIR`: serves the host at DIR until SIGINT, SIGTERM or
/// SIGHUP, or until someone unmounts DIR; then unmounts and returns. It
/// never broadcasts udev events: DIR is in the host's network namespace.
pub fn mount(store: Store, dir: &Path, options: ServerOptions) -> Result<String, CliError> {
    check_fuse()?;
    let meta = fs::metadata(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(fail(format!("{} is not a directory", dir.display())));
    }
    let host_path = store.path().to_path_buf();
    let serving = format!("apmatrix mount at {}", dir.display());
    let options = ServerOptions {
        udev_events: false,
        ..options
    };
    let (live, serving) = store.live(serving, options)?;
    let signals = block_termination_signals();
    let invalidator = live.invalidator();
    let session = apmatrix_fuse::spawn_invalidated(live, dir, invalidator)
        .map_err(|e| mount_error(dir, e))?;
    crate::style::say(format_args!(
        "apmatrix: serving {} at {} (Ctrl-C to unmount)",
        host_path.display(),
        dir.display()
    ));
    let timeout = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: both pointers are to live values of the right types (no
        // siginfo wanted: null is allowed).
        let sig = unsafe { libc::sigtimedwait(&signals, std::ptr::null_mut(), &timeout) };
        if sig > 0 {
            drop(session); // unmounts DIR
            break;
        }
        // Unmounted from outside (umount DIR): the session has ended, the
        // kernel having closed its connection. (Not DIR's device number:
        // a mount made there since may have been given the same one.)
        if session.guard.is_finished() {
            crate::style::say(format_args!("apmatrix: {} was unmounted", dir.display()));
            // Not dropped: fuser 0.16 would unmount DIR again, and so
            // whatever is mounted there now (its check of the connection
            // takes a closed one for open). Its descriptor closes as the
            // process exits.
            std::mem::forget(session);
            break;
        }
    }
    drop(serving);
    Ok(String::new())
}

/// `apmatrix exec -- CMD...`: runs CMD in a private mount namespace where
/// the emulated tree stands at /sys/bus/ap, /sys/devices/ap, ... so that
/// programs with hard-coded /sys paths use it, and (with `udev_events`) in
/// a private network namespace where the server broadcasts udev events.
/// Returns CMD's exit status.
///
/// Nothing outlives it: CMD is killed if apmatrix dies (PR_SET_PDEATHSIG),
/// the mounts and the network namespace vanish with us, and the directory
/// the tree is first mounted on is gone before CMD starts.
pub fn exec(store: Store, command: &[String], options: ServerOptions) -> Result<i32, CliError> {
    check_fuse()?;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| CliError::Usage("exec needs a command to run".into()))?;
    // Must come first: unshare(CLONE_NEWNS) fails once the process has threads.
    enter_private_mount_namespace()?;
    // The events go only where nothing but the command listens.
    let private_network = options.udev_events;
    if private_network {
        crate::private_net::enter()?;
    }
    let (live, serving) = store.live(format!("apmatrix exec -- {program}"), options)?;
    let work = tempdir()?;
    let tree = work.join("sys");
    let setup = (|| {
        fs::create_dir(&tree).map_err(|e| fail(format!("{}: {e}", tree.display())))?;
        let invalidator = live.invalidator();
        let session = apmatrix_fuse::spawn_invalidated(live, &tree, invalidator)
            .map_err(|e| mount_error(&tree, e))?;
        let mut shadows = Vec::new();
        graft_all(&tree, &work, &mut shadows)?;
        if private_network {
            udev_control_stand_in(&work, &mut shadows)?;
        }
        Ok::<_, CliError>(session)
    })();
    // The grafts hold the tree now: its first mount point and the work
    // directory can go (lazily: the grafts stay), leaving nothing in /tmp.
    detach(&tree);
    let _ = fs::remove_dir(&tree);
    let _ = fs::remove_dir_all(&work);
    let session = setup?;
    let status = spawn_bound_to_us(program, args).and_then(|mut child| {
        // Like a shell: Ctrl-C is for the command, not for us.
        ignore_interactive_signals();
        child.wait().map_err(|e| fail(format!("{program}: {e}")))
    });
    drop(session);
    drop(serving);
    let status = status?;
    Ok(status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    }))
}

fn detach(dir: &Path) {
    let c = cstr(dir);
    // SAFETY: umount2 with a valid NUL-terminated path; failure is harmless.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// Spawns CMD so that it dies with us: were apmatrix killed, CMD would
/// otherwise go on against a dead tree (ENOTCONN).
fn spawn_bound_to_us(program: &str, args: &[String]) -> Result<std::process::Child, CliError> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    let mut command = Command::new(program);
    command
        .args(args)
        .env(VERIFY_SYSFS_ENV.0, VERIFY_SYSFS_ENV.1);
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // We may have died before the prctl: then nobody would kill it.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))
}

fn ignore_interactive_signals() {
    // SAFETY: setting the disposition of two signals to SIG_IGN installs
    // no handler, so no Rust code runs in signal context.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}

fn enter_private_mount_namespace() -> Result<(), CliError> {
    // SAFETY: unshare takes flags only; called before any thread starts.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(fail(format!(
            "cannot create a private mount namespace (unshare: {e}); \
             `apmatrix mount DIR` works without one"
        )));
    }
    // Nothing done in here may propagate to the host's mounts.
    sys_mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE)
}

fn tempdir() -> Result<PathBuf, CliError> {
    let base = std::env::temp_dir();
    for n in 0..1000u32 {
        let dir = base.join(format!("apmatrix-exec-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(fail(format!("{}: {e}", dir.display()))),
        }
    }
    Err(fail("cannot create a temporary directory"))
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL")
}

fn sys_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> Result<(), CliError> {
    let source = source.map(cstr);
    let fstype = fstype.map(|t| CString::new(t).expect("no NUL"));
    let target_c = cstr(target);
    // SAFETY: every pointer is null (allowed for source, fstype and data)
    // or to a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target_c.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(fail(format!("mount on {}: {e}", target.display())));
    }
    Ok(())
}

/// Puts each subtree of the emulated tree over its place in /sys.
fn graft_all(tree: &Path, work: &Path, shadows: &mut Vec<PathBuf>) -> Result<(), CliError> {
    if !Path::new("/sys").is_dir() {
        return Err(fail(
            "there is no /sys to put the emulated tree over; use `apmatrix mount DIR`",
        ));
    }
    for sub in SYS_SUBTREES {
        // A guest's tree has no vfio_ap parts: the host's stay visible there
        // (on an s390 host), as nothing can remove a directory of sysfs.
        if !tree.join(sub).exists() {
            continue;
        }
        let target = Path::new("/sys").join(sub);
        ensure_dir(&target, work, shadows)?;
        sys_mount(Some(&tree.join(sub)), &target, None, libc::MS_BIND)?;
    }
    Ok(())
}

/// libudev listens to udevd's broadcasts only where udev runs, which it
/// tells by `/run/udev/control` (or a devtmpfs /dev; research §4.1). Where
/// there is none, one appears in our mount namespace only: in a tmpfs over
/// /run/udev, or in the shadow of /run that makes /run/udev.
fn udev_control_stand_in(work: &Path, shadows: &mut Vec<PathBuf>) -> Result<(), CliError> {
    let dir = Path::new("/run/udev");
    let control = dir.join("control");
    if control.exists() {
        return Ok(());
    }
    ensure_dir(dir, work, shadows)?;
    if !shadows.iter().any(|s| dir.starts_with(s)) {
        sys_mount(Some(Path::new("tmpfs")), dir, Some("tmpfs"), 0)?;
    }
    fs::File::create(&control).map_err(|e| fail(format!("{}: {e}", control.display())))?;
    Ok(())
}

/// Makes `dir` exist. sysfs takes no mkdir, so where /sys lacks a directory
/// (no /sys/bus/ap on a machine without AP), its parent is replaced by a
/// tmpfs that carries everything the parent had (bind-mounted) plus the new
/// directory. Directories are only ever made in such a tmpfs (`shadows`),
/// never on a real file system, where they would outlive the namespace.
fn ensure_dir(dir: &Path, work: &Path, shadows: &mut Vec<PathBuf>) -> Result<(), CliError> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().expect("below /sys");
    ensure_dir(parent, work, shadows)?;
    if shadows.iter().any(|s| parent.starts_with(s)) {
        return fs::create_dir(dir).map_err(|e| fail(format!("{}: {e}", dir.display())));
    }
    let staging = work.join(format!("shadow{}", shadows.len()));
    fs::create_dir(&staging).map_err(|e| fail(format!("{}: {e}", staging.display())))?;
    sys_mount(Some(Path::new("tmpfs")), &staging, Some("tmpfs"), 0)?;
    let entries = fs::read_dir(parent).map_err(|e| fail(format!("{}: {e}", parent.display())))?;
    for entry in entries.flatten() {
        let from = entry.path();
        let to = staging.join(entry.file_name());
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            if let Ok(target) = fs::read_link(&from) {
                let _ = std::os::unix::fs::symlink(target, &to);
            }
        } else if kind.is_dir() {
            if fs::create_dir(&to).is_ok() {
                sys_mount(Some(&from), &to, None, libc::MS_BIND | libc::MS_REC)?;
            }
        } else if fs::File::create(&to).is_ok() {
            sys_mount(Some(&from), &to, None, libc::MS_BIND)?;
        }
    }
    fs::create_dir(staging.join(dir.file_name().expect("named")))
        .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    sys_mount(Some(&staging), parent, None, libc::MS_MOVE)?;
    shadows.push(parent.to_path_buf());
    Ok(())
}
