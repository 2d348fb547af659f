//! Where a read view reads: the emulated host's state file, or any sysfs
//! root (`--sysfs DIR`: a real /sys, a mounted emulator). A root is read
//! through the admin crate's `SysfsRoot` and rebuilt in the model with the
//! running guests the hypervisor's side shows (libvirt's live XML, QEMU
//! processes), so every view renders from a model host either way and the
//! two agree wherever the tree shows what the state file holds.

use std::path::{Path, PathBuf};

use apmatrix_admin::running::{running_guests, RunningGuest};
use apmatrix_admin::{observe, DirRoot, Observed};
use apmatrix_model::{Host, KernelProfile};

use crate::store::Store;
use crate::CliError;

/// `--sysfs` and what goes with it, on every command that reads.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ReadFrom {
    /// Read this sysfs root (/sys, or a mounted emulator) instead of the emulated host
    #[arg(long, value_name = "DIR")]
    pub(crate) sysfs: Option<PathBuf>,
    /// With --sysfs: the kernel whose rules apply (seed, old, old-5.15, dyn, new, or a version), if not the one its attributes tell
    #[arg(long, value_name = "NAME|VERSION", value_parser = crate::cli::kernel_profile, requires = "sysfs")]
    pub(crate) kernel: Option<&'static KernelProfile>,
    /// With --sysfs: the run directory whose libvirt/qemu/*.xml are the running guests [default with --sysfs /sys: /run]
    #[arg(long, value_name = "DIR", requires = "sysfs")]
    pub(crate) run: Option<PathBuf>,
    /// With --sysfs: the proc file system whose QEMU processes are the running guests, and whose cmdline has the boot masks [default with --sysfs /sys: /proc]
    #[arg(long = "proc", value_name = "DIR", requires = "sysfs")]
    pub(crate) proc_dir: Option<PathBuf>,
}

/// A sysfs root as the views see it.
pub(crate) struct SeenRoot {
    pub(crate) seen: Observed,
    pub(crate) guests: Vec<RunningGuest>,
    /// The proc directory the guests came from, if any.
    pub(crate) proc_dir: Option<PathBuf>,
    /// The root is the machine's own /sys.
    pub(crate) real: bool,
}

/// The root is the machine's own /sys, where /run, /proc and /etc belong
/// to it; anywhere else they are the caller's to name.
pub(crate) fn is_real_sys(dir: &Path) -> bool {
    std::fs::canonicalize(dir).ok().as_deref() == Some(Path::new("/sys"))
}

impl ReadFrom {
    /// Reads `--sysfs DIR` and its guests.
    pub(crate) fn read_root(&self, dir: &Path) -> Result<SeenRoot, CliError> {
        if let Err(e) = std::fs::read_dir(dir) {
            return Err(CliError::Failed(format!("--sysfs {}: {e}", dir.display())));
        }
        let seen = observe(&DirRoot::new(dir).following(self.kernel))
            .map_err(|e| CliError::Failed(e.to_string()))?;
        let real = is_real_sys(dir);
        let pick = |given: &Option<PathBuf>, default: &str| {
            given
                .clone()
                .or_else(|| real.then(|| PathBuf::from(default)))
        };
        let run = pick(&self.run, "/run");
        let proc_dir = pick(&self.proc_dir, "/proc");
        let guests = running_guests(
            run.as_deref().unwrap_or(Path::new("")),
            proc_dir.as_deref().unwrap_or(Path::new("")),
        );
        Ok(SeenRoot {
            seen,
            guests,
            proc_dir,
            real,
        })
    }

    /// The host a view renders: the state file's, or the root's rebuilt in
    /// the model with its guests started. Notes (a guest whose mdev is not
    /// there) go to stderr.
    pub(crate) fn host(&self, store: &Store) -> Result<Host, CliError> {
        let Some(dir) = &self.sysfs else {
            return Ok(store.load()?);
        };
        let root = self.read_root(dir)?;
        Ok(rebuilt(&root.seen, &root.guests, ""))
    }
}

/// A root's host rebuilt in the model with its running guests started. A
/// guest the model refuses (its mdev is not there) is a note on stderr,
/// after `about` (which host, where there are two).
pub(crate) fn rebuilt(seen: &Observed, guests: &[RunningGuest], about: &str) -> Host {
    let (host, notes) = apmatrix_admin::predict::model_with_guests(seen, guests);
    for note in notes {
        crate::style::say(format_args!("apmatrix: note: {about}{note}"));
    }
    host
}

/// The emulated host's guests as the hypervisor's side would show them.
pub(crate) fn emulated_guests(host: &Host) -> Vec<RunningGuest> {
    host.guests()
        .map(|g| RunningGuest {
            name: g.name.clone(),
            mdev: g.mdev,
            cpu: Some(g.cpu.features()),
            source: "the emulated host".into(),
        })
        .collect()
}
