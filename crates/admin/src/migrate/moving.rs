//! What is moved: the guest on the source, and the part of its mdev the
//! source has (adapters with a card, usage and control domains of the
//! source's LPAR). The rest the guest does not see, so it is not carried
//! over, and a warning names it.

use apmatrix_model::{CpuModel, GuestView, Host, Mask256, Mdev};
use uuid::Uuid;

use super::outcome::{refuse, Refusal};
use super::words::{adapter_ids, hex_ids, or_none};
use crate::Matrix;

/// The guest on the source and what of its mdev moves.
pub(super) struct Moving {
    pub cpu: CpuModel,
    /// The guest's mdev on the source.
    pub source_mdev: Uuid,
    /// Every adapter assigned to that mdev: what the unplug unassigns.
    pub assigned_adapters: Mask256,
    /// The part of the mdev the source has, in the source's numbers.
    pub matrix: Matrix,
    /// What the guest sees on the source now.
    pub sees_now: GuestView,
    /// What of the mdev is not moved, a sentence per axis.
    pub warnings: Vec<String>,
}

/// The guest `name` on `source` and what moves with it; refused when it
/// does not run there, has no vfio-ap device, or gets no AP queue from it.
pub(super) fn moving(source: &Host, name: &str) -> Result<Moving, Refusal> {
    let Some(guest) = source.guest(name) else {
        return Err(refuse(name, format!("no guest {name} runs on the source")));
    };
    let Some(source_mdev) = guest.mdev else {
        return Err(refuse(
            name,
            format!(
                "guest {name} has no vfio-ap device on the source: it has no AP devices to move; \
                 migrate it as usual"
            ),
        ));
    };
    let mdev = source.mdev(&source_mdev).expect("a guest's mdev exists");
    let topo = source.topology();
    let matrix = Matrix {
        adapters: mdev.adapters.and(&topo.adapters()),
        domains: mdev.domains.and(&topo.usage_domains),
        control_domains: mdev.control_domains.and(&topo.control_domains),
    };
    let warnings = not_moved(mdev, &matrix);
    if matrix.adapters.is_empty() || matrix.domains.is_empty() {
        return Err(refuse(
            name,
            format!(
                "mdev {source_mdev} gives guest {name} no AP queue on the source (adapters {}, \
                 usage domains {}): there is nothing to move; migrate it as usual",
                or_none(adapter_ids(&matrix.adapters)),
                or_none(hex_ids(&matrix.domains))
            ),
        ));
    }
    Ok(Moving {
        cpu: guest.cpu,
        source_mdev,
        assigned_adapters: mdev.adapters,
        matrix,
        sees_now: source.guest_view(name).expect("the guest runs"),
        warnings,
    })
}

/// A warning per axis of the mdev that has ids the source cannot give.
fn not_moved(mdev: &Mdev, kept: &Matrix) -> Vec<String> {
    let axes = [
        (
            "adapters",
            mdev.adapters,
            kept.adapters,
            "the source has no card for them",
        ),
        (
            "domains",
            mdev.domains,
            kept.domains,
            "they are not usage domains of the source's LPAR",
        ),
        (
            "control domains",
            mdev.control_domains,
            kept.control_domains,
            "they are not control domains of the source's LPAR",
        ),
    ];
    let mut warnings = Vec::new();
    for (what, all, kept, why) in axes {
        let left = all.and_not(&kept);
        if left.is_empty() {
            continue;
        }
        let ids = if what == "adapters" {
            adapter_ids(&left)
        } else {
            hex_ids(&left)
        };
        warnings.push(format!(
            "{what} {ids} of mdev {} are not moved: {why}, so the guest does not see them",
            mdev.uuid
        ));
    }
    warnings
}
