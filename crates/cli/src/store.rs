//! The persistent emulated host: one JSON state file.
//!
//! Every change is read-modify-write under an exclusive lock on a separate
//! lock file, and the new state replaces the old one atomically (temporary
//! file in the same directory, fsync, rename, fsync of the directory), so
//! concurrent invocations never lose an update and a `kill -9` at any moment
//! leaves either the old or the new state. A file that is not a valid host
//! state is refused, never overwritten silently.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use apmatrix_model::{Host, HostState};

/// The environment variable that names the state file.
pub const HOST_ENV: &str = "APMATRIX_HOST";

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no emulated host at {0}: create one with `apmatrix host init` (or pick another with --host or ${HOST_ENV})")]
    Missing(PathBuf),
    #[error("{path} already holds an emulated host; use --force to replace it")]
    Exists { path: PathBuf },
    #[error("{path} is not an apmatrix host state ({reason}); it was left untouched")]
    Foreign { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the state file is: `--host`, else `$APMATRIX_HOST`, else
/// `$XDG_STATE_HOME/apmatrix/host.json`, else `~/.local/state/apmatrix/host.json`.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os(HOST_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state_home.join("apmatrix").join("host.json")
}

/// A state file and its lock.
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: PathBuf) -> Self {
        Store { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Takes the exclusive lock; released when the returned file is dropped.
    fn lock(&self) -> Result<File, StoreError> {
        let lock_path = self.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        file.lock().map_err(io_err(&lock_path))?;
        Ok(file)
    }

    /// Reads the host. Reading needs no lock: the file is only ever replaced
    /// whole by rename.
    pub fn load(&self) -> Result<Host, StoreError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(self.path.clone()))
            }
            Err(e) => return Err(io_err(&self.path)(e)),
        };
        let foreign = |reason: String| StoreError::Foreign {
            path: self.path.clone(),
            reason,
        };
        let state: HostState = serde_json::from_str(&text).map_err(|e| foreign(e.to_string()))?;
        Host::from_state(state).map_err(|e| foreign(e.to_string()))
    }

    /// Creates the state file; refuses to replace an existing one unless
    /// `force`.
    pub fn init(&self, host: &Host, force: bool) -> Result<(), StoreError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let _lock = self.lock()?;
        if !force && self.path.exists() {
            return Err(StoreError::Exists {
                path: self.path.clone(),
            });
        }
        self.save(host)
    }

    /// Runs `change` on the host under the exclusive lock and saves the result
    /// if it changed anything, whether `change` then succeeded or not (a
    /// command applying several writes keeps the ones the kernel accepted).
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(&mut Host) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        let _lock = self.lock()?;
        let mut host = self.load()?;
        let before = host.clone();
        let outcome = change(&mut host);
        if host != before {
            self.save(&host)?;
        }
        Ok(outcome)
    }

    fn tmp_prefix(&self) -> std::ffi::OsString {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp.");
        name
    }

    /// Removes temporary files of writers that were killed before their
    /// rename. Callers hold the lock, so no writer is mid-write.
    fn sweep_temporaries(&self) {
        let prefix = self.tmp_prefix();
        let prefix = prefix.to_string_lossy();
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(prefix.as_ref())
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Writes a temporary file beside the state, syncs it, renames it over
    /// the state and syncs the directory. Callers hold the lock.
    fn save(&self, host: &Host) -> Result<(), StoreError> {
        self.sweep_temporaries();
        let mut text = serde_json::to_string_pretty(&host.to_state()).expect("state serialises");
        text.push('\n');
        let mut tmp_name = self.tmp_prefix();
        tmp_name.push(std::process::id().to_string());
        let tmp = self.path.with_file_name(tmp_name);
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&self.path)(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apmatrix_model::{Mask256, MaskKind};

    #[test]
    fn init_load_update_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("sub/host.json"));
        assert!(matches!(store.load(), Err(StoreError::Missing(_))));
        store.init(&Host::seed_example(), false).unwrap();
        assert!(matches!(
            store.init(&Host::seed_example(), false),
            Err(StoreError::Exists { .. })
        ));
        let r = store
            .update(|h| h.write_mask(MaskKind::Apmask, b"-5"))
            .unwrap();
        assert!(r.is_ok());
        assert!(!store.load().unwrap().apmask().contains(5));
        // a refused change is not saved (and does not change the file)
        let before = fs::read(store.path()).unwrap();
        let r = store
            .update(|h| h.write_mask(MaskKind::Apmask, b"bogus"))
            .unwrap();
        assert!(r.is_err());
        assert_eq!(fs::read(store.path()).unwrap(), before);
        store.init(&Host::seed_example(), true).unwrap();
        assert_eq!(store.load().unwrap().apmask(), Mask256::FULL);
    }

    #[test]
    fn foreign_files_are_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.json");
        for text in ["{\"hello\": 1}", "not json", "{\"format\": 9}"] {
            fs::write(&path, text).unwrap();
            let store = Store::new(path.clone());
            let err = store.load().unwrap_err().to_string();
            assert!(err.contains("is not an apmatrix host state"), "{err}");
            let err = store.update(|_| Ok::<(), ()>(())).unwrap_err();
            assert!(matches!(err, StoreError::Foreign { .. }));
            assert!(matches!(
                store.init(&Host::seed_example(), false),
                Err(StoreError::Exists { .. })
            ));
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
    }
}
