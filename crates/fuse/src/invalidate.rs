//! Telling the kernel what to forget, before a change is acknowledged.
//!
//! Every door that changes the host (a write(2) through the tree, a CLI
//! command through the owner's socket, the periodic scan) hands the
//! change's [`TreeChange`]s to the [`Invalidator`]. Inode notices take no
//! lock in the kernel and are sent at once. Entry notices take the
//! directory's lock, which a LOOKUP or READDIR in flight holds until the
//! server answers it, so they go to a thread of their own and the request
//! thread keeps answering meanwhile; the write(2) or the CLI command is
//! answered only once the kernel has taken them.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use apmatrix_model::Host;
use apmatrix_sysfs::TreeChange;
use fuser::{Notifier, ReplyWrite};

use crate::inodes::{inline_safe, Inodes, Notice};

/// Who is waiting for a change to be forgotten.
pub(crate) enum Done {
    /// A write(2): answered with its length.
    Written(ReplyWrite, u32),
    /// A thread (a CLI command's), woken.
    Wake(mpsc::SyncSender<()>),
    /// No one (a periodic scan).
    Nobody,
}

impl Done {
    fn finish(self) {
        match self {
            Done::Written(reply, len) => reply.written(len),
            Done::Wake(waiter) => {
                let _ = waiter.send(());
            }
            Done::Nobody => {}
        }
    }
}

struct Job {
    notices: Vec<Notice>,
    done: Done,
}

struct Shared {
    inodes: Mutex<Inodes>,
    notifier: OnceLock<Notifier>,
    jobs: Sender<Job>,
    queue: Mutex<Option<Receiver<Job>>>,
}

/// The kernel's caches of one mounted tree, and how to make them forget.
/// Cheap to clone; every clone speaks for the same mount.
#[derive(Clone)]
pub struct Invalidator {
    shared: Arc<Shared>,
}

impl Default for Invalidator {
    fn default() -> Self {
        Self::new()
    }
}

fn send(notifier: &Notifier, notice: &Notice) {
    // ENOENT: the kernel has already forgotten it. Any other error (the
    // mount going away) leaves nothing to keep true.
    let _ = match notice {
        Notice::Inode(ino) => notifier.inval_inode(*ino, -1, 0),
        Notice::Entry { parent, name } => notifier.inval_entry(*parent, name.as_ref()),
    };
}

impl Invalidator {
    /// For a tree not mounted yet (see [`crate::spawn_invalidated`]).
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Invalidator {
            shared: Arc::new(Shared {
                inodes: Mutex::new(Inodes::new()),
                notifier: OnceLock::new(),
                jobs: tx,
                queue: Mutex::new(Some(rx)),
            }),
        }
    }

    pub(crate) fn inodes(&self) -> MutexGuard<'_, Inodes> {
        // The table stays consistent through a panic (each change is one
        // push or one assignment), so a poisoned lock is still usable.
        self.shared
            .inodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the notifier thread once the session exists.
    pub(crate) fn start(&self, notifier: Notifier) -> std::io::Result<()> {
        let Some(queue) = self.shared.queue.lock().ok().and_then(|mut q| q.take()) else {
            return Ok(());
        };
        let _ = self.shared.notifier.set(notifier.clone());
        std::thread::Builder::new()
            .name("apmatrix-invalidate".into())
            .spawn(move || {
                for job in queue {
                    for notice in &job.notices {
                        send(&notifier, notice);
                    }
                    job.done.finish();
                }
            })
            .map(|_| ())
    }

    /// Plans the notices of `changes` and gets them to the kernel; `done`
    /// is finished once it has them (at once when there are none).
    pub(crate) fn forget_then(&self, changes: &[TreeChange], done: Done) {
        let notices = self.inodes().plan(changes);
        match self.shared.notifier.get() {
            // Not mounted yet: the kernel has nothing to forget.
            None => done.finish(),
            Some(_) if notices.is_empty() => done.finish(),
            Some(notifier) if inline_safe(&notices) => {
                for notice in &notices {
                    send(notifier, notice);
                }
                done.finish();
            }
            Some(_) => {
                let job = Job { notices, done };
                if let Err(mpsc::SendError(job)) = self.shared.jobs.send(job) {
                    job.done.finish(); // the mount is gone: nothing to forget
                }
            }
        }
    }

    /// What the tree shows differently in `after` than in `before`, of
    /// what the kernel may have cached (the rest it was never given).
    pub fn changes(&self, before: &Host, after: &Host) -> Vec<TreeChange> {
        apmatrix_sysfs::tree_changes_known(before, after, &*self.inodes())
    }

    /// As [`Invalidator::forget`], for a change no one waits for; never
    /// blocks, so it may be called holding the host.
    pub fn forget_soon(&self, changes: &[TreeChange]) {
        self.forget_then(changes, Done::Nobody);
    }

    /// Makes the kernel forget `changes` (a change the caller made to the
    /// served host, by another door than the tree) and returns once it
    /// has. Call it without holding the host: the kernel may need the
    /// server to answer a request first.
    pub fn forget(&self, changes: &[TreeChange]) {
        if changes.is_empty() {
            return;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.forget_then(changes, Done::Wake(tx));
        let _ = rx.recv();
    }
}
