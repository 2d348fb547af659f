//! The server's side: while `apmatrix mount` or `exec` runs, it owns the
//! host. It holds the exclusive lock for its whole life, keeps the host in
//! memory, and applies every change itself: write(2)s through the tree (one
//! journal line each) and CLI commands' changes over `STATE.sock` (a new
//! snapshot each), one at a time under one mutex. A change is durable and
//! visible in the tree before it is acknowledged, whichever door it came
//! through, so no acknowledged change can be lost or overwritten by a stale
//! copy: there is no other copy.

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use apmatrix_fuse::{Invalidator, WriteOutcome};
use apmatrix_model::{Host, Op, Written};
use apmatrix_sysfs::{AccessError, TreeChange};
use rustix::fs::FileType;

use super::protocol::{self, Reply, Request};
use super::scan_timer::{ScanClock, TICK};
use super::snapshot::{self, Journal, COMPACT_AT};
use super::{Place, ServerOptions, StoreError};
use crate::udev::Broadcaster;

/// The host as the server holds it.
struct Owned {
    place: Place,
    /// The exclusive lock; `None` once the server has stopped.
    lock: Option<std::fs::File>,
    host: Host,
    /// The host as the tree last showed it: each change is compared with
    /// it, then applied to it too, so that no change copies the host (a
    /// copy of a 256 x 256 host costs a hundred times an operation).
    shown: Host,
    /// Counts the host's changes: FUSE keeps what it looked up until it
    /// moves, and a CLI change applies only on the generation it read.
    generation: u64,
    tag: Option<String>,
    journal: Option<Journal>,
    /// Announces each change to the udev monitors of `exec`'s private
    /// network namespace; `None` elsewhere.
    udev: Option<Broadcaster>,
    /// The running guest whose own AP bus the tree shows, if not the host's.
    guest: Option<String>,
    /// What the tree shows of a served guest that is not running.
    no_guest: Host,
    /// Makes the kernel forget what each change altered in the tree.
    invalidator: Invalidator,
}

type Shared = Arc<Mutex<Owned>>;

/// The AP bus a tree shows: `host`'s, or the served `guest`'s own (where
/// the owner's fields are borrowed apart, `Owned::viewed` cannot serve).
fn view<'a>(host: &'a Host, guest: &Option<String>, no_guest: &'a Host) -> &'a Host {
    match guest {
        None => host,
        Some(name) => host.guest_bus(name).unwrap_or(no_guest),
    }
}

/// The host from its files, and the journal that continues it, opened for
/// the server's appends. The caller owns the state.
fn load_to_append(place: &Place) -> Result<(snapshot::Loaded, Option<Journal>), StoreError> {
    let loaded = snapshot::load(&place.dir, &place.names)?;
    let journal = match loaded.journal {
        Some(end) => Journal::reopen(&place.dir, &place.names, end)?,
        None => None,
    };
    Ok((loaded, journal))
}

fn lock(shared: &Shared) -> io::Result<MutexGuard<'_, Owned>> {
    // A panic while changing the host may have left it half changed:
    // serve nothing more rather than something untrue.
    shared
        .lock()
        .map_err(|_| io::Error::other("the server failed earlier; restart it"))
}

impl Owned {
    fn stopped(&self) -> bool {
        self.lock.is_none()
    }

    /// The AP bus the tree shows: the host's, or the served guest's.
    fn viewed(&self) -> &Host {
        view(&self.host, &self.guest, &self.no_guest)
    }

    /// A write through the served guest's tree: parsed on its bus as its
    /// kernel would, then applied to the host as that guest's operation.
    fn write_guest_path(
        &mut self,
        guest: &str,
        path: &str,
        data: &[u8],
    ) -> Result<Written, AccessError> {
        let mut bus = self.viewed().clone();
        let written = apmatrix_sysfs::write_path(&mut bus, path, data)?;
        let Some(change) = written.op else {
            return Ok(written);
        };
        let op = Op::InGuest {
            guest: guest.to_string(),
            change: Box::new(change),
        };
        let effects = self.host.apply(&op).map_err(AccessError::Refused)?;
        Ok(Written {
            op: Some(op),
            effects,
        })
    }

    /// Takes the files' word for the host again (after a failed append).
    fn reload(&mut self) -> Result<(), StoreError> {
        let (loaded, journal) = load_to_append(&self.place)?;
        self.journal = journal;
        self.host = loaded.host;
        self.shown = self.host.clone();
        self.tag = loaded.tag;
        self.generation += 1;
        Ok(())
    }

    /// What the tree shows changed since it last showed anything, as
    /// `shown` has it (the host's bus, or the served guest's), of what the
    /// kernel may have cached.
    fn shown_changes(&self) -> Vec<TreeChange> {
        let before = view(&self.shown, &self.guest, &self.no_guest);
        self.invalidator.changes(before, self.viewed())
    }

    /// Tells udev's monitors what changed since the tree last showed
    /// anything (a durable change: one taken back is never announced),
    /// then brings `shown` up to the host: by applying `op` to it as well,
    /// or, for a whole new host (no `op`), by a copy.
    fn show(&mut self, op: Option<&Op>) {
        if let Some(udev) = &mut self.udev {
            let before = view(&self.shown, &self.guest, &self.no_guest);
            udev.changed(before, view(&self.host, &self.guest, &self.no_guest));
        }
        // The model is deterministic: the same operation on the same
        // state gives the same state. Should it ever not, take a copy.
        match op.map(|op| (op, self.shown.apply(op))) {
            Some((_, Ok(_))) => {}
            Some((op, Err(_))) => {
                debug_assert!(false, "{op:?} applied to the host but not to its twin");
                self.shown = self.host.clone();
            }
            None => self.shown = self.host.clone(),
        }
        debug_assert!(self.shown.to_state() == self.host.to_state());
    }

    /// One write(2) through the tree: applied, journaled, then answered
    /// (with what it changed in the tree, for the kernel to forget first).
    fn write_path(&mut self, path: &str, data: &[u8]) -> Result<WriteOutcome, StoreError> {
        if self.stopped() {
            return Err(StoreError::Stopped);
        }
        let result = match self.guest.clone() {
            None => apmatrix_sysfs::write_path(&mut self.host, path, data),
            Some(guest) => self.write_guest_path(&guest, path, data),
        };
        match result {
            Ok(written) if written.op.is_some() => {
                self.commit(&written)?;
                let changes = self.shown_changes();
                self.show(written.op.as_ref());
                Ok((Ok(written), changes))
            }
            Ok(written) => {
                // A write to a device's `uevent` changes nothing but is
                // announced (the only accepted write without an op).
                let viewed = view(&self.host, &self.guest, &self.no_guest);
                if let (Some(udev), Some(apmatrix_sysfs::Node::File(f))) =
                    (&mut self.udev, apmatrix_sysfs::lookup(viewed, path))
                {
                    if let Some(device) = f.uevent_device() {
                        udev.synthetic(viewed, &device, data);
                    }
                }
                Ok((Ok(written), Vec::new()))
            }
            other => Ok((other, Vec::new())),
        }
    }

    /// A change of the server's own (the periodic bus scan): applied and
    /// journaled like a write through the tree.
    fn apply(&mut self, op: &Op) -> Result<(), StoreError> {
        if self.stopped() {
            return Err(StoreError::Stopped);
        }
        let Ok(effects) = self.host.apply(op) else {
            return Ok(());
        };
        self.commit(&Written {
            op: Some(op.clone()),
            effects,
        })?;
        // No one waits for a scan: the kernel forgets as soon as it can.
        self.invalidator.forget_soon(&self.shown_changes());
        self.show(Some(op));
        Ok(())
    }

    /// A change just applied to the host: counted, then made durable, or
    /// taken back if it cannot be.
    fn commit(&mut self, written: &Written) -> Result<(), StoreError> {
        self.generation += 1;
        if let Err(e) = self.make_durable(written) {
            self.reload()?;
            return Err(e);
        }
        Ok(())
    }

    fn make_durable(&mut self, written: &Written) -> Result<(), StoreError> {
        let Some(op) = &written.op else {
            return Ok(());
        };
        let (dir, names) = (&self.place.dir, &self.place.names);
        match (&mut self.journal, &self.tag) {
            (Some(journal), _) => journal.append(dir, names, op)?,
            (None, Some(tag)) => self.journal = Some(Journal::create(dir, names, tag, op)?),
            // No token to continue: a snapshot with one holds it all.
            (None, None) => {
                self.tag = Some(snapshot::save(dir, names, &self.host)?);
                return Ok(());
            }
        }
        if self.journal.as_ref().is_some_and(|j| j.len() >= COMPACT_AT) {
            self.tag = Some(snapshot::save(dir, names, &self.host)?);
            self.journal = None;
        }
        Ok(())
    }

    /// A command's request, answered; with what its change altered in the
    /// tree, which the kernel must forget before the answer is sent.
    fn answer(&mut self, request: Request, serving: &str) -> (Reply, Vec<TreeChange>) {
        if self.stopped() {
            return (Reply::Stopped, Vec::new());
        }
        if let Request::Put { base, state } = request {
            return self.put(base, *state);
        }
        let reply = match request {
            Request::Get => Reply::State {
                generation: self.generation,
                state: Box::new(self.host.to_state()),
            },
            Request::Who => Reply::Server {
                pid: std::process::id(),
                serving: serving.to_string(),
            },
            Request::Put { .. } => unreachable!("answered above"),
        };
        (reply, Vec::new())
    }

    /// A command's new host, offered against the generation it read.
    fn put(&mut self, base: u64, state: apmatrix_model::HostState) -> (Reply, Vec<TreeChange>) {
        if base != self.generation {
            return (Reply::Moved, Vec::new());
        }
        let host = match Host::from_state(state) {
            Ok(host) => host,
            Err(e) => {
                let reason = format!("the new host state is not valid: {e}");
                return (Reply::Refused { reason }, Vec::new());
            }
        };
        match snapshot::save(&self.place.dir, &self.place.names, &host) {
            Ok(tag) => {
                self.host = host;
                let changes = self.shown_changes();
                self.show(None);
                self.tag = Some(tag);
                self.journal = None;
                self.generation += 1;
                let generation = self.generation;
                (Reply::Done { generation }, changes)
            }
            Err(e) => (
                Reply::Refused {
                    reason: format!("saving it failed: {e}"),
                },
                Vec::new(),
            ),
        }
    }
}

/// The host a server serves: what the FUSE file system is given.
pub struct LiveHost {
    shared: Shared,
}

/// The host, borrowed for one FUSE request.
pub struct HostGuard<'a>(MutexGuard<'a, Owned>);

impl Deref for HostGuard<'_> {
    type Target = Host;
    fn deref(&self) -> &Host {
        self.0.viewed()
    }
}

impl apmatrix_fuse::Backend for LiveHost {
    type Host<'a> = HostGuard<'a>;

    fn host(&mut self) -> io::Result<(HostGuard<'_>, u64)> {
        let owned = lock(&self.shared)?;
        if owned.stopped() {
            return Err(store_io(StoreError::Stopped));
        }
        let generation = owned.generation;
        Ok((HostGuard(owned), generation))
    }

    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<WriteOutcome> {
        lock(&self.shared)?.write_path(path, data).map_err(store_io)
    }

    fn writer(&self) -> Option<Box<dyn apmatrix_fuse::Writer>> {
        Some(Box::new(LiveHost {
            shared: Arc::clone(&self.shared),
        }))
    }
}

impl LiveHost {
    /// What the FUSE server must be given to keep the kernel's caches
    /// true to this host ([`apmatrix_fuse::spawn_invalidated`]).
    pub fn invalidator(&self) -> Invalidator {
        lock(&self.shared).map_or_else(|_| Invalidator::new(), |o| o.invalidator.clone())
    }
}

impl apmatrix_fuse::Writer for LiveHost {
    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<WriteOutcome> {
        apmatrix_fuse::Backend::write(self, path, data)
    }
}

#[cfg(test)]
impl LiveHost {
    pub fn write_path(
        &mut self,
        path: &str,
        data: &[u8],
    ) -> Result<Result<Written, AccessError>, StoreError> {
        lock(&self.shared)
            .unwrap()
            .write_path(path, data)
            .map(|(written, _)| written)
    }

    pub fn host(&self) -> Host {
        lock(&self.shared).unwrap().host.clone()
    }
}

/// A store failure inside a file system call: logged, and EIO to the caller.
fn store_io(e: StoreError) -> io::Error {
    crate::style::say(format_args!("apmatrix: {e}"));
    match e {
        StoreError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// The server's door for CLI commands; closing it (on drop) stops the
/// server: the socket goes, then the lock.
pub struct Serving {
    shared: Shared,
    listener: UnixListener,
    accepting: Option<JoinHandle<()>>,
}

/// Starts owning the host: `lock` is the held exclusive lock.
pub fn start(
    place: Place,
    lock_file: std::fs::File,
    serving: String,
    options: ServerOptions,
) -> Result<(LiveHost, Serving), StoreError> {
    let (loaded, journal) = load_to_append(&place)?;
    // We hold the lock, so a socket there is a dead server's (if ours).
    if let Some(st) = place.dir.stat(&place.names.socket)? {
        if FileType::from_raw_mode(st.st_mode) != FileType::Socket || !place.dir.ours(&st) {
            return Err(StoreError::Untrusted {
                path: place.dir.path().join(&place.names.socket),
                why: format!(
                    "is in the way of the server's socket and is not a dead server's \
                     (owner uid {}); remove it if you did not make it",
                    st.st_uid
                ),
            });
        }
        place.dir.remove(&place.names.socket)?;
    }
    let socket_path = place.dir.path().join(&place.names.socket);
    let socket_io = |source| StoreError::Io {
        path: socket_path.clone(),
        source,
    };
    let listener =
        UnixListener::bind(place.dir.socket_path(&place.names.socket)).map_err(socket_io)?;
    place.dir.make_private(&place.names.socket)?;
    let mut owned = Owned {
        place,
        lock: Some(lock_file),
        generation: 0,
        no_guest: Host::stopped_guest_bus(loaded.host.profile()),
        shown: loaded.host.clone(),
        host: loaded.host,
        tag: loaded.tag,
        journal,
        udev: None,
        guest: None,
        invalidator: Invalidator::new(),
    };
    if let Some(name) = &options.guest {
        if owned.host.guest(name).is_none() {
            return Err(StoreError::NoGuest(name.clone()));
        }
        owned.guest = Some(name.clone());
    }
    if options.udev_events {
        owned.udev = Some(Broadcaster::new().map_err(|e| StoreError::Io {
            path: "udev monitor socket (netlink)".into(),
            source: e,
        })?);
    }
    let shared = Arc::new(Mutex::new(owned));
    let accepting = {
        let listener = listener.try_clone().map_err(socket_io)?;
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("apmatrix-socket".into())
            .spawn(move || accept_loop(listener, shared, serving))
            .map_err(socket_io)?
    };
    if options.periodic_scans {
        let shared = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("apmatrix-scans".into())
            .spawn(move || scan_periodically(shared))
            .map_err(socket_io)?;
    }
    Ok((
        LiveHost {
            shared: shared.clone(),
        },
        Serving {
            shared,
            listener,
            accepting: Some(accepting),
        },
    ))
}

fn accept_loop(listener: UnixListener, shared: Shared, serving: String) {
    let serving: Arc<str> = serving.into();
    for stream in listener.incoming() {
        let stopped = lock(&shared).map_or(true, |o| o.stopped());
        match stream {
            _ if stopped => return,
            Ok(stream) => {
                let (shared, serving) = (shared.clone(), serving.clone());
                let _ = std::thread::Builder::new()
                    .name("apmatrix-client".into())
                    .spawn(move || serve_client(stream, &shared, &serving));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(_) => return,
        }
    }
}

/// The bus's periodic scan, until the server stops or is gone.
fn scan_periodically(shared: Weak<Mutex<Owned>>) {
    let mut clock: Option<ScanClock> = None;
    let mut guest_clocks: HashMap<String, ScanClock> = HashMap::new();
    loop {
        std::thread::sleep(TICK);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Ok(mut owned) = lock(&shared) else {
            return;
        };
        if owned.stopped() {
            return;
        }
        let now = std::time::Instant::now();
        let clock = clock.get_or_insert_with(|| ScanClock::new(&owned.host, now));
        if clock.due(&owned.host, now) {
            if let Err(e) = owned.apply(&Op::Rescan) {
                crate::style::say(format_args!("apmatrix: the periodic bus scan failed: {e}"));
            }
        }
        // Each running guest's kernel scans its own bus on its own clock.
        let running: Vec<String> = owned.host.guests().map(|g| g.name.clone()).collect();
        guest_clocks.retain(|name, _| running.contains(name));
        for name in running {
            let Some(bus) = owned.host.guest_bus(&name) else {
                continue;
            };
            let clock = guest_clocks
                .entry(name.clone())
                .or_insert_with(|| ScanClock::new(bus, now));
            if clock.due(bus, now) {
                let scan = Op::InGuest {
                    guest: name.clone(),
                    change: Box::new(Op::Rescan),
                };
                if let Err(e) = owned.apply(&scan) {
                    crate::style::say(format_args!(
                        "apmatrix: guest {name}'s periodic bus scan failed: {e}"
                    ));
                }
            }
        }
    }
}

/// Answers one command's requests until it hangs up.
fn serve_client(mut stream: UnixStream, shared: &Shared, serving: &str) {
    let euid = rustix::process::geteuid().as_raw();
    let allowed = protocol::peer_uid(&stream).is_ok_and(|uid| uid == 0 || uid == euid);
    let _ = stream.set_read_timeout(Some(protocol::PATIENCE));
    let _ = stream.set_write_timeout(Some(protocol::PATIENCE));
    let Ok(reading) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reading);
    while let Ok(Some(request)) = protocol::read_message::<Request>(&mut reader) {
        let reply = if !allowed {
            Reply::Refused {
                reason: "only root and the host's owner may use this host".into(),
            }
        } else {
            let answered = lock(shared).map(|mut owned| {
                let (reply, changes) = owned.answer(request, serving);
                (reply, changes, owned.invalidator.clone())
            });
            match answered {
                // The command learns of its change only once no process
                // can read the old state from the kernel's caches.
                Ok((reply, changes, invalidator)) => {
                    invalidator.forget(&changes);
                    reply
                }
                Err(e) => Reply::Refused {
                    reason: e.to_string(),
                },
            }
        };
        if protocol::write_message(&mut stream, &reply).is_err() || !allowed {
            return;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // No new commands: the name goes before the lock, so that they
        // wait for the lock rather than find a dead server.
        if let Ok(mut owned) = lock(&self.shared) {
            let _ = owned.place.dir.remove(&owned.place.names.socket);
            owned.lock = None;
        }
        // Wake the accept loop and let it see that we stopped.
        // SAFETY: shutdown(2) on a descriptor this listener owns and keeps
        // open until it is dropped; it only wakes a blocked accept(2).
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(thread) = self.accepting.take() {
            let _ = thread.join();
        }
    }
}
