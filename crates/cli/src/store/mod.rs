//! The persistent emulated host, and who owns it when.
//!
//! A host lives in a state file (the snapshot) with a few files beside it
//! (see [`dir`]). At any moment exactly one process owns it:
//!
//! - **A server** (`apmatrix mount`, `apmatrix exec`) owns it for its whole
//!   life: it holds the exclusive lock on `STATE.lock` and answers on
//!   `STATE.sock`. Every CLI command that reads or changes the host then
//!   asks it ([`protocol`]), so the tree and the CLI see one host, changes
//!   from both doors are applied by one process in one order, and each is
//!   durable and visible in the tree before it is acknowledged ([`owner`]).
//!   A second server on the same state refuses, naming the first.
//! - **Otherwise a CLI command** owns it for its duration under the same
//!   exclusive lock: it reads the snapshot and journal, changes the host,
//!   and replaces the snapshot atomically (temporary file, fsync, rename,
//!   fsync of the directory) before it lets go.
//!
//! A command that must change two hosts together (`apmatrix migrate run`)
//! claims each ([`Store::claim`]): the lock held for the claim's life, or
//! the server's host and generation, so that its later swap is a compare and
//! swap on what it read.
//!
//! So no acknowledged change can be lost: there is never a second writer
//! with a stale copy. A `kill -9` at any moment leaves files that load to a
//! state including every change that was acknowledged ([`snapshot`]).

pub mod dir;
mod owner;
mod protocol;
mod scan_timer;
mod snapshot;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apmatrix_model::Host;
use rustix::fs::FileType;

pub use owner::{LiveHost, Serving};

use dir::{StateDir, Strictness};
use protocol::{Client, Offered};
use snapshot::Names;

/// The environment variable that names the state file.
pub const HOST_ENV: &str = "APMATRIX_HOST";

/// How long a command waits for the lock held by another command.
const LOCK_PATIENCE: Duration = Duration::from_secs(60);

/// Why the state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no emulated host at {0}: create one with `apmatrix host init` (or pick another with --host or ${HOST_ENV})")]
    Missing(PathBuf),
    #[error("{path} already holds an emulated host; use --force to replace it")]
    Exists { path: PathBuf },
    #[error("{path} is not an apmatrix host state ({reason}); it was left untouched")]
    Foreign { path: PathBuf, reason: String },
    #[error("refusing {path}: it {why}")]
    Untrusted { path: PathBuf, why: String },
    #[error(
        "{path} is already served by {serving} (pid {pid}); stop that one first, or use its tree"
    )]
    AlreadyServed {
        path: PathBuf,
        pid: u32,
        serving: String,
    },
    #[error("{lock} has been held by {holder} for {}s; is it stuck?", LOCK_PATIENCE.as_secs())]
    LockTimeout { lock: PathBuf, holder: String },
    #[error("the server at {socket}: {why}")]
    Server { socket: PathBuf, why: String },
    #[error("the server has stopped")]
    Stopped,
    #[error(
        "{0} changed since it was read (another change came first); nothing was written to it"
    )]
    Moved(PathBuf),
    #[error("no running guest {0:?}: start it first (apmatrix guest start {0} --mdev UUID)")]
    NoGuest(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How a server serves the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// The bus scans every `config_time` seconds while it serves, as the
    /// kernel does; without, only when asked (deterministic for tests).
    pub periodic_scans: bool,
    /// Every change is broadcast to udev monitors of the server's network
    /// namespace (only where that namespace is private to the emulator).
    pub udev_events: bool,
    /// The tree shows this running guest's own AP bus (what its kernel
    /// builds from its CRYCB) instead of the host's.
    pub guest: Option<String>,
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

/// A state file as the user named it.
pub struct Store {
    path: PathBuf,
}

/// A state file found: its trusted directory and the names in it.
pub struct Place {
    dir: StateDir,
    names: Names,
}

/// Who answers for the host during one command.
enum Session {
    /// No server: this command holds the lock.
    Local(File),
    /// No server, and this user may not lock (a state it may only read).
    Unlocked,
    Remote(Client),
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Need {
    Read,
    Write,
}

impl Store {
    pub fn new(path: PathBuf) -> Self {
        Store { path }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolves the path once (links followed only where trusted) and
    /// opens its directory.
    fn place(&self, make_dirs: bool) -> Result<Place, StoreError> {
        let (dir, name) = dir::resolve(&self.path, make_dirs)?;
        let dir = StateDir::open(&dir)?;
        let names = Names::new(name);
        // Before any file is made beside it: the state must be a file.
        if let Some(st) = dir.stat(&names.state)? {
            let kind = FileType::from_raw_mode(st.st_mode);
            if kind != FileType::RegularFile {
                dir.check(&names.state, &st, Strictness::Shared)?;
            }
        }
        Ok(Place { dir, names })
    }

    /// Reads the host, from the server that owns it if one runs.
    pub fn load(&self) -> Result<Host, StoreError> {
        let place = self.place(false)?;
        loop {
            match place.session(Need::Read)? {
                // The lock (if any) is held until the host is read.
                Session::Local(_) | Session::Unlocked => {
                    return Ok(snapshot::load(&place.dir, &place.names)?.host)
                }
                Session::Remote(mut server) => {
                    if let Some((_, host)) = server.get()? {
                        return Ok(host);
                    }
                }
            }
        }
    }

    /// Creates the state file; refuses to replace an existing one unless
    /// `force`.
    pub fn init(&self, host: &Host, force: bool) -> Result<(), StoreError> {
        let place = self.place(true)?;
        let exists = || StoreError::Exists {
            path: self.path.clone(),
        };
        loop {
            match place.session(Need::Write)? {
                Session::Local(_lock) => {
                    if !force && place.dir.stat(&place.names.state)?.is_some() {
                        return Err(exists());
                    }
                    return snapshot::save(&place.dir, &place.names, host).map(|_| ());
                }
                Session::Unlocked => unreachable!("writes need the lock"),
                Session::Remote(_) if !force => return Err(exists()),
                Session::Remote(mut server) => {
                    let Some((generation, _)) = server.get()? else {
                        continue;
                    };
                    if let Some(Offered::Done(_)) = server.put(generation, host)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Runs `change` on the host and keeps the result if it changed
    /// anything, whether `change` then succeeded or not (a command applying
    /// several writes keeps the ones the kernel accepted). With a server,
    /// `change` runs on the server's current host and runs again if the
    /// host moved before its result was taken.
    pub fn update<T, E>(
        &self,
        mut change: impl FnMut(&mut Host) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        let place = self.place(false)?;
        loop {
            match place.session(Need::Write)? {
                Session::Local(_lock) => {
                    let mut host = snapshot::load(&place.dir, &place.names)?.host;
                    let before = host.clone();
                    let outcome = change(&mut host);
                    if host != before {
                        snapshot::save(&place.dir, &place.names, &host)?;
                    }
                    return Ok(outcome);
                }
                Session::Unlocked => unreachable!("writes need the lock"),
                Session::Remote(mut server) => {
                    // None: the server stopped (nothing applied); start over.
                    while let Some((generation, mut host)) = server.get()? {
                        let before = host.clone();
                        let outcome = change(&mut host);
                        if host == before {
                            return Ok(outcome);
                        }
                        match server.put(generation, &host)? {
                            Some(Offered::Done(_)) => return Ok(outcome),
                            Some(Offered::Moved) => continue,
                            None => break,
                        }
                    }
                }
            }
        }
    }

    /// Reads the host for a change to be committed later with
    /// [`Claim::swap`], only if the host is still the one read (a compare
    /// and swap). Without a server the claim holds the lock until it is
    /// dropped, so no one else changes the host meanwhile; with one, the
    /// change is offered against the generation read, and the server
    /// refuses it if anything came first. For a command that must change
    /// two hosts together (`apmatrix migrate run`).
    pub fn claim(&self) -> Result<Claim, StoreError> {
        let place = self.place(false)?;
        let (hold, host) = hold(&place)?;
        Ok(Claim {
            path: self.path.clone(),
            place,
            hold,
            host,
        })
    }

    /// Starts owning the host for a server: refuses if another server owns
    /// it, waits for a command that holds it. `serving` says what this
    /// server is, for the message a second one gives.
    pub fn live(
        &self,
        serving: String,
        options: ServerOptions,
    ) -> Result<(LiveHost, Serving), StoreError> {
        let place = self.place(false)?;
        loop {
            match place.session(Need::Write)? {
                Session::Local(lock) => {
                    return owner::start(place, lock, serving, options);
                }
                Session::Unlocked => unreachable!("writes need the lock"),
                Session::Remote(mut server) => {
                    if let Some((pid, serving)) = server.who()? {
                        return Err(StoreError::AlreadyServed {
                            path: self.path.clone(),
                            pid,
                            serving,
                        });
                    }
                }
            }
        }
    }
}

/// A host read for a later compare and swap ([`Store::claim`]).
pub struct Claim {
    path: PathBuf,
    place: Place,
    hold: Hold,
    /// The host as read, or as last swapped in.
    host: Host,
}

/// How a claim keeps others from changing the host behind its back.
enum Hold {
    /// This process holds the lock (until the claim is dropped).
    Local { _lock: File },
    /// A server owns the host: changes go against this generation.
    Remote { server: Client, generation: u64 },
}

/// Takes the lock, or the server's current host and generation.
fn hold(place: &Place) -> Result<(Hold, Host), StoreError> {
    loop {
        match place.session(Need::Write)? {
            Session::Local(lock) => {
                let host = snapshot::load(&place.dir, &place.names)?.host;
                return Ok((Hold::Local { _lock: lock }, host));
            }
            Session::Unlocked => unreachable!("writes need the lock"),
            Session::Remote(mut server) => {
                if let Some((generation, host)) = server.get()? {
                    return Ok((Hold::Remote { server, generation }, host));
                }
            }
        }
    }
}

impl Claim {
    /// The state file as named.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host as read (or as last swapped in).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Replaces the host by `new` if it is still the one this claim holds;
    /// else [`StoreError::Moved`] and nothing is written. A server that
    /// stops meanwhile took nothing: the host is then compared with the one
    /// held wherever it is now (its file, or the next server).
    pub fn swap(&mut self, new: Host) -> Result<(), StoreError> {
        loop {
            let Hold::Remote { server, generation } = &mut self.hold else {
                // Ours since the claim: no one else can have changed it.
                snapshot::save(&self.place.dir, &self.place.names, &new)?;
                break;
            };
            match server.put(*generation, &new)? {
                Some(Offered::Done(now)) => {
                    *generation = now;
                    break;
                }
                // A change came first: it may have changed nothing.
                Some(Offered::Moved) => match server.get()? {
                    Some((now, host)) if host == self.host => *generation = now,
                    Some(_) => return Err(StoreError::Moved(self.path.clone())),
                    None => self.hold_again()?,
                },
                None => self.hold_again()?,
            }
        }
        self.host = new;
        Ok(())
    }

    /// The server went away: hold the host again, wherever it is, if it
    /// is still the one held.
    fn hold_again(&mut self) -> Result<(), StoreError> {
        let (hold, host) = hold(&self.place)?;
        if host != self.host {
            return Err(StoreError::Moved(self.path.clone()));
        }
        self.hold = hold;
        Ok(())
    }
}

impl Place {
    /// Takes the lock, or finds the server that holds it; waits while
    /// another command holds it (or a server is starting or stopping).
    fn session(&self, need: Need) -> Result<Session, StoreError> {
        let started = Instant::now();
        let mut told = false;
        loop {
            let lock = match self.dir.open_lock(&self.names.lock) {
                Ok(file) => Some(file),
                Err(StoreError::Io { source, .. })
                    if need == Need::Read && may_not_create(&source) =>
                {
                    None
                }
                Err(e) => return Err(e),
            };
            let may_lock = lock.is_some();
            if let Some(file) = lock {
                match file.try_lock() {
                    Ok(()) => {
                        note_holder(&file);
                        return Ok(Session::Local(file));
                    }
                    Err(std::fs::TryLockError::WouldBlock) => {}
                    Err(std::fs::TryLockError::Error(source)) => {
                        return Err(StoreError::Io {
                            path: self.dir.path().join(&self.names.lock),
                            source,
                        })
                    }
                }
            }
            if let Some(server) = Client::connect(&self.dir, &self.names)? {
                return Ok(Session::Remote(server));
            }
            if !may_lock {
                // Nobody serves it and we cannot lock it: read it as it is
                // (the snapshot is only ever replaced whole).
                return Ok(Session::Unlocked);
            }
            let waited = started.elapsed();
            if waited > Duration::from_secs(2) && !told {
                told = true;
                crate::style::say(format_args!(
                    "apmatrix: waiting for {} (held by {})",
                    self.dir.path().join(&self.names.lock).display(),
                    self.holder()
                ));
            }
            if waited > LOCK_PATIENCE {
                return Err(StoreError::LockTimeout {
                    lock: self.dir.path().join(&self.names.lock),
                    holder: self.holder(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Who holds the lock, as its holder wrote it there.
    fn holder(&self) -> String {
        let text = self
            .dir
            .read(&self.names.lock, 64, Strictness::Private)
            .ok()
            .flatten()
            .map(|(bytes, _)| String::from_utf8_lossy(&bytes).trim().to_string())
            .unwrap_or_default();
        match text.parse::<u32>() {
            Ok(pid) => format!("pid {pid}"),
            Err(_) => "another process".into(),
        }
    }
}

/// The lock says who holds it (for the messages of those who wait).
fn note_holder(mut file: &File) {
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
}

fn may_not_create(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}
