//! Sequences of write(2)s through the in-process sysfs view
//! (`apmatrix_sysfs::SysfsView`) on the seed example host: the bus, card
//! and queue attributes, `create`, and one mdev's assign/unassign/remove
//! files, or any path the input spells (through links, `..`, read-only
//! files, directories, names that do not exist).
//!
//! After each write: a refused write, or one accepted without an operation,
//! left the host exactly as it was; an accepted operation survives the
//! store's JSON journal and, applied to the host as it was, gives the same
//! host and effects (replay); the host's state saves and loads (also as
//! JSON) to an equal host; and every name any directory lists is found by
//! `lookup`, with the listed kind, every link leads to a directory, every
//! readable file reads (the walk runs once per distinct host a process
//! reaches: the tree is a function of the host).
//!
//! Input: steps as `apmatrix_fuzz::sysfs_steps` reads them (a selector
//! byte, `s % 20` < 18 picks `SYSFS_WRITE_PATHS[s % 20]`, 18/19 a path
//! from the input as length byte + bytes; then the data as length byte +
//! bytes). At most `MAX_STEPS` steps are run.
#![no_main]

use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use apmatrix_fuzz::{sysfs_steps, StepPath, SYSFS_MDEV, SYSFS_WRITE_PATHS};
use apmatrix_model::{Effects, Host, HostState, Op, Written};
use apmatrix_sysfs::{
    child, children, dir_exists, lookup, read, resolve_path, write_target, AccessError, Dir, Node,
    SysfsView,
};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const MAX_STEPS: usize = 64;
/// Far more than the seed host with `MAX_STEPS` mdevs has; a walk that gets
/// here is looping.
const MAX_NODES: usize = 50_000;

/// The tree as `children` lists it agrees with `lookup`/`child`, and
/// everything in it can be used.
fn check_tree(host: &Host) {
    let mut dirs = vec![(String::new(), Dir::Root)];
    let mut nodes = 0;
    while let Some((path, dir)) = dirs.pop() {
        assert!(
            dir_exists(host, dir),
            "{path:?} is listed but does not exist"
        );
        let listed = children(host, dir);
        assert!(
            listed.windows(2).all(|w| w[0].0 < w[1].0),
            "{path:?}: listing not sorted or has a name twice: {listed:?}"
        );
        for (name, kind) in listed {
            nodes += 1;
            assert!(nodes <= MAX_NODES, "more than {MAX_NODES} entries");
            assert!(
                !name.is_empty() && !name.contains('/') && name != "." && name != "..",
                "{path:?} lists {name:?}"
            );
            let full = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            let node = lookup(host, &full)
                .unwrap_or_else(|| panic!("{full} is listed but lookup finds nothing"));
            assert_eq!(node.kind(), kind, "{full}: listed kind differs");
            assert_eq!(child(host, dir, &name).as_ref(), Some(&node), "{full}");
            match node {
                Node::Dir(d) => dirs.push((full, d)),
                Node::File(f) => {
                    if f.readable() {
                        let _ = read(host, &f);
                    }
                    if f.writable() {
                        assert!(write_target(&f).is_some(), "{full}: writable, no target");
                    }
                }
                Node::Link(target) => {
                    let via = format!("{path}/{target}");
                    assert!(
                        matches!(resolve_path(host, &via), Some(Node::Dir(_))),
                        "{full} -> {target} does not lead to a directory"
                    );
                    assert_eq!(
                        resolve_path(host, &full),
                        resolve_path(host, &via),
                        "{full}"
                    );
                }
            }
        }
    }
}

/// Saving and loading, directly and through the store's JSON snapshot;
/// returns the snapshot.
fn check_state(host: &Host) -> String {
    let state = host.to_state();
    let again = Host::from_state(state.clone())
        .unwrap_or_else(|e| panic!("a host's own state is refused: {e}\n{state:?}"));
    assert_eq!(again, *host, "save and load changed the host");
    assert_eq!(again.to_state(), state);
    let json = serde_json::to_string(&state).expect("a state serialises");
    let reread: HostState = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("own JSON snapshot refused: {e}\n{json}"));
    assert_eq!(reread, state);
    json
}

thread_local! {
    /// Hashes of the snapshots of the hosts whose tree this process has
    /// walked. The tree is a function of the host, and `check_state` has
    /// just shown that the snapshot determines the host, so a host seen
    /// before needs no second walk (most inputs revisit the same few).
    static WALKED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// [`check_tree`], once per distinct host (by its snapshot).
fn check_tree_once(host: &Host, snapshot: &str) {
    let mut hasher = DefaultHasher::new();
    snapshot.hash(&mut hasher);
    let key = hasher.finish();
    let new = WALKED.with_borrow_mut(|walked| {
        if walked.len() >= 1 << 20 {
            walked.clear();
        }
        walked.insert(key)
    });
    if new {
        check_tree(host);
    }
}

/// The effects of a write that changed nothing.
fn nothing() -> Effects {
    Effects::default()
}

/// The starting host, built (from its TOML description) and checked once.
static SEED_HOST: OnceLock<Host> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mut host = SEED_HOST
        .get_or_init(|| {
            let host = Host::seed_example();
            let snapshot = check_state(&host);
            check_tree_once(&host, &snapshot);
            host
        })
        .clone();
    let mdev: Uuid = SYSFS_MDEV.parse().expect("a UUID");

    for step in sysfs_steps(data).into_iter().take(MAX_STEPS) {
        let path = step.path_text();
        let before = host.clone();
        let result = SysfsView { host: &mut host }.write(&path, step.data);
        let what = format!(
            "write of {:?} to {path:?}",
            String::from_utf8_lossy(step.data)
        );

        // The fixed paths always exist, except the mdev's files without
        // the mdev and a queue's `online` while cex4queue does not hold it.
        if let StepPath::Fixed(i) = step.path {
            let missing = matches!(result, Err(AccessError::NotFound(_)));
            if SYSFS_WRITE_PATHS[i].contains(SYSFS_MDEV) {
                assert_eq!(missing, before.mdev(&mdev).is_none(), "{what}: {result:?}");
            } else if !SYSFS_WRITE_PATHS[i].contains("04.0004") {
                assert!(!missing, "{what}: {result:?}");
            }
            assert!(
                !matches!(result, Err(AccessError::NotPermitted(_))),
                "{what}: {result:?}"
            );
        }

        match result {
            Err(e) => {
                assert_eq!(host, before, "refused {what} ({e}) changed the host");
                assert!(!e.to_string().is_empty());
            }
            Ok(Written { op: None, effects }) => {
                assert_eq!(host, before, "{what} with no operation changed the host");
                assert_eq!(effects, nothing(), "{what}");
            }
            Ok(Written {
                op: Some(op),
                effects,
            }) => {
                // The store journals the operation as a JSON line ...
                let line = serde_json::to_string(&op).expect("an operation serialises");
                assert!(!line.contains('\n'), "journal line {line:?}");
                let journaled: Op = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("journal line {line} refused: {e}"));
                assert_eq!(journaled, op, "{line}");
                // ... and replays it onto the host it had.
                let mut replay = before.clone();
                let replayed = replay.apply(&journaled);
                assert_eq!(
                    replayed.as_ref(),
                    Ok(&effects),
                    "replaying {op:?} after {what}"
                );
                assert_eq!(replay, host, "replaying {op:?} after {what}");

                // Only a changed host can have a different tree.
                if host != before {
                    let snapshot = check_state(&host);
                    check_tree_once(&host, &snapshot);
                }
            }
        }
    }
});
