//! What each stage of a plan is, in words and as shell commands, and the
//! files those commands use: what the script and the JSON both print.

use apmatrix_admin::export::libvirt_hostdev_xml;
use apmatrix_admin::migrate::{self, Plan, Stage, StageKind};
use apmatrix_admin::WantedMdev;
use uuid::Uuid;

use super::side::{shell_word, Side};

/// The files the procedure uses, by name.
pub(super) struct Files {
    pub source_hostdev: (String, String),
    /// `None` when the target mdev has the source's UUID (the same file).
    pub target_hostdev: Option<(String, String)>,
    pub configuration: (String, String),
}

fn hostdev_for(uuid: Uuid) -> String {
    libvirt_hostdev_xml(&WantedMdev::empty(uuid))
}

pub(super) fn files(p: &Plan, from: &Side) -> Files {
    let g = &p.guest;
    let target = p.target_mdev.uuid;
    Files {
        source_hostdev: (format!("{g}-hostdev.xml"), hostdev_for(p.source_mdev)),
        target_hostdev: (target != p.source_mdev)
            .then(|| (format!("{g}-hostdev-target.xml"), hostdev_for(target))),
        configuration: (
            format!("{g}-migrate.toml"),
            format!(
                "# {g}'s AP devices, moved from {} (mdev {}): for apmatrix check and apply on the target\n{}",
                from.label,
                p.source_mdev,
                migrate::configuration(&p.target_mdev)
            ),
        ),
    }
}

impl Files {
    fn target_hostdev(&self) -> &(String, String) {
        self.target_hostdev.as_ref().unwrap_or(&self.source_hostdev)
    }
}

/// What a stage does, in words.
pub(super) fn says(stage: &Stage, p: &Plan, from: &Side, to: &Side) -> String {
    let (g, src, dst) = (&p.guest, p.source_mdev, p.target_mdev.uuid);
    match stage.kind {
        StageKind::Unplug => format!(
            "on the source ({}): unassign the guest's adapters from mdev {src}; the guest sees its AP devices go (hot unplug)",
            from.label
        ),
        StageKind::Detach => {
            "on the source: detach the vfio-ap device, which QEMU cannot migrate".to_string()
        }
        StageKind::Migrate => format!(
            "migrate {g} live; it keeps its CPU model ({})",
            p.cpu.features()
        ),
        StageKind::Assign => format!(
            "on the target ({}): create mdev {dst} and assign the guest's matrix",
            to.label
        ),
        StageKind::Attach => {
            "on the target: attach the vfio-ap device; the guest sees its AP devices again (hot plug)"
                .to_string()
        }
    }
}

/// The commands of a stage, without the files they use.
pub(super) fn commands(
    stage: &Stage,
    p: &Plan,
    files: &Files,
    from: &Side,
    to: &Side,
    uri: &str,
) -> Vec<String> {
    let g = shell_word(&p.guest);
    match stage.kind {
        StageKind::Unplug => stage
            .writes
            .iter()
            .map(|(s, _)| s.shell(&from.root))
            .collect(),
        StageKind::Detach => vec![format!(
            "virsh detach-device {g} {} --live",
            shell_word(&files.source_hostdev.0)
        )],
        StageKind::Migrate => vec![format!("virsh migrate --live {g} {}", shell_word(uri))],
        StageKind::Assign => stage
            .writes
            .iter()
            .map(|(s, _)| s.shell(&to.root))
            .collect(),
        StageKind::Attach => vec![format!(
            "virsh attach-device {g} {} --live",
            shell_word(&files.target_hostdev().0)
        )],
    }
}
