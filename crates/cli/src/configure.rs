//! `apmatrix check | plan | apply CONFIG [--sysfs DIR]`: a declarative
//! configuration on the emulated host (the state file) or on any sysfs root.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use apmatrix_admin::{
    check as check_config, export as ex, observe, plan as plan_steps, target_masks, Config,
    DirRoot, EmulatedRoot, Problem, Severity, Step, SysfsRoot, Wanted,
};

use apmatrix_model::KernelProfile;
use serde::Serialize;

use crate::output::erased::Json as _;
use crate::store::Store;
use crate::CliError;

fn wanted(path: &Path) -> Result<Wanted, CliError> {
    let text = read_text(path)?;
    Config::from_toml(&text)
        .and_then(|c| c.resolve())
        .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))
}

/// A file the user named: regular, bounded, UTF-8.
pub fn read_text(path: &Path) -> Result<String, CliError> {
    apmatrix_admin::files::read_text(path, apmatrix_admin::files::TEXT_LIMIT)
        .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))
}

fn observe_err(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

/// What each configured guest will see once its mdev is in place and the
/// guest starts (the host as sysfs shows it, rebuilt in the model), in
/// file order; none when the configuration does not apply.
fn predicted_views(seen: &apmatrix_admin::Observed, w: &Wanted) -> Vec<PredictedView> {
    apmatrix_admin::predict::guest_views(seen, w)
        .unwrap_or_default()
        .into_iter()
        .map(|(guest, lszcrypt)| PredictedView { guest, lszcrypt })
        .collect()
}

/// The predicted views as the text forms of check and plan end with them.
fn views_text(views: &[PredictedView]) -> String {
    let mut out = String::new();
    for v in views {
        let _ = writeln!(out, "\n# {} will see:", v.guest);
        out.push_str(&v.lszcrypt);
    }
    out
}

/// One guest's predicted `lszcrypt` (check and plan, `--json`).
#[derive(Serialize)]
struct PredictedView {
    guest: String,
    lszcrypt: String,
}

/// `check --json`: docs/json/check.schema.json.
#[derive(Serialize)]
struct CheckReport {
    config: String,
    accepted: bool,
    mdevs: usize,
    errors: usize,
    warnings: usize,
    problems: Vec<ProblemJson>,
    predicted_views: Vec<PredictedView>,
}

#[derive(Serialize)]
struct ProblemJson {
    severity: &'static str,
    message: String,
    fix: String,
}

impl From<&Problem> for ProblemJson {
    fn from(p: &Problem) -> ProblemJson {
        ProblemJson {
            severity: match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            message: p.message.clone(),
            fix: p.fix.clone(),
        }
    }
}

/// `plan --json`: docs/json/plan.schema.json.
#[derive(Serialize)]
struct PlanReport {
    config: String,
    root: String,
    steps: Vec<StepJson>,
    predicted_views: Vec<PredictedView>,
}

#[derive(Serialize)]
struct StepJson {
    path: String,
    full_path: String,
    value: String,
    undo: Option<WriteJson>,
}

/// A write that undoes a step.
#[derive(Serialize)]
struct WriteJson {
    path: String,
    full_path: String,
    value: String,
}

/// A path under the root as the text plan shows it (as `Step::shell`).
fn full_path(root: &str, path: &str) -> String {
    format!("{root}/{path}")
}

impl StepJson {
    fn new(root: &str, s: &Step) -> StepJson {
        StepJson {
            path: s.path.clone(),
            full_path: full_path(root, &s.path),
            value: s.value.clone(),
            undo: s.undo.as_ref().map(|(path, value)| WriteJson {
                path: path.clone(),
                full_path: full_path(root, path),
                value: value.clone(),
            }),
        }
    }
}

pub fn check(
    store: Store,
    config: &Path,
    sysfs: Option<&Path>,
    kernel: Option<&'static KernelProfile>,
    etc: Option<&Path>,
    json: bool,
) -> Result<String, CliError> {
    let w = wanted(config)?;
    let seen = match sysfs {
        Some(dir) => observe(&DirRoot::new(dir).following(kernel)),
        None => observe(&EmulatedRoot {
            host: store.load()?,
        }),
    }
    .map_err(observe_err)?;
    let mut problems = check_config(&w, &seen);
    let real_sys =
        sysfs.and_then(|d| fs::canonicalize(d).ok()).as_deref() == Some(Path::new("/sys"));
    if let Some(etc) = etc.or(real_sys.then_some(Path::new("/etc"))) {
        problems.extend(apmatrix_admin::persistent::check_persistent(
            &w,
            etc,
            (seen.apmask, seen.aqmask),
        ));
        problems.sort_by_key(|p| p.severity);
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    let views = if errors == 0 {
        predicted_views(&seen, &w)
    } else {
        Vec::new()
    };
    let failure = (errors > 0).then(|| {
        format!(
            "{errors} error(s), {warnings} warning(s) in {}",
            config.display()
        )
    });
    if json {
        let report = CheckReport {
            config: config.display().to_string(),
            accepted: errors == 0,
            mdevs: w.mdevs.len(),
            errors,
            warnings,
            problems: problems.iter().map(ProblemJson::from).collect(),
            predicted_views: views,
        };
        // The report goes to stdout even when the check fails.
        return match failure {
            Some(message) => Err(CliError::Printed {
                done: report.to_json(),
                message,
            }),
            None => Ok(report.to_json()),
        };
    }
    let mut out = String::new();
    for p in &problems {
        let _ = writeln!(out, "{p}");
    }
    if let Some(message) = failure {
        return Err(CliError::Failed(format!("{out}{message}")));
    }
    let _ = writeln!(
        out,
        "{}: {} mdev(s), no errors, {} warning(s)",
        config.display(),
        w.mdevs.len(),
        warnings
    );
    out.push_str(&views_text(&views));
    Ok(out)
}

pub fn plan(
    store: Store,
    config: &Path,
    sysfs: Option<&Path>,
    kernel: Option<&'static KernelProfile>,
    json: bool,
) -> Result<String, CliError> {
    let w = wanted(config)?;
    let root: Box<dyn SysfsRoot> = match sysfs {
        Some(dir) => Box::new(DirRoot::new(dir).following(kernel)),
        None => Box::new(EmulatedRoot {
            host: store.load()?,
        }),
    };
    let seen = observe(root.as_ref()).map_err(observe_err)?;
    let errors: Vec<String> = check_config(&w, &seen)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(CliError::Failed(format!(
            "{}\nno plan: fix these first (`apmatrix check`)",
            errors.join("\n")
        )));
    }
    let place = root.describe();
    let steps = plan_steps(&w, &seen);
    let views = predicted_views(&seen, &w);
    if json {
        return Ok(PlanReport {
            config: config.display().to_string(),
            steps: steps.iter().map(|s| StepJson::new(&place, s)).collect(),
            root: place,
            predicted_views: views,
        }
        .to_json());
    }
    let mut out = String::new();
    if steps.is_empty() {
        out.push_str("# the host already matches the configuration\n");
    }
    for s in &steps {
        let _ = writeln!(out, "{}", s.shell(&place));
    }
    out.push_str(&views_text(&views));
    Ok(out)
}

pub fn apply(
    store: Store,
    config: &Path,
    sysfs: Option<&Path>,
    kernel: Option<&'static KernelProfile>,
    dry_run: bool,
) -> Result<String, CliError> {
    let w = wanted(config)?;
    let outcome = match sysfs {
        Some(dir) => {
            let _lock = ApConfigLock::take(dir)?;
            apmatrix_admin::apply(&mut DirRoot::new(dir).following(kernel), &w, dry_run)
        }
        None => store.update(|host| {
            let mut root = EmulatedRoot { host: host.clone() };
            let r = apmatrix_admin::apply(&mut root, &w, dry_run);
            *host = root.host;
            r
        })?,
    };
    let applied = outcome.map_err(|e| CliError::Failed(e.to_string()))?;
    let place = sysfs.map_or("/sys".to_string(), |d| d.display().to_string());
    let mut out = String::new();
    let verb = if dry_run { "would write" } else { "wrote" };
    if applied.steps.is_empty() {
        out.push_str("nothing to do: the host already matches the configuration\n");
    }
    for s in &applied.steps {
        let _ = writeln!(out, "{verb}: {}", s.shell(&place));
    }
    Ok(out)
}

/// s390-tools' lock (`/run/lock/s390apconfig.lock`, tools.md Part A §3):
/// ap-check and chzdev hold it while they change AP configuration. Taken
/// only for a real /sys, where those tools may run at the same time.
pub struct ApConfigLock {
    path: Option<std::path::PathBuf>,
}

impl ApConfigLock {
    const PATH: &'static str = "/run/lock/s390apconfig.lock";

    fn take(sysfs: &Path) -> Result<ApConfigLock, CliError> {
        if fs::canonicalize(sysfs).ok().as_deref() != Some(Path::new("/sys")) {
            return Ok(ApConfigLock { path: None });
        }
        let path = std::path::PathBuf::from(Self::PATH);
        for _ in 0..100 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(ApConfigLock { path: Some(path) });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // A holder that died leaves its PID behind.
                    let pid: Option<i32> = apmatrix_admin::files::read_text(&path, 64)
                        .ok()
                        .and_then(|t| t.trim().parse().ok());
                    if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(30));
                }
                Err(e) => {
                    return Err(CliError::Failed(format!("{}: {e}", path.display())));
                }
            }
        }
        Err(CliError::Failed(format!(
            "{} is held by another AP configuration tool (ap-check, chzdev); try again",
            Self::PATH
        )))
    }
}

impl Drop for ApConfigLock {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = fs::remove_file(p);
        }
    }
}

/// What `apmatrix export` writes.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    /// what `mdevctl list -d --dumpjson` prints once the mdevs are defined; with --dir, mdevctl's stored file per mdev
    Mdevctl,
    /// libvirt node-device XML (virsh nodedev-define), one per mdev; with --dir, DIR/<name>.xml each
    Nodedev,
    /// the domain's <hostdev> element, one per mdev
    Hostdev,
    /// QEMU arguments, one line per mdev
    Qemu,
    /// the masks as kernel parameters (ap.apmask= ap.aqmask=)
    Cmdline,
    /// the masks as chzdev --type ap -p writes them (/etc/udev/rules.d/41-ap.rules)
    Udev,
}

pub fn export(
    store: Store,
    format: ExportFormat,
    config: &Path,
    dir: Option<&Path>,
) -> Result<String, CliError> {
    let w = wanted(config)?;
    let mut out = String::new();
    if let (ExportFormat::Mdevctl, None) = (format, dir) {
        return Ok(ex::mdevctl_list_json(&w.mdevs));
    }
    let per_mdev: Option<fn(&apmatrix_admin::WantedMdev) -> String> = match format {
        ExportFormat::Mdevctl => Some(ex::mdevctl_json),
        ExportFormat::Nodedev => Some(ex::libvirt_nodedev_xml),
        ExportFormat::Hostdev => Some(ex::libvirt_hostdev_xml),
        ExportFormat::Qemu => Some(ex::qemu_args),
        ExportFormat::Cmdline | ExportFormat::Udev => None,
    };
    if let Some(render) = per_mdev {
        for m in &w.mdevs {
            let text = render(m);
            match (dir, format) {
                (Some(d), ExportFormat::Mdevctl) => {
                    let path = d.join(m.uuid.to_string());
                    write_export(d, &path, &text)?;
                    let _ = writeln!(out, "wrote {}", path.display());
                }
                (Some(d), ExportFormat::Nodedev) => {
                    let path = d.join(format!("{}.xml", ex::libvirt_nodedev_name(m)));
                    write_export(d, &path, &text)?;
                    let _ = writeln!(out, "wrote {}", path.display());
                }
                (Some(_), _) => {
                    return Err(CliError::Usage(
                        "--dir is for the mdevctl and nodedev formats".into(),
                    ))
                }
                (None, _) => {
                    if w.mdevs.len() > 1 && !matches!(format, ExportFormat::Qemu) {
                        let _ = writeln!(out, "# mdev {}", m.label);
                    }
                    out.push_str(&text);
                }
            }
        }
        return Ok(out);
    }
    // The masks the configuration gives, on this host.
    let host = store.load()?;
    let seen = observe(&EmulatedRoot { host }).map_err(observe_err)?;
    let (apmask, aqmask) = target_masks(&w, &seen);
    Ok(match format {
        ExportFormat::Cmdline => ex::kernel_parameters(apmask, aqmask),
        _ => ex::udev_rule(apmask, aqmask),
    })
}

/// One file of `export --dir DIR`.
fn write_export(dir: &Path, path: &Path, text: &str) -> Result<(), CliError> {
    fs::create_dir_all(dir).map_err(|e| CliError::Failed(format!("{}: {e}", dir.display())))?;
    write_file(path, text)
}

/// Writes a whole file the user named: into a new file beside it, then
/// renamed over it, so a reader (or a kill) never sees half of it.
pub fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let failed = |p: &Path, e: std::io::Error| CliError::Failed(format!("{}: {e}", p.display()));
    let name = path
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("{}: not a file name", path.display())))?;
    let temp = path.with_file_name(format!(
        ".{}.{}.apmatrix-tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(failed(path, e));
    }
    Ok(())
}

pub fn import(dir: &Path) -> Result<String, CliError> {
    let entries =
        fs::read_dir(dir).map_err(|e| CliError::Failed(format!("{}: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = format!("# imported from {}\n", dir.display());
    for name in names {
        let Ok(uuid) = uuid::Uuid::try_parse(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let text = read_text(&path)?;
        let m = ex::from_mdevctl_json(uuid, &text).map_err(|e| CliError::Failed(e.to_string()))?;
        let _ = write!(
            out,
            "\n[[mdev]]\nuuid = \"{uuid}\"\nadapters = \"{}\"\ndomains = \"{}\"\ncontrol_domains = \"{}\"\nautostart = {}\n",
            apmatrix_admin::id_list(&m.adapters),
            apmatrix_admin::id_list(&m.domains),
            apmatrix_admin::id_list(&m.control_domains),
            m.autostart
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steps_full_paths_are_where_its_shell_command_writes() {
        let step = Step {
            path: "bus/ap/apmask".into(),
            value: "0x00".into(),
            undo: Some(("bus/ap/aqmask".into(), "0xff".into())),
        };
        let json = StepJson::new("/mnt/ap", &step);
        assert_eq!(json.full_path, "/mnt/ap/bus/ap/apmask");
        assert_eq!(
            step.shell("/mnt/ap"),
            format!("echo {} > {}", json.value, json.full_path)
        );
        let undo = json.undo.expect("undone");
        assert_eq!(
            (
                undo.path.as_str(),
                undo.full_path.as_str(),
                undo.value.as_str()
            ),
            ("bus/ap/aqmask", "/mnt/ap/bus/ap/aqmask", "0xff")
        );
        let none = Step { undo: None, ..step };
        let text = serde_json::to_string(&StepJson::new("/sys", &none)).unwrap();
        assert!(text.ends_with(r#","undo":null}"#), "{text}");
    }
}
