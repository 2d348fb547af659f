//! The persistent emulated host: a JSON snapshot and a journal of the
//! operations applied since.
//!
//! Every change is made under an exclusive lock on a separate lock file.
//! A CLI command rewrites the snapshot atomically (temporary file in the
//! same directory, fsync, rename, fsync of the directory) and drops the
//! journal. The sysfs server ([`LiveHost`]) appends each accepted write to
//! the journal as one line, which costs microseconds where a snapshot costs
//! a millisecond, and folds the journal into a new snapshot now and then.
//!
//! Each snapshot carries a fresh random token (`saved_as`) and the
//! journal's first line names the snapshot it continues, so a journal left
//! over from before a newer snapshot is ignored, and a last line without its newline (a writer killed mid-line)
//! is not part of the state. Hence concurrent invocations never lose an
//! update and a `kill -9` at any moment leaves a state that includes every
//! change whose command (or write(2)) returned. Journal lines are not
//! fsynced: they survive the death of any process, not a power cut (the
//! snapshots are synced). A file that is not a valid host state is refused,
//! never overwritten silently.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use apmatrix_model::{Host, HostState, Op, Written};
use apmatrix_sysfs::AccessError;

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

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    fn lock_path(&self) -> PathBuf {
        self.sibling(".lock")
    }

    /// The journal of operations applied since the snapshot.
    pub fn journal_path(&self) -> PathBuf {
        self.sibling(".journal")
    }

    /// Takes the exclusive lock; released when the returned file is dropped.
    fn lock(&self) -> Result<File, StoreError> {
        let file = self.open_lock_file()?;
        file.lock().map_err(io_err(&self.lock_path()))?;
        Ok(file)
    }

    /// The lock file, created if need be, not locked.
    fn open_lock_file(&self) -> Result<File, StoreError> {
        let lock_path = self.lock_path();
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))
    }

    /// The directory holding the state files.
    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        }
    }

    /// Reads the host: the snapshot and its journal. Reading needs no lock:
    /// the snapshot is only ever replaced whole by rename, a stale journal
    /// is recognised by its header, and an unfinished last line is skipped.
    pub fn load(&self) -> Result<Host, StoreError> {
        Ok(self.load_full()?.host)
    }

    fn load_full(&self) -> Result<Loaded, StoreError> {
        let (bytes, snapshot_id) = match read_with_id(&self.path) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(self.path.clone()))
            }
            Err(e) => return Err(io_err(&self.path)(e)),
        };
        let foreign = |reason: String| StoreError::Foreign {
            path: self.path.clone(),
            reason,
        };
        let state: HostState =
            serde_json::from_slice(&bytes).map_err(|e| foreign(e.to_string()))?;
        let snapshot_tag = state.saved_as.clone();
        let mut host = Host::from_state(state).map_err(|e| foreign(e.to_string()))?;
        let journal_path = self.journal_path();
        let mut journal = None;
        // A snapshot without a token (written by hand or by an older
        // apmatrix) has no journal.
        let read = match &snapshot_tag {
            Some(_) => read_with_id(&journal_path),
            None => Err(io::ErrorKind::NotFound.into()),
        };
        match read {
            Ok((bytes, id)) => {
                let mut lines = bytes.split_inclusive(|b| *b == b'\n');
                let header = journal_header(snapshot_tag.as_deref().unwrap_or_default());
                if lines.next() == Some(header.as_bytes()) {
                    let mut consumed = header.len();
                    for (n, line) in lines.enumerate() {
                        if !line.ends_with(b"\n") {
                            break; // a writer died mid-line: not part of the state
                        }
                        let damaged = |reason: String| StoreError::Foreign {
                            path: journal_path.clone(),
                            reason: format!("line {}: {reason}", n + 2),
                        };
                        let op: Op =
                            serde_json::from_slice(line).map_err(|e| damaged(e.to_string()))?;
                        host.apply(&op)
                            .map_err(|e| damaged(format!("replaying it failed: {e}")))?;
                        consumed += line.len();
                    }
                    journal = Some(JournalPos {
                        id,
                        consumed: consumed as u64,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&journal_path)(e)),
        }
        Ok(Loaded {
            host,
            snapshot_id,
            snapshot_tag,
            journal,
        })
    }

    /// Creates the state file; refuses to replace an existing one unless
    /// `force`.
    pub fn init(&self, host: &Host, force: bool) -> Result<(), StoreError> {
        fs::create_dir_all(self.dir()).map_err(io_err(self.dir()))?;
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

    /// Opens the host for a long-running server that applies writes one at
    /// a time and sees what other commands change meanwhile.
    pub fn live(self) -> Result<LiveHost, StoreError> {
        let lock = self.open_lock_file()?;
        // Watch first, then load: no change can fall between the two.
        let watch = DirWatch::new(self.dir());
        let loaded = self.load_full()?;
        Ok(LiveHost {
            store: self,
            lock,
            loaded,
            journal_file: None,
            generation: 0,
            reload_next: false,
            watch,
        })
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
        let Ok(entries) = fs::read_dir(self.dir()) else {
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
    /// the state and syncs the directory; then drops the journal, which the
    /// new snapshot includes. Callers hold the lock.
    fn save(&self, host: &Host) -> Result<(), StoreError> {
        self.save_snapshot(host)?;
        match fs::remove_file(self.journal_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&self.journal_path())(e)),
            _ => Ok(()),
        }
    }

    fn save_snapshot(&self, host: &Host) -> Result<(), StoreError> {
        self.sweep_temporaries();
        let mut state = host.to_state();
        state.saved_as = Some(uuid::Uuid::new_v4().simple().to_string());
        let mut text = serde_json::to_string_pretty(&state).expect("state serialises");
        text.push('\n');
        let mut tmp_name = self.tmp_prefix();
        tmp_name.push(std::process::id().to_string());
        let tmp = self.path.with_file_name(tmp_name);
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            File::open(self.dir())?.sync_all()?;
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&self.path)(e)
        })
    }
}

/// Which file a path held when it was read: a rename makes a new one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
}

fn read_with_id(path: &Path) -> io::Result<(Vec<u8>, FileId)> {
    let mut f = File::open(path)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let m = f.metadata()?;
    Ok((
        bytes,
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
        },
    ))
}

fn stat_id(path: &Path) -> io::Result<Option<FileId>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn journal_header(snapshot_tag: &str) -> String {
    format!("{{\"apmatrix_journal\":1,\"continues\":\"{snapshot_tag}\"}}\n")
}

#[derive(Copy, Clone, Debug)]
struct JournalPos {
    id: FileId,
    /// Bytes of whole lines applied.
    consumed: u64,
}

struct Loaded {
    host: Host,
    snapshot_id: FileId,
    /// The snapshot's `saved_as` token.
    snapshot_tag: Option<String>,
    /// None: no journal continues this snapshot yet.
    journal: Option<JournalPos>,
}

/// Fold the journal into a new snapshot once it is this long.
const COMPACT_AT: u64 = 1 << 20;

/// The host of a long-running server ([`Store::live`]): each read sees the
/// changes other commands made, each write is journaled before it returns.
pub struct LiveHost {
    store: Store,
    lock: File,
    loaded: Loaded,
    /// The journal kept open between appends, and which file it is.
    journal_file: Option<(File, FileId)>,
    /// Counts the changes of `loaded.host` (see [`apmatrix_fuse::Backend`]).
    generation: u64,
    /// `loaded.host` may hold a change that did not become durable.
    reload_next: bool,
    /// Says whether anything in the state's directory changed since the
    /// last look, so that most requests need no stat at all.
    watch: Option<DirWatch>,
}

/// An inotify watch on the directory of the state files. The kernel queues
/// an event before the changing write(2) or rename(2) returns, so a change
/// made before a request arrives is always seen by that request.
struct DirWatch {
    fd: std::os::fd::OwnedFd,
}

impl DirWatch {
    /// `None` where inotify is not available: then every look stats.
    fn new(dir: &Path) -> Option<DirWatch> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let dir = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mask = libc::IN_MODIFY
            | libc::IN_CREATE
            | libc::IN_DELETE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_ATTRIB;
        let rc = unsafe { libc::inotify_add_watch(raw, dir.as_ptr(), mask) };
        (rc >= 0).then_some(DirWatch { fd })
    }

    /// Whether events arrived since the last call (all are consumed).
    fn changed(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 4096];
        let mut any = false;
        loop {
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                // EAGAIN: drained. Any other error: look to be safe.
                return any
                    || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock);
            }
            any = true;
        }
    }
}

impl LiveHost {
    /// Picks up what others changed: a new snapshot (a CLI command) means a
    /// full reload; journal lines beyond ours (another server) are replayed.
    fn refresh(&mut self) -> Result<(), StoreError> {
        if self.reload_next {
            self.loaded = self.store.load_full()?;
            self.generation += 1;
            self.reload_next = false;
            return Ok(());
        }
        if self.watch.as_ref().is_some_and(|w| !w.changed()) {
            return Ok(());
        }
        let snapshot = stat_id(&self.store.path).map_err(io_err(&self.store.path))?;
        let journal_path = self.store.journal_path();
        let journal = stat_id(&journal_path).map_err(io_err(&journal_path))?;
        let ours = self.loaded.journal;
        let current = snapshot == Some(self.loaded.snapshot_id)
            && match (journal, ours) {
                (None, None) => true,
                (Some(j), Some(o)) => {
                    j == o.id || (j.ino == o.id.ino && j.dev == o.id.dev && j.len == o.consumed)
                }
                // a journal we did not write yet may be a stale one or another server's
                _ => false,
            };
        if !current {
            self.loaded = self.store.load_full()?;
            self.generation += 1;
        }
        Ok(())
    }

    #[cfg(test)]
    fn host(&mut self) -> Result<&Host, StoreError> {
        self.refresh()?;
        Ok(&self.loaded.host)
    }

    /// One write(2) to the attribute at a sysfs path (see
    /// [`apmatrix_sysfs::write_path`]): brought up to date, applied, and
    /// journaled under the lock if it changed anything.
    ///
    /// The write is first tried on the up-to-date host without the lock: a
    /// refusal, or a write that changes nothing, is then already the answer
    /// (as of that moment) and needs no lock. A change is made durable under
    /// the lock; if another process changed the state in between, the host
    /// is reloaded (dropping the tried change) and the write runs again.
    pub fn write_path(
        &mut self,
        path: &str,
        data: &[u8],
    ) -> Result<Result<Written, AccessError>, StoreError> {
        self.refresh()?;
        let generation = self.generation;
        match apmatrix_sysfs::write_path(&mut self.loaded.host, path, data) {
            Err(refusal) => Ok(Err(refusal)),
            Ok(written) if written.op.is_none() => Ok(Ok(written)),
            Ok(tried) => {
                let lock_path = self.store.lock_path();
                self.lock.lock().map_err(io_err(&lock_path))?;
                let outcome = match self.refresh() {
                    // Nobody else changed anything: the tried change stands.
                    Ok(()) if self.generation == generation => self.make_durable(tried),
                    Ok(()) => {
                        self.write_locked(|host| apmatrix_sysfs::write_path(host, path, data))
                    }
                    Err(e) => {
                        // The tried change is not durable: never serve it.
                        self.reload_next = true;
                        Err(e)
                    }
                };
                let _ = self.lock.unlock();
                outcome
            }
        }
    }

    /// Under the lock: brings the host up to date, writes, journals.
    fn write_locked<E>(
        &mut self,
        write: impl FnOnce(&mut Host) -> Result<Written, E>,
    ) -> Result<Result<Written, E>, StoreError> {
        self.refresh()?;
        match write(&mut self.loaded.host) {
            Ok(w) => self.make_durable(w),
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// Under the lock, after `written` was applied to the loaded host:
    /// journals it (folding the journal into a snapshot when it is long).
    fn make_durable<E>(&mut self, written: Written) -> Result<Result<Written, E>, StoreError> {
        if let Some(op) = &written.op {
            self.generation += 1;
            if let Err(e) = self.append(op) {
                // Not durable: take the change back.
                self.reload_next = true;
                return Err(e);
            }
        }
        if self
            .loaded
            .journal
            .is_some_and(|j| j.consumed >= COMPACT_AT)
        {
            self.store.save_snapshot(&self.loaded.host)?;
            let _ = fs::remove_file(self.store.journal_path());
            self.loaded = self.store.load_full()?;
        }
        // Callers hold the lock and looked at the watch just before, so the
        // events queued since are this server's own: nothing to look at.
        if written.op.is_some() {
            if let Some(w) = &self.watch {
                w.changed();
            }
        }
        Ok(Ok(written))
    }

    fn append(&mut self, op: &Op) -> Result<(), StoreError> {
        let path = self.store.journal_path();
        let mut line = serde_json::to_vec(op).expect("operations serialise");
        line.push(b'\n');
        let io = |e| io_err(&path)(e);
        let pos = match self.loaded.journal {
            Some(pos) => {
                let same = |id: &FileId| id.dev == pos.id.dev && id.ino == pos.id.ino;
                if !self.journal_file.as_ref().is_some_and(|(_, id)| same(id)) {
                    let f = OpenOptions::new().write(true).open(&path).map_err(io)?;
                    self.journal_file = Some((f, pos.id));
                }
                let (f, _) = self.journal_file.as_ref().expect("just opened");
                // Cut an unfinished line left by a writer that died.
                if pos.id.len != pos.consumed {
                    f.set_len(pos.consumed).map_err(io)?;
                }
                // One write(2) at the end of the whole lines.
                f.write_all_at(&line, pos.consumed).map_err(io)?;
                let consumed = pos.consumed + line.len() as u64;
                JournalPos {
                    id: FileId {
                        len: consumed,
                        ..pos.id
                    },
                    consumed,
                }
            }
            None => {
                let Some(tag) = self.loaded.snapshot_tag.clone() else {
                    // No token to continue: a snapshot with one holds it all.
                    self.store.save(&self.loaded.host)?;
                    self.loaded = self.store.load_full()?;
                    return Ok(());
                };
                // A fresh journal for this snapshot, put in place whole.
                let mut text = journal_header(&tag).into_bytes();
                text.extend_from_slice(&line);
                let mut tmp_name = self.store.tmp_prefix();
                tmp_name.push(format!("{}.journal", std::process::id()));
                let tmp = self.store.path.with_file_name(tmp_name);
                let write = || -> io::Result<(File, FileId)> {
                    let mut f = File::create(&tmp)?;
                    f.write_all(&text)?;
                    fs::rename(&tmp, &path)?;
                    let m = f.metadata()?;
                    let id = FileId {
                        dev: m.dev(),
                        ino: m.ino(),
                        len: m.len(),
                    };
                    Ok((f, id))
                };
                let (file, id) = write().map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    io_err(&path)(e)
                })?;
                self.journal_file = Some((file, id));
                JournalPos {
                    id,
                    consumed: text.len() as u64,
                }
            }
        };
        self.loaded.journal = Some(pos);
        Ok(())
    }
}

impl apmatrix_fuse::Backend for LiveHost {
    fn host(&mut self) -> io::Result<(&Host, u64)> {
        self.refresh().map_err(store_io)?;
        Ok((&self.loaded.host, self.generation))
    }

    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<Result<Written, AccessError>> {
        self.write_path(path, data).map_err(store_io)
    }
}

/// A store failure inside a file system call: logged, and EIO to the caller.
fn store_io(e: StoreError) -> io::Error {
    eprintln!("apmatrix: {e}");
    match e {
        StoreError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
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

    /// A temporary state file holding the seed host.
    fn seed_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("host.json"));
        store.init(&Host::seed_example(), false).unwrap();
        (dir, store)
    }

    impl Store {
        /// Another handle on the same file, as another process has it.
        fn reopen(&self) -> Store {
            Store::new(self.path.clone())
        }
    }

    const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
    const U: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";

    #[test]
    fn live_writes_are_journaled_and_seen_by_the_cli() {
        let (_dir, store) = seed_store();
        let mut live = store.reopen().live().unwrap();
        let apmask = "bus/ap/apmask";
        live.write_path(apmask, b"-5,-6\n").unwrap().unwrap();
        let create = CREATE;
        live.write_path(create, U.as_bytes()).unwrap().unwrap();
        let journal = fs::read_to_string(store.journal_path()).unwrap();
        assert_eq!(journal.lines().count(), 3, "{journal}");
        // a refused write is not journaled
        let err = live.write_path(create, U.as_bytes()).unwrap().unwrap_err();
        assert_eq!(err.errno(), apmatrix_model::Errno::EEXIST);
        assert_eq!(fs::read_to_string(store.journal_path()).unwrap(), journal);
        // the CLI loads snapshot + journal
        let loaded = store.load().unwrap();
        assert_eq!(&loaded, live.host().unwrap());
        // a CLI change folds everything into a new snapshot; the server sees it
        store
            .update(|h| h.write_mask(MaskKind::Apmask, b"-4"))
            .unwrap()
            .unwrap();
        assert!(!store.journal_path().exists());
        assert!(!live.host().unwrap().apmask().contains(4));
        assert!(live.host().unwrap().mdev(&U.parse().unwrap()).is_some());
        // and the server's next write starts a journal for that snapshot
        live.write_path(apmask, b"+4").unwrap().unwrap();
        assert_eq!(store.load().unwrap(), *live.host().unwrap());
    }

    #[test]
    fn unfinished_and_stale_journals_are_not_state() {
        let (_dir, store) = seed_store();
        let mut live = store.reopen().live().unwrap();
        let apmask = "bus/ap/apmask";
        live.write_path(apmask, b"-5").unwrap().unwrap();
        // a writer killed mid-line: the partial line is not part of the state
        let mut f = OpenOptions::new()
            .append(true)
            .open(store.journal_path())
            .unwrap();
        f.write_all(b"{\"op\":\"set_mask\",\"mask\":\"apm").unwrap();
        drop(f);
        let host = store.load().unwrap();
        assert!(!host.apmask().contains(5));
        assert!(host.apmask().contains(6));
        // the next write cuts it off and goes on
        let mut live = store.reopen().live().unwrap();
        live.write_path(apmask, b"-6").unwrap().unwrap();
        let journal = fs::read_to_string(store.journal_path()).unwrap();
        assert!(
            journal.ends_with("}\n") && !journal.contains("\"apm{"),
            "{journal}"
        );
        assert!(!store.load().unwrap().apmask().contains(6));
        // a journal left beside a newer snapshot (writer killed between the
        // snapshot's rename and the journal's removal) is ignored
        let old_journal = fs::read(store.journal_path()).unwrap();
        store
            .update(|h| h.write_mask(MaskKind::Apmask, b"+5,+6"))
            .unwrap()
            .unwrap();
        fs::write(store.journal_path(), &old_journal).unwrap();
        let host = store.load().unwrap();
        assert!(host.apmask().contains(5) && host.apmask().contains(6));
        // a damaged complete line is refused, not skipped
        let mut lines: Vec<&str> = std::str::from_utf8(&old_journal).unwrap().lines().collect();
        lines[1] = "{\"op\":\"no_such_op\"}";
        let mut live = store.reopen().live().unwrap();
        live.write_path(apmask, b"-7").unwrap().unwrap();
        let header = fs::read_to_string(store.journal_path()).unwrap();
        let header = header.lines().next().unwrap();
        fs::write(store.journal_path(), format!("{header}\n{}\n", lines[1])).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_long_journal_is_folded_into_a_snapshot() {
        let (_dir, store) = seed_store();
        let mut live = store.reopen().live().unwrap();
        live.write_path("bus/ap/apmask", b"-5").unwrap().unwrap();
        live.write_path(CREATE, U.as_bytes()).unwrap().unwrap();
        let mdev = format!("devices/vfio_ap/matrix/{U}");
        let snapshot_before = fs::read(store.path()).unwrap();
        let mut compacted = false;
        for i in 0..20_000 {
            let attr = if i % 2 == 0 {
                "assign_domain"
            } else {
                "unassign_domain"
            };
            live.write_path(&format!("{mdev}/{attr}"), b"4")
                .unwrap()
                .unwrap();
            if fs::read(store.path()).unwrap() != snapshot_before {
                compacted = true;
                break;
            }
        }
        assert!(compacted, "the journal never reached the compaction size");
        let journal_len = fs::metadata(store.journal_path()).map_or(0, |m| m.len());
        assert!(journal_len < 1000, "{journal_len}");
        assert_eq!(&store.load().unwrap(), live.host().unwrap());
        // and it goes on journaling against the new snapshot
        live.write_path(&format!("{mdev}/assign_domain"), b"0xab")
            .unwrap()
            .unwrap();
        assert_eq!(&store.load().unwrap(), live.host().unwrap());
    }

    #[test]
    fn two_servers_on_one_state_see_each_other() {
        let (_dir, store) = seed_store();
        let mut a = store.reopen().live().unwrap();
        let mut b = store.reopen().live().unwrap();
        a.write_path("bus/ap/apmask", b"-5").unwrap().unwrap();
        // b has not looked since a's write: its write must apply on top of it
        b.write_path("bus/ap/apmask", b"-6").unwrap().unwrap();
        let both = store.load().unwrap();
        assert!(!both.apmask().contains(5) && !both.apmask().contains(6));
        assert_eq!(a.host().unwrap(), &both);
        // refusals and no-op writes see the other's changes too
        b.write_path(CREATE, U.as_bytes()).unwrap().unwrap();
        let err = a.write_path(CREATE, U.as_bytes()).unwrap().unwrap_err();
        assert_eq!(err.errno(), apmatrix_model::Errno::EEXIST);
        assert_eq!(a.host().unwrap(), &store.load().unwrap());
    }
}
