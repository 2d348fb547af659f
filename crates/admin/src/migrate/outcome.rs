//! What a migration's decision gives back: a [`Plan`] with its stages, or
//! a [`Refusal`] with every reason.

use std::fmt;

use apmatrix_model::{CardMode, CpuModel, GuestUpdate, GuestView, Host};
use uuid::Uuid;

use crate::{Step, WantedMdev};

/// One adapter of the guest and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterMove {
    pub from: u8,
    pub to: u8,
    /// The source card's type (`CEX8C`).
    pub from_type: String,
    /// The target card's type: the same mode, a hwtype at least the source's.
    pub to_type: String,
    pub mode: CardMode,
    /// Fixed by `--adapters` rather than matched.
    pub given: bool,
}

/// The parts of the procedure, in order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// On the source: unassign the guest's adapters (hot unplug).
    Unplug,
    /// On the source: detach the vfio-ap device (`virsh detach-device`).
    Detach,
    /// The hypervisor's live migration (`virsh migrate --live`).
    Migrate,
    /// On the target: create the mdev and assign the matrix.
    Assign,
    /// On the target: attach the vfio-ap device (`virsh attach-device`).
    Attach,
}

impl StageKind {
    /// `source`, `target` or `hypervisor`: where the stage happens.
    pub fn side(self) -> &'static str {
        match self {
            StageKind::Unplug | StageKind::Detach => "source",
            StageKind::Migrate => "hypervisor",
            StageKind::Assign | StageKind::Attach => "target",
        }
    }

    /// Its name in the JSON form.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Unplug => "unplug",
            StageKind::Detach => "detach",
            StageKind::Migrate => "migrate",
            StageKind::Assign => "assign",
            StageKind::Attach => "attach",
        }
    }
}

/// One stage, with what it did to the guest when it ran on the copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub kind: StageKind,
    /// Its sysfs writes (paths under the root), each with the guest's
    /// CRYCB change it caused, if any.
    pub writes: Vec<(Step, Option<GuestUpdate>)>,
    /// The guest's CRYCB change of the stage's own action (detach, attach).
    pub update: Option<GuestUpdate>,
    /// Said beside the stage (why a step is left out).
    pub note: Option<String>,
}

/// A migration the target can take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub guest: String,
    /// The guest's CPU model; it starts on the target with the same.
    pub cpu: CpuModel,
    /// The guest's mdev on the source.
    pub source_mdev: Uuid,
    /// What is moved, in the source's numbers.
    pub moved: crate::Matrix,
    /// The mdev made on the target for the guest.
    pub target_mdev: WantedMdev,
    pub adapters: Vec<AdapterMove>,
    /// Usage domains, source to target.
    pub domains: Vec<(u8, u8)>,
    /// Control domains, source to target.
    pub control_domains: Vec<(u8, u8)>,
    pub warnings: Vec<String>,
    /// What the guest sees on the source now.
    pub sees_now: GuestView,
    /// What it sees on the target at the end.
    pub will_see: GuestView,
    pub stages: Vec<Stage>,
    /// The source once the guest has left.
    pub source_after: Host,
    /// The target once the guest runs there with its devices.
    pub target_after: Host,
}

/// Why the guest cannot move: every reason found, one sentence each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub guest: String,
    pub reasons: Vec<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest {} cannot move to the target with its AP devices:",
            self.guest
        )?;
        for r in &self.reasons {
            write!(f, "\n  {r}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

/// A refusal of one reason.
pub(super) fn refuse(guest: &str, reason: String) -> Refusal {
    Refusal {
        guest: guest.to_string(),
        reasons: vec![reason],
    }
}
