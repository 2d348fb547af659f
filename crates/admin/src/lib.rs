//! apmatrix-admin: say what the host should look like, and get there safely.
//!
//! A [`Config`] (TOML) names the host's pools and the mdevs wanted. Against
//! any [`SysfsRoot`] (a real /sys, a mounted emulator, an emulator in this
//! process) the host is [`observe`]d, the configuration is [`check`]ed (every
//! problem at once, in APQN terms, with a fix), a [`plan`] of ordered sysfs
//! writes is made so that no step is refused, and [`apply`] runs it, reads
//! the result back, and on any refusal undoes what it did.

pub mod export;
pub mod files;
pub mod persistent;
pub mod predict;
pub mod root;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use apmatrix_model::parse::{parse_absolute_mask, parse_id_set};
use apmatrix_model::vfio::MDEV_TYPE;
use apmatrix_model::{Apqn, Mask256, MatrixAxis};
use serde::Deserialize;
use uuid::Uuid;

pub use root::{DirRoot, EmulatedRoot, SysfsRoot, WriteFailure};

const MATRIX: &str = "devices/vfio_ap/matrix";

/// UUIDs of mdevs configured by name are derived from the name (UUID v5 in
/// this namespace), so the same file always means the same mdevs.
pub const NAME_NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_2c1d_7f3b_4d7e_9a51_0c8e_5d2f_a6b4);

// ---------------------------------------------------------------------------
// The configuration file
// ---------------------------------------------------------------------------

/// What the host should look like.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The host's pools; absent: keep the masks as they are.
    #[serde(default)]
    pub masks: Option<MasksConfig>,
    #[serde(default, rename = "mdev")]
    pub mdevs: Vec<MdevConfig>,
}

/// The host's (zcrypt's) pools as id lists, or derived from the mdevs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasksConfig {
    /// The adapters apmask gives the host (`"0-4,7-255"`).
    pub apmask: Option<String>,
    /// The domains aqmask gives the host.
    pub aqmask: Option<String>,
    /// Give the host everything but what the mdevs need: every adapter
    /// (`"adapters"`) or every usage domain (`"domains"`) an mdev uses goes
    /// to vfio_ap, the rest of both masks to the host.
    pub derive: Option<Derive>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Derive {
    Adapters,
    Domains,
}

/// One mdev.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdevConfig {
    pub uuid: Option<Uuid>,
    /// A name; without `uuid` the UUID is derived from it.
    pub name: Option<String>,
    #[serde(default)]
    pub adapters: String,
    #[serde(default)]
    pub domains: String,
    #[serde(default)]
    pub control_domains: String,
    /// The guest that will use it.
    pub guest: Option<String>,
    #[serde(default)]
    pub autostart: bool,
}

/// A configuration with its id lists parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub masks: WantedMasks,
    pub mdevs: Vec<WantedMdev>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WantedMasks {
    Keep,
    Set {
        apmask: Option<Mask256>,
        aqmask: Option<Mask256>,
    },
    Derive(Derive),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedMdev {
    pub uuid: Uuid,
    pub label: String,
    pub adapters: Mask256,
    pub domains: Mask256,
    pub control_domains: Mask256,
    pub guest: Option<String>,
    pub autostart: bool,
}

impl WantedMdev {
    /// The matrix it asks for.
    pub fn matrix(&self) -> Matrix {
        Matrix {
            adapters: self.adapters,
            domains: self.domains,
            control_domains: self.control_domains,
        }
    }
}

/// A configuration file that cannot be read, naming the bad value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Parses the id lists and gives every mdev its UUID.
    pub fn resolve(&self) -> Result<Wanted, ConfigError> {
        let set = |what: &str, text: &str| {
            parse_id_set(text).map_err(|e| ConfigError(format!("{what} {text:?}: {e}")))
        };
        let masks = match &self.masks {
            None => WantedMasks::Keep,
            Some(m) => match (m.derive, &m.apmask, &m.aqmask) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err(ConfigError(
                        "[masks]: give derive or apmask/aqmask, not both".into(),
                    ))
                }
                (Some(d), None, None) => WantedMasks::Derive(d),
                (None, ap, aq) => WantedMasks::Set {
                    apmask: ap
                        .as_deref()
                        .map(|t| set("[masks] apmask", t))
                        .transpose()?,
                    aqmask: aq
                        .as_deref()
                        .map(|t| set("[masks] aqmask", t))
                        .transpose()?,
                },
            },
        };
        let mut mdevs = Vec::new();
        for (i, m) in self.mdevs.iter().enumerate() {
            let (uuid, label) = match (&m.uuid, &m.name) {
                (Some(u), Some(n)) => (*u, format!("{n} ({u})")),
                (Some(u), None) => (*u, u.to_string()),
                (None, Some(n)) => {
                    let u = Uuid::new_v5(&NAME_NAMESPACE, n.as_bytes());
                    (u, format!("{n} ({u})"))
                }
                (None, None) => {
                    return Err(ConfigError(format!(
                        "[[mdev]] number {}: give it a uuid or a name",
                        i + 1
                    )))
                }
            };
            mdevs.push(WantedMdev {
                uuid,
                adapters: set(&format!("mdev {label}: adapters"), &m.adapters)?,
                domains: set(&format!("mdev {label}: domains"), &m.domains)?,
                control_domains: set(
                    &format!("mdev {label}: control_domains"),
                    &m.control_domains,
                )?,
                label,
                guest: m.guest.clone(),
                autostart: m.autostart,
            });
        }
        Ok(Wanted { masks, mdevs })
    }
}

// ---------------------------------------------------------------------------
// What the host is now
// ---------------------------------------------------------------------------

/// An mdev's matrix as sysfs shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matrix {
    pub adapters: Mask256,
    pub domains: Mask256,
    pub control_domains: Mask256,
}

impl Matrix {
    fn axis(&self, axis: MatrixAxis) -> Mask256 {
        match axis {
            MatrixAxis::Adapter => self.adapters,
            MatrixAxis::Domain => self.domains,
            MatrixAxis::ControlDomain => self.control_domains,
        }
    }

    fn apqns(&self) -> impl Iterator<Item = Apqn> + '_ {
        apmatrix_model::vfio::cross(&self.adapters, &self.domains)
    }
}

/// A card as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenCard {
    pub hwtype: u8,
    pub type_name: String,
}

/// The host as read through a sysfs root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub apmask: Mask256,
    pub aqmask: Mask256,
    pub max_adapter_id: u8,
    pub max_domain_id: u8,
    pub usage_domains: Mask256,
    pub control_domains: Mask256,
    pub cards: BTreeMap<u8, SeenCard>,
    pub mdevs: BTreeMap<Uuid, Matrix>,
}

/// Why the host could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ObserveError(pub String);

fn read(root: &dyn SysfsRoot, path: &str) -> Result<String, ObserveError> {
    root.read(path)
        .map_err(|e| ObserveError(format!("{}: {e}", root::shown(root, path))))
}

fn read_mask(root: &dyn SysfsRoot, path: &str) -> Result<Mask256, ObserveError> {
    let text = read(root, path)?;
    parse_absolute_mask(text.as_bytes())
        .map_err(|e| ObserveError(format!("{}: {text:?}: {e}", root::shown(root, path))))
}

fn read_number(root: &dyn SysfsRoot, path: &str) -> Result<i64, ObserveError> {
    let text = read(root, path)?;
    text.trim().parse().map_err(|_| {
        ObserveError(format!(
            "{}: {text:?} is not a number",
            root::shown(root, path)
        ))
    })
}

/// Parses `matrix` (`aa.dddd`, `aa.`, `.dddd` lines) and `control_domains`.
pub fn parse_matrix(matrix: &str, control_domains: &str) -> Option<Matrix> {
    let mut m = Matrix::default();
    let hex = |t: &str| u8::from_str_radix(t, 16).ok();
    for line in matrix.lines().filter(|l| !l.is_empty()) {
        let (a, d) = line.split_once('.')?;
        if !a.is_empty() {
            m.adapters.set(hex(a)?);
        }
        if !d.is_empty() {
            m.domains
                .set(u8::try_from(u16::from_str_radix(d, 16).ok()?).ok()?);
        }
    }
    for line in control_domains.lines().filter(|l| !l.is_empty()) {
        m.control_domains
            .set(u8::try_from(u16::from_str_radix(line, 16).ok()?).ok()?);
    }
    Some(m)
}

/// Reads masks, limits, cards and mdevs.
pub fn observe(root: &dyn SysfsRoot) -> Result<Observed, ObserveError> {
    if root.list(MATRIX).is_err() {
        return Err(ObserveError(format!(
            "{} does not exist: the vfio_ap module is not loaded",
            root::shown(root, MATRIX)
        )));
    }
    let mut cards = BTreeMap::new();
    for name in root
        .list("devices/ap")
        .map_err(|e| ObserveError(format!("{}: {e}", root::shown(root, "devices/ap"))))?
    {
        let Some(id) = name
            .strip_prefix("card")
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let hwtype = read_number(root, &format!("devices/ap/{name}/hwtype"))? as u8;
        let type_name = root
            .read(&format!("devices/ap/{name}/type"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        cards.insert(id, SeenCard { hwtype, type_name });
    }
    let mut mdevs = BTreeMap::new();
    for name in root
        .list(MATRIX)
        .map_err(|e| ObserveError(format!("{}: {e}", root::shown(root, MATRIX))))?
    {
        let Ok(uuid) = Uuid::try_parse(&name) else {
            continue;
        };
        let dir = format!("{MATRIX}/{name}");
        let matrix = read(root, &format!("{dir}/matrix"))?;
        let cdoms = read(root, &format!("{dir}/control_domains"))?;
        let m = parse_matrix(&matrix, &cdoms).ok_or_else(|| {
            ObserveError(format!(
                "{}: cannot parse {matrix:?}",
                root::shown(root, &dir)
            ))
        })?;
        mdevs.insert(uuid, m);
    }
    Ok(Observed {
        apmask: read_mask(root, "bus/ap/apmask")?,
        aqmask: read_mask(root, "bus/ap/aqmask")?,
        max_adapter_id: read_number(root, "bus/ap/ap_max_adapter_id")? as u8,
        max_domain_id: read_number(root, "bus/ap/ap_max_domain_id")? as u8,
        usage_domains: read_mask(root, "bus/ap/ap_usage_domain_mask")?,
        control_domains: read_mask(root, "bus/ap/ap_control_domain_mask")?,
        cards,
        mdevs,
    })
}

// ---------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration cannot be applied as it is.
    Error,
    /// It can, but the guest will not get everything it names.
    Warning,
}

/// One problem, in APQN terms, with what would fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{tag}: {}\n  fix: {}", self.message, self.fix)
    }
}

/// The masks the configuration asks for, given the host now.
pub fn target_masks(wanted: &Wanted, seen: &Observed) -> (Mask256, Mask256) {
    match &wanted.masks {
        WantedMasks::Keep => (seen.apmask, seen.aqmask),
        WantedMasks::Set { apmask, aqmask } => {
            (apmask.unwrap_or(seen.apmask), aqmask.unwrap_or(seen.aqmask))
        }
        WantedMasks::Derive(d) => {
            let mut used_adapters = Mask256::EMPTY;
            let mut used_domains = Mask256::EMPTY;
            for m in &wanted.mdevs {
                used_adapters = used_adapters.or(&m.adapters);
                used_domains = used_domains.or(&m.domains);
            }
            // Everything else belongs to the host, so the file alone
            // decides the masks, whatever they were before.
            match d {
                Derive::Adapters => (Mask256::FULL.and_not(&used_adapters), Mask256::FULL),
                Derive::Domains => (Mask256::FULL, Mask256::FULL.and_not(&used_domains)),
            }
        }
    }
}

/// Every problem of the configuration on this host, errors first.
pub fn check(wanted: &Wanted, seen: &Observed) -> Vec<Problem> {
    let mut out = Vec::new();
    let (apmask, aqmask) = target_masks(wanted, seen);
    let managed: BTreeSet<Uuid> = wanted.mdevs.iter().map(|m| m.uuid).collect();
    // duplicates
    let mut seen_uuids = BTreeMap::new();
    let mut guests: BTreeMap<&str, &str> = BTreeMap::new();
    for m in &wanted.mdevs {
        if let Some(first) = seen_uuids.insert(m.uuid, m.label.as_str()) {
            out_error(
                &mut out,
                format!("mdev {} and mdev {first} have the same UUID", m.label),
                "give each [[mdev]] its own uuid or name".into(),
            );
        }
        if let Some(g) = &m.guest {
            if let Some(first) = guests.insert(g.as_str(), m.label.as_str()) {
                out_error(
&mut out,
                    format!("guest {g} is given mdev {first} and mdev {}; a guest has at most one vfio-ap device", m.label),
                    format!("merge the two mdevs into one for {g}, or give one of them to another guest"),
                );
            }
        }
    }
    for m in &wanted.mdevs {
        for (axis, mask, max) in [
            (MatrixAxis::Adapter, m.adapters, seen.max_adapter_id),
            (MatrixAxis::Domain, m.domains, seen.max_domain_id),
            (
                MatrixAxis::ControlDomain,
                m.control_domains,
                seen.max_domain_id,
            ),
        ] {
            if let Some(id) = mask.last().filter(|id| *id > max) {
                out_error(
                    &mut out,
                    format!(
                        "mdev {}: {} {id} ({id:#04x}) is above the host's maximum {max} (ENODEV)",
                        m.label,
                        axis.noun()
                    ),
                    format!("use {} numbers up to {max}", axis.noun()),
                );
            }
        }
        if m.domains.is_empty() && !m.control_domains.is_empty() {
            out_error(
&mut out,
                format!("mdev {}: control domains but no usage domain; ap-check refuses to start it (\"At least one usage domain must be specified\")", m.label),
                "add a usage domain (domains = ...) or drop the control domains".into(),
            );
        }
        let host_owned: Vec<Apqn> = apmatrix_model::vfio::cross(&m.adapters, &m.domains)
            .filter(|a| apmask.contains(a.adapter.0) && aqmask.contains(a.domain.0))
            .collect();
        if let Some(first) = host_owned.first() {
            out_error(
&mut out,
                format!(
                    "mdev {}: APQN {} {} reserved for the host by the masks (apmask bit {} and aqmask bit {} are set) (EADDRNOTAVAIL)",
                    m.label,
                    Apqn::list_text(&host_owned),
                    if host_owned.len() == 1 { "is" } else { "are" },
                    first.adapter.0,
                    first.domain.0
                ),
                format!(
                    "take adapter {} from apmask or domain {} from aqmask ([masks] apmask/aqmask, or derive = \"adapters\")",
                    first.adapter.0, first.domain.0
                ),
            );
        }
        for a in m.adapters.iter() {
            match seen.cards.get(&a) {
                None => out_warning(&mut out, format!("mdev {}: there is no card {a:02x}; the guest will not see adapter {a}", m.label), format!("drop adapter {a}, or configure the card on the HMC")),
                Some(c) if c.hwtype < 10 => out_warning(&mut out, format!("mdev {}: card {a:02x} has hwtype {} (older than CEX4); vfio_ap does not drive it, so the guest loses adapter {a}", m.label, c.hwtype), "use a CEX4 or newer card".into()),
                _ => {}
            }
        }
        let missing = m.domains.and_not(&seen.usage_domains);
        if !missing.is_empty() {
            out_warning(&mut out, format!("mdev {}: domains {} are not usage domains of this LPAR; the guest will not see them", m.label, missing.to_list()), "assign usage domains the LPAR has (ap_usage_domain_mask)".into());
        }
        let missing = m.control_domains.and_not(&seen.control_domains);
        if !missing.is_empty() {
            out_warning(&mut out, format!("mdev {}: control domains {} are not control domains of this LPAR; the guest will not get them", m.label, missing.to_list()), "use control domains the LPAR has (ap_control_domain_mask)".into());
        }
    }
    // sharing: between configured mdevs, and with mdevs the config leaves alone
    let mut owner: BTreeMap<Apqn, String> = BTreeMap::new();
    for (uuid, m) in seen.mdevs.iter().filter(|(u, _)| !managed.contains(u)) {
        for a in m.apqns() {
            owner.insert(a, format!("mdev {uuid} (not in this configuration)"));
        }
    }
    for m in &wanted.mdevs {
        let mut clashes: BTreeMap<String, Vec<Apqn>> = BTreeMap::new();
        for a in apmatrix_model::vfio::cross(&m.adapters, &m.domains) {
            match owner.get(&a) {
                Some(o) => clashes.entry(o.clone()).or_default().push(a),
                None => {
                    owner.insert(a, format!("mdev {}", m.label));
                }
            }
        }
        for (other, apqns) in clashes {
            out.push(Problem {
                severity: Severity::Error,
                message: format!(
                    "mdev {}: APQN {} already in use by {other} (EADDRINUSE)",
                    m.label,
                    Apqn::list_text(&apqns)
                ),
                fix: "an APQN belongs to one mdev: assign different adapters or domains".into(),
            });
        }
    }
    // masks must not take back what unmanaged mdevs hold
    for (uuid, m) in seen.mdevs.iter().filter(|(u, _)| !managed.contains(u)) {
        let taken: Vec<Apqn> = m
            .apqns()
            .filter(|a| apmask.contains(a.adapter.0) && aqmask.contains(a.domain.0))
            .collect();
        if !taken.is_empty() {
            out.push(Problem {
                severity: Severity::Error,
                message: format!(
                    "the masks would give the host APQN {}, assigned to mdev {uuid} (not in this configuration)",
                    Apqn::list_text(&taken)
                ),
                fix: format!("add mdev {uuid} to the configuration, or keep those bits out of the masks"),
            });
        }
    }
    out.sort_by_key(|p| p.severity);
    out
}

fn out_error(out: &mut Vec<Problem>, message: String, fix: String) {
    out.push(Problem {
        severity: Severity::Error,
        message,
        fix,
    });
}

fn out_warning(out: &mut Vec<Problem>, message: String, fix: String) {
    out.push(Problem {
        severity: Severity::Warning,
        message,
        fix,
    });
}

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

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
    for axis in [
        MatrixAxis::Adapter,
        MatrixAxis::Domain,
        MatrixAxis::ControlDomain,
    ] {
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

/// The ordered writes from the host as it is to the configuration:
/// unassignments first (they free APQNs), then mask bits taken from the
/// host, then mask bits given to it (never refused once nothing assigned is
/// in them), then new mdevs, then assignments. Mdevs the configuration
/// does not name are left alone. Empty when the host already matches.
pub fn plan(wanted: &Wanted, seen: &Observed) -> Vec<Step> {
    let mut steps = Vec::new();
    for m in &wanted.mdevs {
        if let Some(now) = seen.mdevs.get(&m.uuid) {
            steps.extend(matrix_steps(
                &m.uuid,
                now,
                &m.matrix(),
                "unassign",
                "assign",
            ));
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
        steps.extend(matrix_steps(
            &m.uuid,
            &m.matrix(),
            &now,
            "assign",
            "unassign",
        ));
    }
    steps
}

// ---------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------

/// Why an apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the configuration has {} error(s); nothing was written:\n{}", .0.len(), .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    #[error("{0}")]
    Observe(#[from] ObserveError),
    #[error("step {step} `{command}` was refused: {failure}; the {done} step(s) before it were undone, the host is as it was")]
    RolledBack {
        step: usize,
        command: String,
        failure: WriteFailure,
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

#[cfg(test)]
mod tests;
