//! `apmatrix place DEMANDS`: the guests' demands placed on the host's free
//! APQNs, printed as a configuration for `check` and `apply`.

use std::path::Path;

use apmatrix_admin::place::{place, DemandsFile, PlacedJson, Strategy, UnmetJson};
use apmatrix_admin::{observe, DirRoot, EmulatedRoot};
use apmatrix_model::KernelProfile;
use serde::Serialize;

use crate::output::erased::Json as _;
use crate::store::Store;
use crate::CliError;

/// `--strategy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StrategyArg {
    /// Most constrained guests first, best-fit domains, least-loaded adapters, and a bounded search for more
    Balanced,
    /// The naive baseline: guests in file order, the first adapters and domains that fit, no search
    FirstFit,
}

#[derive(Serialize)]
struct PlaceJson {
    demands: String,
    met: usize,
    total: usize,
    search_nodes: u64,
    placed: Vec<PlacedJson>,
    unmet: Vec<UnmetJson>,
    config: String,
}

pub(crate) fn run(
    store: &Store,
    demands_file: &Path,
    sysfs: Option<&Path>,
    kernel: Option<&'static KernelProfile>,
    strategy: StrategyArg,
    json: bool,
) -> Result<String, CliError> {
    let text = crate::configure::read_text(demands_file)?;
    let demands = DemandsFile::from_toml(&text)
        .and_then(|f| f.resolve())
        .map_err(|e| CliError::Failed(format!("{}: {e}", demands_file.display())))?;
    let seen = match sysfs {
        Some(dir) => observe(&DirRoot::new(dir).following(kernel)),
        None => observe(&EmulatedRoot {
            host: store.load()?,
        }),
    }
    .map_err(|e| CliError::Failed(e.to_string()))?;
    let strategy = match strategy {
        StrategyArg::Balanced => Strategy::Balanced,
        StrategyArg::FirstFit => Strategy::FirstFit,
    };
    let p = place(&seen, demands, strategy);
    let (met, total) = (p.met(), p.demands.len());
    let done = if json {
        PlaceJson {
            demands: demands_file.display().to_string(),
            met,
            total,
            search_nodes: p.nodes,
            placed: p.placed_json(),
            unmet: p.unmet_json(),
            config: p.config_toml(),
        }
        .to_json()
    } else {
        p.config_toml()
    };
    if met == total {
        return Ok(done);
    }
    let mut message = format!(
        "{} of {total} guests not placed (the configuration has the other {met}):",
        total - met
    );
    for u in p.unmet_json() {
        message.push_str(&format!("\n  {}", u.reason));
    }
    Err(CliError::Printed { done, message })
}
