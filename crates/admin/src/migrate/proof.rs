//! The procedure proven on copies of both hosts: every stage runs through
//! the model, the sysfs writes through the emulated tree exactly as they
//! are printed, so a step the kernel would refuse is a refusal here; each
//! write keeps the guest's CRYCB change it caused, for the script's
//! comments.

use apmatrix_model::profile::RunningGuest;
use apmatrix_model::{CpuModel, Crycb, GuestUpdate, Host, MatrixAxis};
use uuid::Uuid;

use super::moving::Moving;
use super::outcome::{refuse, Refusal, Stage, StageKind};
use crate::{
    check, id_value, observe, plan as config_plan, EmulatedRoot, Severity, Step, SysfsRoot, Wanted,
    WantedMasks, WantedMdev, MATRIX,
};

/// Both hosts after the procedure, and its stages.
pub(super) struct Proven {
    pub stages: Vec<Stage>,
    /// The source once the guest has left.
    pub source_after: Host,
    /// The target once the guest runs there with its devices.
    pub target_after: Host,
}

/// Runs the stages in order on copies of `source` and `target`; the first
/// that fails is the refusal.
pub(super) fn prove(
    source: &Host,
    target: &Host,
    name: &str,
    moving: &Moving,
    target_mdev: &WantedMdev,
) -> Result<Proven, Refusal> {
    let mut src = source.clone();
    let mut dst = target.clone();
    let stages = vec![
        unplug(&mut src, name, moving)?,
        detach(&mut src, name)?,
        migrate(&mut src, &mut dst, name, moving.cpu)?,
        assign(&mut dst, name, target_mdev)?,
        attach(&mut dst, name, &target_mdev.uuid)?,
    ];
    Ok(Proven {
        stages,
        source_after: src,
        target_after: dst,
    })
}

/// Every adapter of the mdev unassigned (hot unplug). A kernel that
/// refuses any unassign while a guest uses the mdev gets none: the detach
/// then unplugs everything at once, and the stage's note says so.
fn unplug(src: &mut Host, name: &str, moving: &Moving) -> Result<Stage, Refusal> {
    let uuid = moving.source_mdev;
    let profile = src.profile();
    match profile.running_guest {
        RunningGuest::HotPlug => {
            let steps = moving
                .assigned_adapters
                .iter()
                .map(|a| {
                    let path = |verb: &str| format!("{MATRIX}/{uuid}/{verb}_adapter");
                    let value = id_value(MatrixAxis::Adapter, a);
                    Step {
                        path: path("unassign"),
                        value: value.clone(),
                        undo: Some((path("assign"), value)),
                    }
                })
                .collect();
            Ok(Stage {
                kind: StageKind::Unplug,
                writes: write_all(src, steps, "source", name).map_err(|r| refuse(name, r))?,
                update: None,
                note: None,
            })
        }
        RunningGuest::Refuse(errno) => Ok(Stage {
            kind: StageKind::Unplug,
            writes: Vec::new(),
            update: None,
            note: Some(format!(
                "the source's kernel ({}) refuses every unassign while a guest uses the mdev \
                 ({}); detaching the device unplugs all of the guest's AP devices at once",
                profile.name,
                errno.name()
            )),
        }),
    }
}

fn detach(src: &mut Host, name: &str) -> Result<Stage, Refusal> {
    let before = src.clone();
    src.detach_mdev(name).map_err(|e| {
        refuse(
            name,
            format!("on the source, detaching the vfio-ap device: {e}"),
        )
    })?;
    Ok(Stage {
        kind: StageKind::Detach,
        writes: Vec::new(),
        update: update_between(&before, src, name),
        note: None,
    })
}

/// The guest ends on the source and starts on the target with its CPU
/// model.
fn migrate(src: &mut Host, dst: &mut Host, name: &str, cpu: CpuModel) -> Result<Stage, Refusal> {
    src.stop_guest(name)
        .map_err(|e| refuse(name, format!("on the source, the guest's end there: {e}")))?;
    dst.start_guest(name, None, cpu)
        .map_err(|e| refuse(name, format!("on the target, starting the guest: {e}")))?;
    Ok(Stage {
        kind: StageKind::Migrate,
        writes: Vec::new(),
        update: None,
        note: None,
    })
}

/// The target's mdev as `apmatrix apply` would make it: the configuration
/// checked against the target (every error a reason), its plan's writes
/// run, and the target read back until nothing is left to do.
fn assign(dst: &mut Host, name: &str, target_mdev: &WantedMdev) -> Result<Stage, Refusal> {
    let fail = |reason: String| refuse(name, reason);
    let wanted = Wanted {
        masks: WantedMasks::Keep,
        mdevs: vec![target_mdev.clone()],
    };
    let seen = observe(&EmulatedRoot { host: dst.clone() }).map_err(|e| fail(e.to_string()))?;
    let errors: Vec<String> = check(&wanted, &seen)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| format!("on the target: {}", p.message))
        .collect();
    if !errors.is_empty() {
        return Err(Refusal {
            guest: name.to_string(),
            reasons: errors,
        });
    }
    let steps = config_plan(&wanted, &seen);
    let writes = write_all(dst, steps, "target", name).map_err(fail)?;
    let seen = observe(&EmulatedRoot { host: dst.clone() }).map_err(|e| fail(e.to_string()))?;
    let left = config_plan(&wanted, &seen);
    if !left.is_empty() {
        return Err(fail(format!(
            "on the target, the mdev reads back differently: `{}` is still to do",
            left[0].shell("/sys")
        )));
    }
    Ok(Stage {
        kind: StageKind::Assign,
        writes,
        update: None,
        note: None,
    })
}

fn attach(dst: &mut Host, name: &str, uuid: &Uuid) -> Result<Stage, Refusal> {
    let before = dst.clone();
    dst.attach_mdev(name, uuid).map_err(|e| {
        refuse(
            name,
            format!("on the target, attaching the vfio-ap device: {e}"),
        )
    })?;
    Ok(Stage {
        kind: StageKind::Attach,
        writes: Vec::new(),
        update: update_between(&before, dst, name),
        note: None,
    })
}

/// Runs sysfs writes on a host through its emulated tree, each with the
/// guest's change; the first refusal says which write on which side.
fn write_all(
    host: &mut Host,
    steps: Vec<Step>,
    side: &str,
    guest: &str,
) -> Result<Vec<(Step, Option<GuestUpdate>)>, String> {
    let mut done = Vec::new();
    for step in steps {
        let mut root = EmulatedRoot { host: host.clone() };
        if let Err(failure) = root.write(&step.path, &step.value) {
            return Err(format!(
                "on the {side}, `{}` is refused: {failure}",
                step.shell("/sys")
            ));
        }
        let update = update_between(host, &root.host, guest);
        *host = root.host;
        done.push((step, update));
    }
    Ok(done)
}

/// The guest's CRYCB on a host (empty when it does not run there).
fn crycb_on(host: &Host, guest: &str) -> Crycb {
    host.guest(guest).map(|g| g.crycb).unwrap_or_default()
}

fn update_between(before: &Host, after: &Host, guest: &str) -> Option<GuestUpdate> {
    let (b, a) = (crycb_on(before, guest), crycb_on(after, guest));
    (b != a).then(|| GuestUpdate {
        guest: guest.to_string(),
        before: b,
        after: a,
    })
}
