//! The ordered sysfs writes from the host as it is to a configuration, and
//! running them with undo on refusal.

use apmatrix_model::profile::RunningGuest;
use apmatrix_model::vfio::MDEV_TYPE;
use apmatrix_model::{Mask256, MatrixAxis};
use uuid::Uuid;

use crate::root::{SysfsRoot, WriteFailure};
use crate::{
    check, observe, target_masks, Matrix, ObserveError, Observed, Problem, Severity, Wanted, MATRIX,
};

/// One sysfs write of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub path: String,
    pub value: String,
    /// The write that undoes it.
    pub undo: Option<(String, String)>,
}

impl Step {
    /// The shell command an admin could run.
    pub fn shell(&self, root: &str) -> String {
        format!("echo {} > {root}/{}", self.value, self.path)
    }
}

/// Ids as the document writes them: adapters in decimal (`5`), domains in
/// hex (`0xab`).
pub(crate) fn id_value(axis: MatrixAxis, id: u8) -> String {
    match axis {
        MatrixAxis::Adapter => id.to_string(),
        MatrixAxis::Domain | MatrixAxis::ControlDomain => format!("{id:#04x}"),
    }
}

fn mdev_attr(uuid: &Uuid, attr: &str) -> String {
    format!("{MATRIX}/{uuid}/{attr}")
}

/// One `<verb>_<axis>` write per id that `have` has and `other` lacks,
/// adapters first; each undone by `<undo>_<axis>`.
fn matrix_steps(uuid: &Uuid, have: &Matrix, other: &Matrix, verb: &str, undo: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for axis in MatrixAxis::ALL {
        for id in have.axis(axis).and_not(&other.axis(axis)).iter() {
            let word = axis.attr_word();
            steps.push(Step {
                path: mdev_attr(uuid, &format!("{verb}_{word}")),
                value: id_value(axis, id),
                undo: Some((
                    mdev_attr(uuid, &format!("{undo}_{word}")),
                    id_value(axis, id),
                )),
            });
        }
    }
    steps
}

fn mask_step(name: &str, from: Mask256, to: Mask256) -> Step {
    Step {
        path: format!("bus/ap/{name}"),
        value: to.to_string(),
        undo: Some((format!("bus/ap/{name}"), from.to_string())),
    }
}

/// An mdev's `ap_config` as ap-check writes it (`echo` adds the newline).
fn ap_config_text(m: &Matrix) -> String {
    format!("{},{},{}", m.adapters, m.domains, m.control_domains)
}

/// One `ap_config` write from `from` to `to`, undone by writing `from`.
fn ap_config_step(uuid: &Uuid, from: &Matrix, to: &Matrix) -> Step {
    Step {
        path: mdev_attr(uuid, "ap_config"),
        value: ap_config_text(to),
        undo: Some((mdev_attr(uuid, "ap_config"), ap_config_text(from))),
    }
}

fn intersection(a: &Matrix, b: &Matrix) -> Matrix {
    Matrix {
        adapters: a.adapters.and(&b.adapters),
        domains: a.domains.and(&b.domains),
        control_domains: a.control_domains.and(&b.control_domains),
    }
}

/// The ordered writes from the host as it is to the configuration:
/// unassignments first (they free APQNs), then mask bits taken from the
/// host, then mask bits given to it (never refused once nothing assigned is
/// in them), then new mdevs, then assignments. Mdevs the configuration
/// does not name are left alone. Empty when the host already matches.
///
/// Where the kernel has `ap_config` (NEW), an mdev's matrix changes in
/// whole-matrix writes instead: one to what it keeps, if it loses
/// something, before the masks; one to what it is asked for, after them.
/// Each is atomic, and a running guest sees at most two changes.
pub fn plan(wanted: &Wanted, seen: &Observed) -> Vec<Step> {
    let whole = seen.profile.sysfs.ap_config;
    let mut steps = Vec::new();
    for m in &wanted.mdevs {
        if let Some(now) = seen.mdevs.get(&m.uuid) {
            let kept = intersection(now, &m.matrix());
            if !whole {
                steps.extend(matrix_steps(
                    &m.uuid,
                    now,
                    &m.matrix(),
                    "unassign",
                    "assign",
                ));
            } else if kept != *now {
                steps.push(ap_config_step(&m.uuid, now, &kept));
            }
        }
    }
    let (apmask, aqmask) = target_masks(wanted, seen);
    let (cleared_ap, cleared_aq) = (seen.apmask.and(&apmask), seen.aqmask.and(&aqmask));
    if cleared_ap != seen.apmask {
        steps.push(mask_step("apmask", seen.apmask, cleared_ap));
    }
    if cleared_aq != seen.aqmask {
        steps.push(mask_step("aqmask", seen.aqmask, cleared_aq));
    }
    if apmask != cleared_ap {
        steps.push(mask_step("apmask", cleared_ap, apmask));
    }
    if aqmask != cleared_aq {
        steps.push(mask_step("aqmask", cleared_aq, aqmask));
    }
    for m in &wanted.mdevs {
        let now = match seen.mdevs.get(&m.uuid) {
            Some(now) if whole => intersection(now, &m.matrix()),
            Some(now) => now.clone(),
            None => {
                steps.push(Step {
                    path: format!("{MATRIX}/mdev_supported_types/{MDEV_TYPE}/create"),
                    value: m.uuid.to_string(),
                    undo: Some((mdev_attr(&m.uuid, "remove"), "1".into())),
                });
                Matrix::default()
            }
        };
        if !whole {
            steps.extend(matrix_steps(
                &m.uuid,
                &m.matrix(),
                &now,
                "assign",
                "unassign",
            ));
        } else if now != m.matrix() {
            steps.push(ap_config_step(&m.uuid, &now, &m.matrix()));
        }
    }
    steps
}

/// Why an apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the configuration has {} error(s); nothing was written:\n{}", .0.len(), .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    #[error("{0}")]
    Observe(#[from] ObserveError),
    #[error("step {step} `{command}` was refused: {failure}{why}; the {done} step(s) before it were undone, the host is as it was")]
    RolledBack {
        step: usize,
        command: String,
        failure: WriteFailure,
        /// What the refusal means on this kernel, when that is not plain.
        why: String,
        done: usize,
    },
    #[error("step {step} `{command}` was refused: {failure}; undoing the steps before it failed too ({undo}): the host is between states, check it with `apmatrix plan`")]
    Stuck {
        step: usize,
        command: String,
        failure: WriteFailure,
        undo: String,
    },
    #[error("the writes were accepted but the host reads back differently: {0}")]
    Verify(String),
}

/// OLD refuses every assign and unassign while a guest uses the mdev
/// (kernel.md §6, §8), and its sysfs cannot tell which mdevs are in use: a
/// plan meets it as an EBUSY, which needs saying what to do.
fn refusal_meaning(seen: &Observed, step: &Step, failure: &WriteFailure) -> String {
    let RunningGuest::Refuse(errno) = seen.profile.running_guest else {
        return String::new();
    };
    let store = step.path.rsplit('/').next().unwrap_or_default();
    let matrix_store = store.starts_with("assign_") || store.starts_with("unassign_");
    if !matrix_store || failure.errno != errno.code() {
        return String::new();
    }
    format!(
        " (the {} kernel changes no mdev while a guest uses it: stop the guest, \
         apply again, then start it)",
        seen.profile.name
    )
}

/// What an apply did.
#[derive(Debug, Default)]
pub struct Applied {
    pub steps: Vec<Step>,
}

/// Checks, plans and runs the plan (unless `dry_run`); on a refusal undoes
/// the steps done, newest first; then reads the host back.
pub fn apply(
    root: &mut dyn SysfsRoot,
    wanted: &Wanted,
    dry_run: bool,
) -> Result<Applied, ApplyError> {
    let seen = observe(root)?;
    let errors: Vec<Problem> = check(wanted, &seen)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        return Err(ApplyError::Invalid(errors));
    }
    let steps = plan(wanted, &seen);
    if dry_run {
        return Ok(Applied { steps });
    }
    let place = root.describe();
    for (i, step) in steps.iter().enumerate() {
        if let Err(failure) = root.write(&step.path, &step.value) {
            for done in steps[..i].iter().rev() {
                let (path, value) = done.undo.as_ref().expect("every step has an undo");
                if let Err(e) = root.write(path, value) {
                    return Err(ApplyError::Stuck {
                        step: i + 1,
                        command: step.shell(&place),
                        failure,
                        undo: format!("echo {value} > {place}/{path}: {e}"),
                    });
                }
            }
            return Err(ApplyError::RolledBack {
                step: i + 1,
                command: step.shell(&place),
                why: refusal_meaning(&seen, step, &failure),
                failure,
                done: i,
            });
        }
    }
    let after = observe(root)?;
    let left = plan(wanted, &after);
    if !left.is_empty() {
        return Err(ApplyError::Verify(
            left.iter()
                .map(|s| s.shell(&place))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    Ok(Applied { steps })
}
