//! apmatrix-admin: say what the host should look like, and get there safely.
//!
//! A [`Config`] (TOML) names the host's pools and the mdevs wanted. Against
//! any [`SysfsRoot`] (a real /sys, a mounted emulator, an emulator in this
//! process) the host is [`observe`]d, the configuration is [`check`]ed (every
//! problem at once, in APQN terms, with a fix), a [`plan`] of ordered sysfs
//! writes is made so that no step is refused, and [`apply`] runs it, reads
//! the result back, and on any refusal undoes what it did.
//!
//! The kernel's rules are the model's (`apmatrix_model`): check and the
//! predictions ask a model of the observed host, under its profile.

pub mod boot;
mod check;
mod config;
pub mod definitions;
pub mod export;
pub mod files;
pub mod migrate;
mod observe;
pub mod persistent;
pub mod place;
mod plan;
pub mod predict;
pub mod root;
pub mod running;
pub mod status;

pub use check::{check, target_masks, Problem, Severity};
pub use config::{
    id_list, toml_string, Config, ConfigError, Derive, MasksConfig, MdevConfig, Wanted,
    WantedMasks, WantedMdev, NAME_NAMESPACE,
};
pub use observe::{observe, parse_matrix, Matrix, ObserveError, Observed, SeenCard};
pub(crate) use plan::id_value;
pub use plan::{apply, plan, Applied, ApplyError, Step};
pub use root::{DirRoot, EmulatedRoot, SysfsRoot, WriteFailure};

const MATRIX: &str = "devices/vfio_ap/matrix";

#[cfg(test)]
mod export_tests;
#[cfg(test)]
mod status_tests;
#[cfg(test)]
mod tests;
