//! The tree mounted for real, driven by shell commands: what sysfs users
//! see (errno of write(2), O_TRUNC, directories appearing at once, modes).

use std::path::Path;
use std::process::Command;

use apmatrix_fuse::{spawn, MemoryBackend};
use apmatrix_model::Host;

/// The seed host served at a fresh directory, unmounted (before the
/// directory goes) when dropped; `None` where FUSE cannot be used.
struct Mounted<S> {
    session: Option<S>,
    dir: tempfile::TempDir,
}

impl<S> Drop for Mounted<S> {
    /// The session's own unmount does not always happen (a CI run once left
    /// a dead mount at a test's directory), so a mount still there after it
    /// is detached: no test leaves one behind.
    fn drop(&mut self) {
        drop(self.session.take());
        let dir = self.dir.path().to_str().unwrap().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(dir.as_str()))
        {
            let c = std::ffi::CString::new(dir).unwrap();
            // SAFETY: umount2(2) of a NUL-terminated path; failure is harmless.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn seed_mounted() -> Option<Mounted<impl Sized>> {
    if !apmatrix_fuse::usable_for_tests() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let session = spawn(MemoryBackend::new(Host::seed_example()), dir.path()).unwrap();
    Some(Mounted {
        session: Some(session),
        dir,
    })
}

fn sh(dir: &Path, script: &str) -> (String, String, i32) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn shell_commands_see_sysfs_semantics() {
    let Some(mounted) = seed_mounted() else {
        return;
    };
    let m = mounted.dir.path();
    let (out, err, rc) = sh(
        m,
        r#"set -e
cat bus/ap/apmask
echo -5,-6 > bus/ap/apmask
cat bus/ap/apmask
ls bus/ap/drivers/vfio_ap | tr '\n' ' '; echo
cd devices/vfio_ap/matrix
echo 669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4 > mdev_supported_types/vfio_ap-passthrough/create
cd 669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4
echo 5 > assign_adapter
printf 0xab > assign_domain
cat matrix
readlink mdev_type iommu_group
ls ../../../../bus/mdev/devices
"#,
    );
    assert_eq!(rc, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("0x{}", "f".repeat(64)));
    assert_eq!(lines[1], format!("0xf9{}", "f".repeat(62)));
    assert_eq!(
        lines[2],
        "05.0004 05.0005 05.0006 05.0047 05.00ab 05.00ff 06.0004 06.0005 06.0006 06.0047 06.00ab 06.00ff "
    );
    assert_eq!(lines[3], "05.00ab");
    assert_eq!(lines[4], "../mdev_supported_types/vfio_ap-passthrough");
    assert_eq!(lines[5], "../../../../kernel/iommu_groups/0");
    assert_eq!(lines[6], "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4");

    // A refused write fails write(2) with the kernel's errno, and bash says so.
    let mdev = "devices/vfio_ap/matrix/669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
    let (_, err, rc) = sh(m, &format!("echo 4 > {mdev}/assign_adapter"));
    assert_ne!(rc, 0);
    assert!(err.contains("Cannot assign requested address"), "{err}");
    let (_, err, _) = sh(m, "echo +5 > bus/ap/apmask");
    assert!(err.contains("Address already in use"), "{err}");
    let (_, err, _) = sh(m, &format!("echo 256 > {mdev}/assign_domain"));
    assert!(err.contains("No such device"), "{err}");
    let (_, err, _) = sh(m, &format!("echo 08 > {mdev}/assign_domain"));
    assert!(err.contains("Invalid argument"), "{err}");
    // sysfs modes; sizes are the contents' lengths (the page cache reads
    // up to them), a write-only attribute's is sysfs's page; and kernfs's
    // EACCES for an attribute without a read or a write method
    let (out, _, _) = sh(
        m,
        &format!("stat -c '%a %U %s' {mdev}/assign_adapter {mdev}/matrix bus/ap/apmask"),
    );
    let matrix_len = sh(m, &format!("cat {mdev}/matrix | wc -c")).0;
    assert_eq!(
        out,
        format!(
            "200 root 4096\n444 root {}\n644 root 67\n",
            matrix_len.trim()
        )
    );
    let (_, err, rc) = sh(m, &format!("cat {mdev}/assign_adapter"));
    assert_ne!(rc, 0);
    assert!(err.contains("Permission denied"), "{err}");
    let (_, err, rc) = sh(m, &format!("echo 1 > {mdev}/matrix"));
    assert_ne!(rc, 0);
    assert!(err.contains("Permission denied"), "{err}");
    let (_, err, _) = sh(m, "echo 1 > bus/ap/newfile");
    assert!(err.contains("Permission denied"), "{err}");
    // Writes over a page are refused whole.
    let big = m
        .parent()
        .unwrap()
        .join(format!("apmatrix-big-{}", std::process::id()));
    std::fs::write(&big, "1".repeat(5000)).unwrap();
    let (_, err, _) = sh(
        m,
        &format!(
            "dd if={} of={mdev}/assign_domain bs=5000 count=1",
            big.display()
        ),
    );
    std::fs::remove_file(&big).unwrap();
    assert!(err.contains("Argument list too long"), "{err}");
    // remove: the directory and every link to it vanish at once.
    let (out, err, rc) = sh(
        m,
        &format!("echo 1 > {mdev}/remove && ls -A bus/mdev/devices devices/vfio_ap/matrix && test ! -e {mdev}"),
    );
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        out,
        "bus/mdev/devices:\n\ndevices/vfio_ap/matrix:\ndriver\nmdev_supported_types\nsubsystem\nuevent\n"
    );
}

/// The page cache keeps a file's content (the kernel reads it once), yet
/// an open reads one state however many read(2)s it takes and whatever
/// changes meanwhile, as kernfs; an open made after a change's write(2)
/// returned reads the new state, even after an older descriptor has read
/// (and so filled pages with) the old one.
#[test]
fn one_open_reads_one_state_and_a_later_open_the_new_one() {
    use std::io::{Read, Write};
    let Some(mounted) = seed_mounted() else {
        return;
    };
    let dir = &mounted.dir;
    let apmask = dir.path().join("bus/ap/apmask");
    let read_all = |f: &mut std::fs::File| {
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let old = format!("0x{}\n", "f".repeat(64));
    let new = format!("0xf7{}\n", "f".repeat(62));
    // Cached: the first open's pages serve the second.
    assert_eq!(read_all(&mut std::fs::File::open(&apmask).unwrap()), old);

    let mut torn = std::fs::File::open(&apmask).unwrap();
    let mut head = [0u8; 4];
    torn.read_exact(&mut head).unwrap();
    let mut filler = std::fs::File::open(&apmask).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&apmask)
        .unwrap()
        .write_all(b"-4\n")
        .unwrap();
    // Opened before the change: the old state to its end, not a mix.
    let rest = read_all(&mut torn);
    assert_eq!(
        format!("{}{rest}", std::str::from_utf8(&head).unwrap()),
        old
    );
    assert_eq!(read_all(&mut filler), old);
    // Opened after: the new state, and its size agrees.
    assert_eq!(read_all(&mut std::fs::File::open(&apmask).unwrap()), new);
    assert_eq!(std::fs::metadata(&apmask).unwrap().len(), new.len() as u64);
    assert_eq!(std::fs::read_to_string(&apmask).unwrap(), new);
}

/// Names and links the kernel caches follow every change: an mdev removed
/// and made again under the same UUID shows the new one's (empty) matrix,
/// while a descriptor opened on the old one reads the old one to its end;
/// a queue's `driver` link follows apmask at once.
#[test]
fn a_remade_mdev_and_a_rebound_queue_are_seen_at_once() {
    use std::io::Read;
    let Some(mounted) = seed_mounted() else {
        return;
    };
    let dir = &mounted.dir;
    let m = dir.path();
    let uuid = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
    let mdev = m.join("devices/vfio_ap/matrix").join(uuid);
    let driver = m.join("devices/ap/card05/05.0004/driver");
    let write = |path: &Path, value: &str| std::fs::write(path, value).unwrap();
    assert_eq!(
        std::fs::read_link(&driver).unwrap(),
        Path::new("../../../../bus/ap/drivers/cex4queue")
    );
    write(&m.join("bus/ap/apmask"), "-5");
    assert_eq!(
        std::fs::read_link(&driver).unwrap(),
        Path::new("../../../../bus/ap/drivers/vfio_ap")
    );
    let create = m.join("devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create");
    write(&create, uuid);
    write(&mdev.join("assign_adapter"), "5");
    write(&mdev.join("assign_domain"), "4");
    let matrix = mdev.join("matrix");
    assert_eq!(std::fs::read_to_string(&matrix).unwrap(), "05.0004\n");
    let mut old = std::fs::File::open(&matrix).unwrap();
    let mut head = [0u8; 3];
    old.read_exact(&mut head).unwrap();
    write(&mdev.join("remove"), "1");
    assert!(!matrix.exists());
    write(&create, uuid);
    assert_eq!(std::fs::read_to_string(&matrix).unwrap(), "");
    let mut rest = String::new();
    old.read_to_string(&mut rest).unwrap();
    assert_eq!(
        format!("{}{rest}", std::str::from_utf8(&head).unwrap()),
        "05.0004\n"
    );
    write(&m.join("bus/ap/apmask"), "+5");
    assert_eq!(
        std::fs::read_link(&driver).unwrap(),
        Path::new("../../../../bus/ap/drivers/cex4queue")
    );
}
