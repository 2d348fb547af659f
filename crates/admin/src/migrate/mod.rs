//! Moving a guest with AP devices to another host (issue 15).
//!
//! Live migration is not possible while a guest has a vfio-ap device (the
//! seed document's Limitations; QEMU marks the device unmigratable): its
//! adapters are unassigned (hot unplug), the device is detached, the guest
//! migrates, and its matrix is assigned to an mdev on the target and
//! attached again. Nothing in the kernel checks that the target can give
//! the guest the same thing; [`plan`] does.
//!
//! Pure: the two hosts as models in, a [`Plan`] (with both hosts' states
//! after it) or every reason it cannot be done out. The plan is proven on
//! copies of both hosts: every step runs through the model (the sysfs
//! writes through the emulated tree, exactly as they are printed), so a
//! step the kernel would refuse is a refusal here.
//!
//! What is moved is the part of the guest's mdev the source has: its
//! adapters with a card, its usage domains of the source's LPAR, its
//! control domains of the LPAR. Anything else the guest does not see, and
//! is not carried over (a warning says so).
//!
//! The rooms, in the order [`plan`] goes through them: `moving.rs` (what
//! the source gives the guest), `target.rs` (what the target must not
//! have already; the target's mdev and its configuration), `domains.rs`
//! (the domain map), `fit.rs` and `matching.rs` (a target card per source
//! adapter, one to one), `proof.rs` (the stages on copies of both hosts),
//! `view.rs` (the guest's view on the target against the source's).
//! `request.rs` and `outcome.rs` hold what goes in and what comes out,
//! `words.rs` how the reasons name ids.

mod domains;
mod fit;
mod matching;
mod moving;
mod outcome;
mod proof;
mod request;
mod target;
mod view;
mod words;

pub use outcome::{AdapterMove, Plan, Refusal, Stage, StageKind};
pub use request::{parse_map, Request};
pub use target::configuration;
pub use words::mode_words;

use apmatrix_model::Host;

use outcome::refuse;

/// Decides whether `target` can host the guest's matrix, as `request`
/// asks, and proves the procedure on copies of both hosts.
///
/// Every reason the target cannot take the guest is gathered before the
/// proof (the target's guests and mdevs, the domains, the adapters), so a
/// refusal lists them all at once; the proof and the view comparison then
/// stop at the first step that fails.
pub fn plan(source: &Host, target: &Host, request: &Request) -> Result<Plan, Refusal> {
    let name = request.guest.as_str();
    let mut moving = moving::moving(source, name)?;
    let mut warnings = std::mem::take(&mut moving.warnings);
    let mut reasons = Vec::new();
    let target_uuid = request.uuid.unwrap_or(moving.source_mdev);
    target::already_there(target, name, target_uuid, &mut reasons);
    let domains = domains::map_domains(
        &moving.matrix,
        &request.domains,
        target,
        &mut reasons,
        &mut warnings,
    );
    let pairs = matching::match_adapters(
        source,
        target,
        &moving.matrix.adapters,
        &request.adapters,
        &domains.target_usage,
        &mut reasons,
    );
    if !reasons.is_empty() {
        return Err(Refusal {
            guest: name.to_string(),
            reasons,
        });
    }
    let adapters = target::adapter_moves(&pairs, source.topology(), target.topology());
    let target_mdev = target::target_mdev(target_uuid, &adapters, &domains, name);
    let proven = proof::prove(source, target, name, &moving, &target_mdev)?;
    let will_see = proven
        .target_after
        .guest_view(name)
        .expect("the guest runs on the target");
    let gained = view::compare(&moving.sees_now, &will_see, &adapters, &request.domains)
        .map_err(|reason| refuse(name, reason))?;
    warnings.extend(gained);
    Ok(Plan {
        guest: name.to_string(),
        cpu: moving.cpu,
        source_mdev: moving.source_mdev,
        moved: moving.matrix,
        target_mdev,
        adapters,
        domains: domains.usage,
        control_domains: domains.control,
        warnings,
        sees_now: moving.sees_now,
        will_see,
        stages: proven.stages,
        source_after: proven.source_after,
        target_after: proven.target_after,
    })
}

#[cfg(test)]
mod tests;
