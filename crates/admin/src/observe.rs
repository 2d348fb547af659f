//! What the host is now, read through a sysfs root.

use std::collections::BTreeMap;

use apmatrix_model::parse::parse_absolute_mask;
use apmatrix_model::profile::{NEW, OLD};
use apmatrix_model::{Apqn, KernelProfile, Mask256, MatrixAxis, SEED};
use uuid::Uuid;

use crate::root::{self, SysfsRoot};
use crate::MATRIX;

/// An mdev's matrix as sysfs shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matrix {
    pub adapters: Mask256,
    pub domains: Mask256,
    pub control_domains: Mask256,
}

impl Matrix {
    /// Its ids on one axis.
    pub fn axis(&self, axis: MatrixAxis) -> Mask256 {
        match axis {
            MatrixAxis::Adapter => self.adapters,
            MatrixAxis::Domain => self.domains,
            MatrixAxis::ControlDomain => self.control_domains,
        }
    }

    /// Its APQNs: adapters x domains.
    pub fn apqns(&self) -> impl Iterator<Item = Apqn> + '_ {
        apmatrix_model::vfio::cross(&self.adapters, &self.domains)
    }
}

/// A card as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenCard {
    pub hwtype: u8,
    pub type_name: String,
    /// `online` as the card shows it: 0 also while deconfigured or
    /// check-stopped (kernel.md §4).
    pub online: bool,
    /// `config`: in the LPAR's configuration (true where a kernel lacks it).
    pub config: bool,
    /// `chkstop` (false where a kernel lacks it).
    pub chkstop: bool,
    /// `depth`, the queue depth TAPQ reports.
    pub depth: u8,
    /// `ap_functions`: the card keeps only the upper half of the bits.
    pub functions: Option<u32>,
}

/// The host as read through a sysfs root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The kernel generation whose rules apply.
    pub profile: &'static KernelProfile,
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
        let attr = |a: &str| {
            root.read(&format!("devices/ap/{name}/{a}"))
                .map(|t| t.trim().to_string())
                .ok()
        };
        let flag = |a: &str, missing: bool| attr(a).map_or(missing, |v| v == "1");
        cards.insert(
            id,
            SeenCard {
                hwtype,
                type_name: attr("type").unwrap_or_default(),
                online: flag("online", true),
                config: flag("config", true),
                chkstop: flag("chkstop", false),
                depth: attr("depth").and_then(|d| d.parse().ok()).unwrap_or(8),
                functions: attr("ap_functions").and_then(|f| {
                    u32::from_str_radix(f.trim_start_matches("0x").trim_start_matches("0X"), 16)
                        .ok()
                }),
            },
        );
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
        profile: generation_of(root),
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

/// The kernel generation behind a tree: the root's own word if it has one
/// (an emulator in this process), else what the attributes show (kernel.md
/// §1, §5, §6): `features` only on NEW, no `scans` on OLD. DYN and the seed
/// series show the same attributes, and every verdict of `check` is the
/// same under both, so such a tree is taken as the seed's.
fn generation_of(root: &dyn SysfsRoot) -> &'static KernelProfile {
    if let Some(profile) = root.kernel_profile() {
        return profile;
    }
    let has = |path: &str| root.read(path).is_ok();
    if has("devices/vfio_ap/matrix/features") || has("bus/ap/features") {
        &NEW
    } else if !has("bus/ap/scans") {
        &OLD
    } else {
        &SEED
    }
}
