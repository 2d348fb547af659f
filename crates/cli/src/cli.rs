//! The command line: what `apmatrix` takes, as clap types.

use std::path::PathBuf;

use apmatrix_model::{CardMode, KernelProfile, MaskKind};
use clap::{Parser, Subcommand};

pub(crate) use crate::source::ReadFrom;
use crate::style::ColorChoice;

/// Emulate, inspect and configure IBM Z crypto passthrough: the AP bus's
/// apmask and aqmask, vfio_ap mediated matrix devices (mdevs) and the KVM
/// guests using them, with the kernel's rules and errnos.
#[derive(Parser, Debug)]
#[command(name = "apmatrix", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// The emulated host's state file [default: $APMATRIX_HOST, else
    /// $XDG_STATE_HOME/apmatrix/host.json, else ~/.local/state/apmatrix/host.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) host: Option<PathBuf>,

    /// Print machine-readable JSON (commands that read)
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Colour the output
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub(crate) color: ColorChoice,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Replay the seed document's walkthrough on a fresh in-memory host
    Demo {
        /// The kernel whose rules apply: seed, old, old-5.15, dyn, new, or a version such as 5.15 or 6.12
        #[arg(long, value_name = "NAME|VERSION", value_parser = kernel_profile, default_value = "seed")]
        kernel: &'static KernelProfile,
    },
    /// Create or describe the emulated host
    #[command(subcommand)]
    Host(HostCommand),
    /// List crypto cards and queues like s390-tools' lszcrypt (v2.43)
    ///
    /// DEVICE_IDS are hex: a card (`05`), a queue (`05.0047`) or a domain on
    /// every card (`.0047`). -b, -c, -d and -s act as soon as they are seen:
    /// the first of them given wins. Errors and exit statuses are lszcrypt's.
    #[command(args_override_self = true)]
    Lszcrypt(LszcryptArgs),
    /// Show who owns each APQN: the host, free for vfio_ap, or which mdev and guest
    Matrix {
        #[command(flatten)]
        from: ReadFrom,
        /// Write the map as one self-contained HTML page to FILE: colours by owner, each mdev and guest named, every APQN's layers as `status` gives them on hover, the drift marked
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// With --html: the persistent side the page compares with (see `status`)
        #[command(flatten)]
        persistent: Persistent,
    },
    /// Every APQN through every layer (owner now, running guest, persistent masks, mdevctl and libvirt definitions), where they drift apart, and what the next boot does
    ///
    /// The next boot is simulated: the persistent masks (41-ap.rules, else the
    /// kernel command line, else all ones) applied, then each autostart
    /// definition started in mdevctl's order (its directory's order), as
    /// mdevctl and ap-check would, through the model.
    Status {
        #[command(flatten)]
        from: ReadFrom,
        #[command(flatten)]
        persistent: Persistent,
    },
    /// Show or set the AP bus masks (apmask, aqmask)
    #[command(subcommand)]
    Mask(MaskCommand),
    /// Manage mediated matrix devices (mdevs)
    #[command(subcommand)]
    Mdev(MdevCommand),
    /// Start and stop emulated guests, and see what they see
    #[command(subcommand)]
    Guest(GuestCommand),
    /// Serve the host as a live sysfs tree at DIR (DIR/bus/ap/apmask, DIR/devices/vfio_ap/matrix, ...) until interrupted
    ///
    /// DIR stands for /sys: point tools at it with SYSFS_ROOT=DIR (s390-tools)
    /// or MDEVCTL_ENV_ROOT=PARENT when DIR is PARENT/sys (mdevctl 1.3+).
    /// CLI commands run meanwhile change the same host. Needs root and /dev/fuse.
    Mount {
        /// An existing directory to mount the tree on
        dir: PathBuf,
        #[command(flatten)]
        scans: PeriodicScans,
        #[command(flatten)]
        guest: GuestView,
    },
    /// Run a command with the emulated tree over /sys/bus/ap, /sys/bus/matrix, /sys/bus/mdev, /sys/devices/ap, /sys/devices/vfio_ap, /sys/class/mdev_bus and /sys/kernel/iommu_groups
    ///
    /// The command runs in a private mount namespace, so tools with hard-coded
    /// /sys paths (echo ... > /sys/bus/ap/apmask, mdevctl, lszcrypt) use the
    /// emulated host, and in a private network namespace (loopback only),
    /// where every change of the host reaches udev monitors (libvirt,
    /// udevadm monitor) as udevd's broadcasts would. The rest of the system
    /// sees nothing. SYSTEMD_DEVICE_VERIFY_SYSFS=0 is set for the command, so
    /// libudev takes the tree although it is not sysfs. Exits with the
    /// command's status. Needs root and /dev/fuse.
    Exec {
        #[command(flatten)]
        scans: PeriodicScans,
        #[command(flatten)]
        guest: GuestView,
        /// Keep the host's network namespace (the command can reach the network); udev events are then not sent, since they would reach the host's own udev monitors
        #[arg(long)]
        host_network: bool,
        /// The command and its arguments
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Check a configuration file against the host: every problem at once, in APQN terms, with a fix
    Check {
        /// The configuration (TOML; see docs/configuration.md)
        config: PathBuf,
        /// Work on this sysfs root (/sys, or a mounted emulator) instead of the emulated host
        #[arg(long, value_name = "DIR")]
        sysfs: Option<PathBuf>,
        /// Also check autostart mdevs against the persistent side, as ap-check does:
        /// DIR/mdevctl.d/matrix and DIR/udev/rules.d/41-ap.rules [default with --sysfs /sys: /etc]
        #[arg(long, value_name = "DIR")]
        etc: Option<PathBuf>,
        /// With --sysfs: the kernel whose rules apply (seed, old, old-5.15, dyn, new, or a version), if not the one its attributes tell
        #[arg(long, value_name = "NAME|VERSION", value_parser = kernel_profile, requires = "sysfs")]
        kernel: Option<&'static KernelProfile>,
    },
    /// Print the ordered sysfs writes that take the host to the configuration, as shell commands
    Plan {
        config: PathBuf,
        #[arg(long, value_name = "DIR")]
        sysfs: Option<PathBuf>,
        /// With --sysfs: the kernel whose rules apply (seed, old, old-5.15, dyn, new, or a version), if not the one its attributes tell
        #[arg(long, value_name = "NAME|VERSION", value_parser = kernel_profile, requires = "sysfs")]
        kernel: Option<&'static KernelProfile>,
    },
    /// Make the host match the configuration; on any refusal undo what was done
    Apply {
        config: PathBuf,
        #[arg(long, value_name = "DIR")]
        sysfs: Option<PathBuf>,
        /// Only say what would be written
        #[arg(long)]
        dry_run: bool,
        /// With --sysfs: the kernel whose rules apply (seed, old, old-5.15, dyn, new, or a version), if not the one its attributes tell
        #[arg(long, value_name = "NAME|VERSION", value_parser = kernel_profile, requires = "sysfs")]
        kernel: Option<&'static KernelProfile>,
    },
    /// Place guests' crypto demands (TOML; see docs/place.md) on the host's free APQNs, and print the configuration
    ///
    /// Per guest: how many usage domains of which card mode and generation,
    /// on how many different adapters, pins, control domains, and whether it
    /// may share adapters. The masks and existing mdevs stay as they are. The
    /// configuration goes to stdout (`check` accepts it); a demand that cannot
    /// be met is named with its reason on stderr, and the status is then 1.
    Place {
        /// The demands (TOML)
        demands: PathBuf,
        #[arg(long, value_name = "DIR")]
        sysfs: Option<PathBuf>,
        /// With --sysfs: the kernel whose rules apply (seed, old, old-5.15, dyn, new, or a version), if not the one its attributes tell
        #[arg(long, value_name = "NAME|VERSION", value_parser = kernel_profile, requires = "sysfs")]
        kernel: Option<&'static KernelProfile>,
        /// How to search
        #[arg(long, value_enum, default_value = "balanced")]
        strategy: crate::place_cmd::StrategyArg,
    },
    /// Export a configuration for mdevctl, libvirt, QEMU or persistent masks
    Export {
        #[arg(value_enum)]
        format: crate::configure::ExportFormat,
        config: PathBuf,
        /// mdevctl, nodedev: write one file per mdev into DIR (mdevctl: DIR/<uuid>, as in /etc/mdevctl.d/matrix; nodedev: DIR/<name>.xml)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Read mdevctl's stored configs (a directory like /etc/mdevctl.d/matrix) and print them as a configuration
    Import {
        /// The directory holding one JSON file per mdev, named by UUID
        dir: PathBuf,
    },
    /// Move a running guest with AP devices to another host: whether the target can give it the same cards and queues, and how (docs/migrate.md)
    ///
    /// QEMU cannot migrate a vfio-ap device, so the guest's adapters are
    /// unassigned (hot unplug) and the device detached on the source, the
    /// guest migrates, and its matrix is assigned to an mdev on the target
    /// and the device attached again (hot plug).
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `apmatrix lszcrypt`'s options: those of s390-tools' lszcrypt, and
/// `--sysfs`.
#[derive(clap::Args, Debug)]
pub(crate) struct LszcryptArgs {
    /// Cards (xx), queues (xx.yyyy) or a domain on every card (.yyyy), hex
    #[arg(value_name = "DEVICE_IDS", allow_hyphen_values = true)]
    pub(crate) ids: Vec<String>,
    /// Verbose: all queues, with PENDING, HWTYPE, QDEPTH, FUNCTIONS, DRIVER
    #[arg(short = 'V', long)]
    pub(crate) verbose: bool,
    /// Show the AP bus attributes
    #[arg(short, long)]
    pub(crate) bus: bool,
    /// Show the capabilities of a card (a number: decimal, 0x hex) or queue (xx.yyyy)
    #[arg(short, long, value_name = "DEVICE_ID")]
    pub(crate) capability: Option<String>,
    /// Show the usage and control domains
    #[arg(short, long)]
    pub(crate) domains: bool,
    /// Show the serial numbers of the CCA and EP11 cards
    #[arg(short, long)]
    pub(crate) serial: bool,
    /// Only cards and queues in Accelerator mode
    #[arg(long)]
    pub(crate) accelonly: bool,
    /// Only cards and queues in CCA-Coprocessor mode
    #[arg(long)]
    pub(crate) ccaonly: bool,
    /// Only cards and queues in EP11-Coprocessor mode
    #[arg(long)]
    pub(crate) ep11only: bool,
    /// Only cards, no queues
    #[arg(long)]
    pub(crate) cardonly: bool,
    /// Only queues, no cards
    #[arg(long)]
    pub(crate) queueonly: bool,
    /// Read this sysfs root (/sys, or a mounted emulator) instead of the emulated host
    #[arg(long, value_name = "DIR")]
    pub(crate) sysfs: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum HostCommand {
    /// Create the emulated host: the seed document's example host, or one described in a TOML file
    Init {
        /// A host description (see docs/host-description.md)
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// The kernel whose rules the host follows: seed (the default), old, old-5.15, dyn, new, or a version such as 5.15 or 6.12
        #[arg(long, value_name = "NAME|VERSION", value_parser = kernel_profile, default_value = "seed")]
        kernel: &'static KernelProfile,
        /// Replace an existing host
        #[arg(long)]
        force: bool,
    },
    /// Describe the host: cards, domains, maximum ids, mdevs, guests
    Show(ReadFrom),
    /// Print the host's hardware as a host description (TOML); with --sysfs, a real LPAR's, to emulate it (`host init --from`)
    Topology(ReadFrom),
    /// A hardware or HMC event on a card of the running host: config (configured or deconfigured on the HMC; the bus sees it at its next scan), checkstop, or zcrypt's online
    Card {
        /// The card's adapter number: 5 or 0x05
        #[arg(value_parser = id_number)]
        adapter: u8,
        #[arg(value_enum)]
        event: CardEvent,
        #[arg(value_enum)]
        state: OnOff,
        #[command(flatten)]
        scan: ScanNow,
    },
    /// The LPAR gains or loses a usage domain on the HMC; the bus shows it at its next scan
    Domain {
        /// The usage domain: 7 or 0x07
        #[arg(value_parser = id_number)]
        domain: u8,
        #[arg(value_enum)]
        change: AddRemove,
        #[command(flatten)]
        scan: ScanNow,
    },
    /// The LPAR gains an adapter (with a card of --type) or loses one on the HMC; the bus shows it at its next scan
    Adapter {
        /// The adapter number: 7 or 0x07
        #[arg(value_parser = id_number)]
        adapter: u8,
        #[arg(value_enum)]
        change: AddRemove,
        /// The card an added adapter has: CEX4A .. CEX8P (or CEX2A, CEX2C, CEX3A, CEX3C)
        #[arg(long = "type", value_name = "TYPE", value_parser = card_type)]
        card_type: Option<(u8, CardMode)>,
        #[command(flatten)]
        scan: ScanNow,
    },
    /// Run a bus scan now, as a write to /sys/bus/ap/scans does
    Scan,
}

/// The persistent side `status` (and the HTML map) compares with.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct Persistent {
    /// The persistent side: DIR/mdevctl.d/matrix (mdevctl's and libvirt's definitions) and DIR/udev/rules.d/41-ap.rules; ap-check counts as installed if DIR/../usr/lib/mdevctl/scripts.d/callouts/ap-check is [default with --sysfs /sys: /etc]
    #[arg(long, value_name = "DIR")]
    pub(crate) etc: Option<PathBuf>,
    /// The kernel command line whose ap.apmask= and ap.aqmask= the boot applies where 41-ap.rules sets no mask [default: PROC/cmdline with --proc or --sysfs /sys; on the emulated host, its boot parameters]
    #[arg(long, value_name = "FILE")]
    pub(crate) cmdline: Option<PathBuf>,
}

/// `--no-periodic-scans` of the servers.
#[derive(clap::Args, Debug)]
pub(crate) struct PeriodicScans {
    /// Scan the bus only when asked (a write to scans, apmatrix host scan), not every config_time seconds as the kernel does: HMC changes then wait for the test that made them
    #[arg(long)]
    pub(crate) no_periodic_scans: bool,
}

/// `--guest` of mount and exec.
#[derive(clap::Args, Debug)]
pub(crate) struct GuestView {
    /// Serve the AP bus that this running guest's kernel builds from its CRYCB (its cards and queues, its own masks, no vfio_ap) instead of the host's; hot plugs show after the guest's own bus scan (its config_time, or a write to its scans)
    #[arg(long, value_name = "NAME")]
    pub(crate) guest: Option<String>,
}

/// `--scan` of the HMC events.
#[derive(clap::Args, Debug)]
pub(crate) struct ScanNow {
    /// Scan the bus at once, as the machine's configuration-change notification makes the kernel do
    #[arg(long)]
    pub(crate) scan: bool,
}

fn card_type(text: &str) -> Result<(u8, CardMode), String> {
    apmatrix_model::topology::parse_card_type(text)
}

/// Added or removed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AddRemove {
    Add,
    Remove,
}

/// What happens to a card.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
pub(crate) enum CardEvent {
    /// Configured to the LPAR (on) or deconfigured from it on the HMC (off)
    Config,
    /// The card check-stops (on) or recovers (off)
    Checkstop,
    /// zcrypt's online flag, as `chzcrypt -e/-d` sets it
    Online,
}

/// On or off.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Subcommand, Debug)]
pub(crate) enum MaskCommand {
    /// Show both masks and the pools they define
    Show(ReadFrom),
    /// Write a mask in either kernel form: absolute hex (0xf9ff...) or relative (-5,-6 / +0x47)
    Set {
        #[arg(value_enum)]
        mask: MaskArg,
        /// The value, exactly as it would be written to /sys/bus/ap/<mask>
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Print the kernel parameters that would give the current masks at boot
    Cmdline(ReadFrom),
}

#[derive(Copy, Clone, Debug, clap::ValueEnum)]
pub(crate) enum MaskArg {
    Apmask,
    Aqmask,
}

impl From<MaskArg> for MaskKind {
    fn from(m: MaskArg) -> Self {
        match m {
            MaskArg::Apmask => MaskKind::Apmask,
            MaskArg::Aqmask => MaskKind::Aqmask,
        }
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum MdevCommand {
    /// Create an mdev (like writing a UUID to .../vfio_ap-passthrough/create)
    Create {
        /// The UUID [default: a random one]
        #[arg(long)]
        uuid: Option<String>,
    },
    /// Assign adapters, domains and control domains, in the order given; stops at the first refusal
    Assign(MatrixIds),
    /// Unassign adapters, domains and control domains, in the order given
    Unassign(MatrixIds),
    /// Show an mdev's matrix and control domains
    Show {
        /// UUID or a unique prefix of it
        mdev: String,
        #[command(flatten)]
        from: ReadFrom,
    },
    /// List the mdevs
    List(ReadFrom),
    /// Remove an mdev (refused while a guest uses it; on kernels since 5.15, waits for the guest to let go)
    Remove {
        /// UUID or a unique prefix of it
        mdev: String,
        /// How long to wait for a guest using the mdev to let go, in seconds
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        timeout: u64,
    },
}

#[derive(clap::Args, Debug)]
pub(crate) struct MatrixIds {
    /// UUID or a unique prefix of it
    pub(crate) mdev: String,
    /// Adapters: ids and ranges, decimal or 0x hex (5,6 or 0x04-0x06)
    #[arg(short, long = "adapter", value_name = "IDS")]
    pub(crate) adapter: Vec<String>,
    /// Usage domains: ids and ranges, decimal or 0x hex
    #[arg(short, long = "domain", value_name = "IDS")]
    pub(crate) domain: Vec<String>,
    /// Control domains: ids and ranges, decimal or 0x hex
    #[arg(short, long = "control-domain", value_name = "IDS")]
    pub(crate) control_domain: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum GuestCommand {
    /// Start a guest, optionally with an mdev (-device vfio-ap,sysfsdev=...)
    Start {
        name: String,
        /// The mdev: UUID or a unique prefix of it
        #[arg(long)]
        mdev: Option<String>,
        /// CPU model AP features, QEMU style
        #[arg(
            long,
            default_value = "ap=on,apqci=on,apft=on",
            value_name = "FEATURES"
        )]
        cpu: String,
    },
    /// Stop a guest
    Stop { name: String },
    /// Hot plug an mdev into a running guest
    Attach { name: String, mdev: String },
    /// Hot unplug the guest's mdev
    Detach { name: String },
    /// List running guests
    List(ReadFrom),
    /// What lszcrypt inside the guest prints
    Lszcrypt {
        name: String,
        #[command(flatten)]
        from: ReadFrom,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum MigrateCommand {
    /// Check that the target can host the guest's matrix, and print the procedure as commands
    ///
    /// Each side is a state file (an emulated host) or a sysfs root (a
    /// directory: /sys, a mounted emulator), whose running guests are
    /// libvirt's live XML under --from-run / --to-run.
    Plan {
        #[command(flatten)]
        args: MigrateArgs,
        /// With a sysfs root as --from: the run directory whose libvirt/qemu/*.xml are its running guests [default for /sys: /run]
        #[arg(long, value_name = "DIR")]
        from_run: Option<PathBuf>,
        /// With a sysfs root as --to: the run directory whose libvirt/qemu/*.xml are its running guests [default for /sys: /run]
        #[arg(long, value_name = "DIR")]
        to_run: Option<PathBuf>,
        /// The target's libvirt URI for `virsh migrate`
        #[arg(long, value_name = "URI", default_value = "qemu+ssh://DST/system")]
        uri: String,
    },
    /// Carry the migration out between two emulated hosts (state files): all of it, or nothing
    ///
    /// Both new states are computed first, every step through the model;
    /// a refusal anywhere leaves both hosts untouched. Then the source is
    /// written, then the target; if the target cannot be written, the
    /// source is put back.
    Run {
        #[command(flatten)]
        args: MigrateArgs,
    },
}

/// What both `migrate` commands take.
#[derive(clap::Args, Debug)]
pub(crate) struct MigrateArgs {
    /// The guest, running on the source
    pub(crate) guest: String,
    /// The source host: a state file, or (plan only) a sysfs root
    #[arg(long, value_name = "PATH")]
    pub(crate) from: PathBuf,
    /// The target host: a state file, or (plan only) a sysfs root
    #[arg(long, value_name = "PATH")]
    pub(crate) to: PathBuf,
    /// Source adapter = target adapter, comma separated (5=7,6=8); the other adapters are matched automatically
    #[arg(long, value_name = "MAP")]
    pub(crate) adapters: Vec<String>,
    /// Source domain = target domain, for usage and control domains (4=5,0xab=0xac); the others keep their numbers
    #[arg(long, value_name = "MAP")]
    pub(crate) domains: Vec<String>,
    /// The target mdev's UUID [default: the source mdev's]
    #[arg(long, value_name = "UUID")]
    pub(crate) uuid: Option<uuid::Uuid>,
}

/// An adapter or domain number as the kernel's stores read one
/// (kstrtoul, base 0).
fn id_number(text: &str) -> Result<u8, String> {
    apmatrix_model::parse::parse_kstrtoul(text.as_bytes())
        .ok()
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| format!("{text:?} is not an id (0 to 255, decimal or 0x hex)"))
}

/// `--kernel`: a profile by name or by the kernel version that behaves so.
pub(crate) fn kernel_profile(text: &str) -> Result<&'static KernelProfile, String> {
    apmatrix_model::profile::for_kernel(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
