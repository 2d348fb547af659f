//! The two files that hold a host: the snapshot, a JSON `HostState`
//! replaced whole by rename, and the journal, one JSON operation a line,
//! appended by the server between snapshots.
//!
//! Each snapshot carries a fresh random token (`saved_as`) and the
//! journal's first line names the snapshot it continues, so a journal left
//! from before a newer snapshot (its writer killed between the snapshot's
//! rename and the journal's removal) is ignored, and a last line without
//! its newline (a writer killed mid-line) is not part of the state. Journal
//! lines are not fsynced: they survive the death of any process, not a power
//! cut; snapshots are synced.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use apmatrix_model::{Host, HostState, Op};

use super::dir::{StateDir, Strictness};
use super::StoreError;

/// The largest snapshot apmatrix reads (a full 256 x 256 host with its
/// mdevs is a few MiB).
const SNAPSHOT_LIMIT: u64 = 256 << 20;
/// The journal is folded into a snapshot once it is this long...
pub const COMPACT_AT: u64 = 1 << 20;
/// ...so a longer one was not written by apmatrix.
const JOURNAL_LIMIT: u64 = 64 << 20;

/// The names of a host's files in its directory.
#[derive(Clone, Debug)]
pub struct Names {
    pub state: OsString,
    pub journal: OsString,
    pub lock: OsString,
    pub socket: OsString,
    pub temp_prefix: OsString,
}

impl Names {
    pub fn new(state: OsString) -> Names {
        let with = |suffix: &str| {
            let mut n = state.clone();
            n.push(suffix);
            n
        };
        Names {
            journal: with(".journal"),
            lock: with(".lock"),
            socket: with(".sock"),
            temp_prefix: with(".tmp."),
            state,
        }
    }
}

/// A host read from its files.
pub struct Loaded {
    pub host: Host,
    /// The snapshot's `saved_as` token (none in hand-written files).
    pub tag: Option<String>,
    /// The journal continuing this snapshot, if there is one.
    pub journal: Option<JournalEnd>,
}

/// Where the whole lines of a journal end, and which file it was.
#[derive(Copy, Clone, Debug)]
pub struct JournalEnd {
    pub dev: u64,
    pub ino: u64,
    /// Bytes of whole lines applied.
    pub consumed: u64,
    /// The file's length when read (more than `consumed` after a torn line).
    pub len: u64,
}

fn header(tag: &str) -> String {
    format!("{{\"apmatrix_journal\":1,\"continues\":\"{tag}\"}}\n")
}

/// Reads the snapshot and replays its journal.
pub fn load(dir: &StateDir, names: &Names) -> Result<Loaded, StoreError> {
    let path = dir.path().join(&names.state);
    let Some((bytes, _)) = dir.read(&names.state, SNAPSHOT_LIMIT, Strictness::Shared)? else {
        return Err(StoreError::Missing(path));
    };
    let foreign = |reason: String| StoreError::Foreign {
        path: path.clone(),
        reason,
    };
    let state: HostState = serde_json::from_slice(&bytes).map_err(|e| foreign(e.to_string()))?;
    let tag = state.saved_as.clone();
    let mut host = Host::from_state(state).map_err(|e| foreign(e.to_string()))?;
    // A snapshot without a token (written by hand or by an older apmatrix)
    // has no journal.
    let Some(tag_text) = tag.as_deref() else {
        return Ok(Loaded {
            host,
            tag,
            journal: None,
        });
    };
    let journal_path = dir.path().join(&names.journal);
    let Some((bytes, st)) = dir.read(&names.journal, JOURNAL_LIMIT, Strictness::Private)? else {
        return Ok(Loaded {
            host,
            tag,
            journal: None,
        });
    };
    let mut lines = bytes.split_inclusive(|b| *b == b'\n');
    let header = header(tag_text);
    if lines.next() != Some(header.as_bytes()) {
        // Stale: it continues an older snapshot.
        return Ok(Loaded {
            host,
            tag,
            journal: None,
        });
    }
    let mut consumed = header.len();
    for (n, line) in lines.enumerate() {
        if !line.ends_with(b"\n") {
            break; // a writer died mid-line: not part of the state
        }
        let damaged = |reason: String| StoreError::Foreign {
            path: journal_path.clone(),
            reason: format!("line {}: {reason}", n + 2),
        };
        let op: Op = serde_json::from_slice(line).map_err(|e| damaged(e.to_string()))?;
        host.apply(&op)
            .map_err(|e| damaged(format!("replaying it failed: {e}")))?;
        consumed += line.len();
    }
    Ok(Loaded {
        host,
        tag,
        journal: Some(JournalEnd {
            dev: st.st_dev,
            ino: st.st_ino,
            consumed: consumed as u64,
            len: st.st_size as u64,
        }),
    })
}

/// Writes a new private file and renames it over `to`: whole or not at all.
fn put_in_place(
    dir: &StateDir,
    names: &Names,
    to: &OsString,
    bytes: &[u8],
    sync: bool,
) -> Result<File, StoreError> {
    let (mut file, tmp) = dir.create_temp(&names.temp_prefix)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
        .map_err(|source| StoreError::Io {
            path: dir.path().join(&tmp),
            source,
        })
        .and_then(|()| dir.rename(&tmp, to));
    if let Err(e) = written {
        let _ = dir.remove(&tmp);
        return Err(e);
    }
    Ok(file)
}

/// Replaces the snapshot (synced, with a fresh token) and drops the
/// journal, which it includes. Callers own the state. Returns the token.
pub fn save(dir: &StateDir, names: &Names, host: &Host) -> Result<String, StoreError> {
    dir.sweep(&names.temp_prefix);
    let mut state = host.to_state();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    state.saved_as = Some(tag.clone());
    let mut text = serde_json::to_string_pretty(&state).expect("state serialises");
    text.push('\n');
    put_in_place(dir, names, &names.state, text.as_bytes(), true)?;
    dir.sync()?;
    dir.remove(&names.journal)?;
    Ok(tag)
}

/// The journal a server appends to.
pub struct Journal {
    file: File,
    /// Bytes of whole lines.
    len: u64,
}

impl Journal {
    /// A new journal continuing snapshot `tag`, with its first operation,
    /// put in place whole.
    pub fn create(
        dir: &StateDir,
        names: &Names,
        tag: &str,
        first: &Op,
    ) -> Result<Journal, StoreError> {
        let mut text = header(tag).into_bytes();
        text.extend_from_slice(&line(first));
        let file = put_in_place(dir, names, &names.journal, &text, false)?;
        Ok(Journal {
            file,
            len: text.len() as u64,
        })
    }

    /// Goes on with the journal `load` found, cutting a torn last line.
    pub fn reopen(
        dir: &StateDir,
        names: &Names,
        end: JournalEnd,
    ) -> Result<Option<Journal>, StoreError> {
        let Some((file, st)) = dir.open_private(&names.journal)? else {
            return Ok(None);
        };
        if st.st_dev != end.dev || st.st_ino != end.ino {
            return Ok(None); // not the file we read: start a fresh one
        }
        if end.len != end.consumed {
            file.set_len(end.consumed)
                .map_err(|source| StoreError::Io {
                    path: dir.path().join(&names.journal),
                    source,
                })?;
        }
        Ok(Some(Journal {
            file,
            len: end.consumed,
        }))
    }

    /// Appends one operation with one write(2) at the end of the whole lines.
    pub fn append(&mut self, dir: &StateDir, names: &Names, op: &Op) -> Result<(), StoreError> {
        let line = line(op);
        self.file
            .write_all_at(&line, self.len)
            .map_err(|source| StoreError::Io {
                path: dir.path().join(&names.journal),
                source,
            })?;
        self.len += line.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }
}

fn line(op: &Op) -> Vec<u8> {
    let mut line = serde_json::to_vec(op).expect("operations serialise");
    line.push(b'\n');
    line
}
