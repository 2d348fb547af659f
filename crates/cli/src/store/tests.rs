use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use super::*;
use apmatrix_model::{Errno, Mask256, MaskKind, MatrixAxis};

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
    // what apmatrix makes is private, whatever the umask
    for name in ["sub", "sub/host.json", "sub/host.json.lock"] {
        let mode = fs::metadata(dir.path().join(name)).unwrap().mode() & 0o777;
        let want = if name == "sub" { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{name}: {mode:o}");
    }
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

fn journal(store: &Store) -> PathBuf {
    sibling(store, ".journal")
}

fn sibling(store: &Store, suffix: &str) -> PathBuf {
    let mut p = store.path().as_os_str().to_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

/// Writes a file as apmatrix makes its own: 0600.
fn write_private(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn serve(store: &Store) -> (LiveHost, Serving) {
    store
        .live("a test server".into(), ServerOptions::default())
        .unwrap()
}

const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
const U: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
const U2: &str = "8da4a3cb-2b3a-4c52-9b8d-1f09e1ee38c0";

fn mdev_attr(uuid: &str, attr: &str) -> String {
    format!("devices/vfio_ap/matrix/{uuid}/{attr}")
}

#[test]
fn tree_writes_are_journaled_and_cli_changes_go_through_the_server() {
    let (_dir, store) = seed_store();
    let (mut live, serving) = serve(&store);
    live.write_path("bus/ap/apmask", b"-5,-6\n")
        .unwrap()
        .unwrap();
    live.write_path(CREATE, U.as_bytes()).unwrap().unwrap();
    let text = fs::read_to_string(journal(&store)).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_eq!(fs::metadata(journal(&store)).unwrap().mode() & 0o777, 0o600);
    // a refused write is not journaled
    let err = live.write_path(CREATE, U.as_bytes()).unwrap().unwrap_err();
    assert_eq!(err.errno(), Errno::EEXIST);
    assert_eq!(fs::read_to_string(journal(&store)).unwrap(), text);
    // the CLI reads the server's host
    assert_eq!(store.load().unwrap(), live.host());
    // a CLI change is applied by the server: a new snapshot, no journal
    store
        .update(|h| h.write_mask(MaskKind::Apmask, b"-4"))
        .unwrap()
        .unwrap();
    assert!(!journal(&store).exists());
    assert!(!live.host().apmask().contains(4));
    assert!(live.host().mdev(&U.parse().unwrap()).is_some());
    // and the server's next write starts a journal for that snapshot
    live.write_path("bus/ap/apmask", b"+4").unwrap().unwrap();
    drop(serving);
    assert_eq!(store.load().unwrap(), live_host_after_stop(&store));
    assert!(store.load().unwrap().apmask().contains(4));
}

/// The host as a fresh command finds it once no server runs.
fn live_host_after_stop(store: &Store) -> Host {
    let place = store.place(false).unwrap();
    snapshot::load(&place.dir, &place.names).unwrap().host
}

/// The reported sequence: two CLI saves in a row with nothing asked of the
/// server between them used to look "unchanged" to it, so the tree went on
/// with a stale host and let one APQN into two mdevs.
#[test]
fn two_cli_changes_in_a_row_are_both_seen_by_the_tree() {
    let (_dir, store) = seed_store();
    store
        .update(|h| {
            h.write_mask(MaskKind::Apmask, b"-5,-6")?;
            h.write_create(U.as_bytes())?;
            h.write_create(U2.as_bytes())
        })
        .unwrap()
        .unwrap();
    let (mut live, _serving) = serve(&store);
    let m1: uuid::Uuid = U.parse().unwrap();
    for round in 0..10 {
        store
            .update(|h| h.assign(&m1, MatrixAxis::Adapter, 5))
            .unwrap()
            .unwrap();
        let _ = live.host(); // "read any file of the mount"
        store
            .update(|h| h.unassign(&m1, MatrixAxis::Adapter, 5))
            .unwrap()
            .unwrap();
        store
            .update(|h| {
                h.assign(&m1, MatrixAxis::Adapter, 6)?;
                h.assign(&m1, MatrixAxis::Domain, 4)
            })
            .unwrap()
            .unwrap();
        live.write_path(&mdev_attr(U2, "assign_adapter"), b"6")
            .unwrap()
            .unwrap();
        let err = live
            .write_path(&mdev_attr(U2, "assign_domain"), b"4")
            .unwrap()
            .unwrap_err();
        assert_eq!(err.errno(), Errno::EADDRINUSE, "round {round}");
        // back to the start for the next round
        live.write_path(&mdev_attr(U2, "unassign_adapter"), b"6")
            .unwrap()
            .unwrap();
        store
            .update(|h| {
                h.unassign(&m1, MatrixAxis::Adapter, 6)?;
                h.unassign(&m1, MatrixAxis::Domain, 4)
            })
            .unwrap()
            .unwrap();
        assert_eq!(store.load().unwrap(), live.host());
    }
}

#[test]
fn a_second_server_refuses_naming_the_first() {
    let (_dir, store) = seed_store();
    let (_live, serving) = serve(&store);
    let err = Store::new(store.path().to_path_buf())
        .live("another".into(), ServerOptions::default())
        .err()
        .expect("a second server must be refused");
    let text = err.to_string();
    assert!(
        text.contains("already served by a test server")
            && text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    drop(serving);
    // once the first has stopped, another may serve
    let (_live, _serving) = serve(&store);
}

#[test]
fn a_stopped_server_hands_the_host_back_whole() {
    let (_dir, store) = seed_store();
    let (mut live, serving) = serve(&store);
    live.write_path("bus/ap/apmask", b"-5").unwrap().unwrap();
    let served = live.host();
    drop(serving);
    // its tree answers EIO now rather than a host it no longer owns
    assert!(live.write_path("bus/ap/apmask", b"-6").is_err());
    assert!(!sibling(&store, ".sock").exists());
    assert_eq!(store.load().unwrap(), served);
    store
        .update(|h| h.write_mask(MaskKind::Apmask, b"-6"))
        .unwrap()
        .unwrap();
    assert!(!store.load().unwrap().apmask().contains(6));
}

#[test]
fn unfinished_and_stale_journals_are_not_state() {
    let (_dir, store) = seed_store();
    let (mut live, serving) = serve(&store);
    live.write_path("bus/ap/apmask", b"-5").unwrap().unwrap();
    drop(serving);
    // a server killed mid-line: the partial line is not part of the state
    let mut f = OpenOptions::new()
        .append(true)
        .open(journal(&store))
        .unwrap();
    f.write_all(b"{\"op\":\"set_mask\",\"mask\":\"apm").unwrap();
    drop(f);
    let host = store.load().unwrap();
    assert!(!host.apmask().contains(5) && host.apmask().contains(6));
    // the next server cuts it off and goes on
    let (mut live, serving) = serve(&store);
    live.write_path("bus/ap/apmask", b"-6").unwrap().unwrap();
    drop(serving);
    let text = fs::read_to_string(journal(&store)).unwrap();
    assert!(text.ends_with("}\n") && !text.contains("\"apm{"), "{text}");
    assert!(!store.load().unwrap().apmask().contains(6));
    // a journal left beside a newer snapshot (its writer killed between the
    // snapshot's rename and the journal's removal) is ignored
    let old_journal = fs::read(journal(&store)).unwrap();
    store
        .update(|h| h.write_mask(MaskKind::Apmask, b"+5,+6"))
        .unwrap()
        .unwrap();
    write_private(&journal(&store), &old_journal);
    let host = store.load().unwrap();
    assert!(host.apmask().contains(5) && host.apmask().contains(6));
    // a damaged complete line is refused, not skipped
    let (mut live, serving) = serve(&store);
    live.write_path("bus/ap/apmask", b"-7").unwrap().unwrap();
    drop(serving);
    let text = fs::read_to_string(journal(&store)).unwrap();
    let header = text.lines().next().unwrap();
    write_private(
        &journal(&store),
        format!("{header}\n{{\"op\":\"no_such_op\"}}\n").as_bytes(),
    );
    let err = store.load().unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn a_long_journal_is_folded_into_a_snapshot() {
    let (_dir, store) = seed_store();
    let (mut live, serving) = serve(&store);
    live.write_path("bus/ap/apmask", b"-5").unwrap().unwrap();
    live.write_path(CREATE, U.as_bytes()).unwrap().unwrap();
    let snapshot_before = fs::read(store.path()).unwrap();
    let mut compacted = false;
    for i in 0..20_000 {
        let attr = if i % 2 == 0 {
            "assign_domain"
        } else {
            "unassign_domain"
        };
        live.write_path(&mdev_attr(U, attr), b"4").unwrap().unwrap();
        if fs::read(store.path()).unwrap() != snapshot_before {
            compacted = true;
            break;
        }
    }
    assert!(compacted, "the journal never reached the compaction size");
    let journal_len = fs::metadata(journal(&store)).map_or(0, |m| m.len());
    assert!(journal_len < 1000, "{journal_len}");
    assert_eq!(store.load().unwrap(), live.host());
    // and it goes on journaling against the new snapshot
    live.write_path(&mdev_attr(U, "assign_domain"), b"0xab")
        .unwrap()
        .unwrap();
    let served = live.host();
    drop(serving);
    assert_eq!(store.load().unwrap(), served);
}

#[test]
fn a_state_directory_others_can_write_is_refused_unless_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let store = Store::new(open.join("host.json"));
    let err = store.init(&Host::seed_example(), false).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("a directory other users can write (mode 0777)")
            && text.contains("chmod go-w"),
        "{text}"
    );
    assert_eq!(fs::read_dir(&open).unwrap().count(), 0, "nothing made");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    store.init(&Host::seed_example(), false).unwrap();
    assert!(store.load().is_ok());
}

#[test]
fn planted_lock_journal_and_socket_names_are_refused_not_followed() {
    let (dir, store) = seed_store();
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let lock = sibling(&store, ".lock");
    // a symlink at the lock: never followed, never created through
    fs::remove_file(&lock).unwrap();
    symlink(&victim, &lock).unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(err.contains("is a symbolic link"), "{err}");
    fs::remove_file(&lock).unwrap();
    symlink(dir.path().join("made-by-root"), &lock).unwrap();
    assert!(store.update(|_| Ok::<(), ()>(())).is_err());
    assert!(!dir.path().join("made-by-root").exists());
    fs::remove_file(&lock).unwrap();
    // a journal others could have written is not replayed
    let header = {
        let (mut live, serving) = serve(&store);
        live.write_path("bus/ap/apmask", b"-5").unwrap().unwrap();
        drop(serving);
        fs::read_to_string(journal(&store)).unwrap()
    };
    let planted = format!(
        "{}{{\"op\":\"set_mask\",\"mask\":\"aqmask\",\"value\":\"{}\"}}\n",
        header.lines().next().unwrap(),
        "0".repeat(64)
    );
    fs::write(journal(&store), &planted).unwrap();
    fs::set_permissions(journal(&store), fs::Permissions::from_mode(0o666)).unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(err.contains("has mode 0666"), "{err}");
    // nor one linked from elsewhere
    fs::set_permissions(journal(&store), fs::Permissions::from_mode(0o600)).unwrap();
    fs::hard_link(journal(&store), dir.path().join("second-name")).unwrap();
    let err = store.load().unwrap_err().to_string();
    assert!(err.contains("hard links"), "{err}");
    fs::remove_file(journal(&store)).unwrap();
    // a symlinked journal is not followed
    symlink(&victim, journal(&store)).unwrap();
    assert!(store
        .load()
        .unwrap_err()
        .to_string()
        .contains("symbolic link"));
    fs::remove_file(journal(&store)).unwrap();
    // a file in the socket's place: a server will not start over it
    fs::write(sibling(&store, ".sock"), "").unwrap();
    let err = store
        .live("test".into(), ServerOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("is in the way of the server's socket"),
        "{err}"
    );
    assert_eq!(fs::read(sibling(&store, ".sock")).unwrap(), b"");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn an_older_versions_readable_lock_and_journal_are_made_private_and_used() {
    let (_dir, store) = seed_store();
    let (mut live, serving) = serve(&store);
    live.write_path("bus/ap/apmask", b"-5").unwrap().unwrap();
    drop(serving);
    for suffix in [".lock", ".journal"] {
        fs::set_permissions(sibling(&store, suffix), fs::Permissions::from_mode(0o644)).unwrap();
    }
    assert!(!store.load().unwrap().apmask().contains(5));
    for suffix in [".lock", ".journal"] {
        let mode = fs::metadata(sibling(&store, suffix)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{suffix}: {mode:o}");
    }
}

#[test]
fn the_state_must_be_a_regular_file_and_nothing_is_made_beside_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("host.json");
    fs::create_dir(&state).unwrap();
    let err = Store::new(state.clone())
        .init(&Host::seed_example(), true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not a regular file (it is a directory)"),
        "{err}"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no lock made");
    // a FIFO is refused without blocking, /dev/zero without reading forever
    let fifo = dir.path().join("fifo.json");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let err = Store::new(fifo).load().unwrap_err().to_string();
    assert!(err.contains("(it is a FIFO)"), "{err}");
    let err = Store::new("/dev/zero".into())
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains("character device"), "{err}");
}

#[test]
fn a_symlinked_host_is_resolved_once_and_its_files_live_beside_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    fs::create_dir(&real_dir).unwrap();
    let link = dir.path().join("host.json");
    symlink(real_dir.join("state.json"), &link).unwrap();
    let store = Store::new(link.clone());
    store.init(&Host::seed_example(), false).unwrap();
    store
        .update(|h| h.write_mask(MaskKind::Apmask, b"-5"))
        .unwrap()
        .unwrap();
    // the link still leads to the state, which is a file beside its target
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(real_dir.join("state.json").is_file());
    assert!(real_dir.join("state.json.lock").is_file());
    assert!(!dir.path().join("host.json.lock").exists());
    assert!(!Store::new(real_dir.join("state.json"))
        .load()
        .unwrap()
        .apmask()
        .contains(5));
}

#[test]
fn a_server_serves_only_its_own_user_and_root() {
    // The socket is 0600: nobody else can even connect.
    let (_dir, store) = seed_store();
    let (_live, _serving) = serve(&store);
    let mode = fs::metadata(sibling(&store, ".sock")).unwrap().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

/// A host with one more mdev than the seed's.
fn with_mdev(uuid: &str) -> Host {
    let mut h = Host::seed_example();
    h.create_mdev(uuid.parse().unwrap()).unwrap();
    h
}

#[test]
fn a_claim_swaps_in_a_new_host_and_a_dropped_claim_writes_nothing() {
    let (_dir, store) = seed_store();
    let before = fs::read(store.path()).unwrap();
    let claim = store.claim().unwrap();
    assert_eq!(claim.host(), &Host::seed_example());
    drop(claim);
    assert_eq!(fs::read(store.path()).unwrap(), before);
    let mut claim = store.claim().unwrap();
    claim.swap(with_mdev(U)).unwrap();
    // Swapped again against what it wrote: the undo of a migration.
    claim.swap(with_mdev(U2)).unwrap();
    drop(claim);
    assert_eq!(store.load().unwrap(), with_mdev(U2));
}

#[test]
fn a_served_claim_is_refused_when_the_host_moved_and_taken_when_it_did_not() {
    let (_dir, store) = seed_store();
    let (mut live, serving) = serve(&store);
    let mut claim = store.claim().unwrap();
    claim.swap(with_mdev(U)).unwrap();
    assert_eq!(live.host(), with_mdev(U));
    claim.swap(Host::seed_example()).unwrap();
    assert_eq!(live.host(), Host::seed_example());
    // A write through the tree comes first: the claim's swap is refused,
    // and the tree's change stays.
    live.write_path("bus/ap/apmask", b"-5\n").unwrap().unwrap();
    let err = claim.swap(with_mdev(U2)).unwrap_err();
    assert!(matches!(err, StoreError::Moved(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} changed since it was read (another change came first); nothing was written to it",
            store.path().display()
        )
    );
    assert!(!live.host().apmask().contains(5));
    assert!(live.host().mdev(&U2.parse().unwrap()).is_none());
    drop(claim);
    drop(serving);
}

#[test]
fn a_claim_whose_server_stopped_swaps_into_the_file_if_it_is_unchanged() {
    let (_dir, store) = seed_store();
    let (_live, serving) = serve(&store);
    let mut claim = store.claim().unwrap();
    drop(serving);
    claim.swap(with_mdev(U)).unwrap();
    drop(claim);
    assert_eq!(store.load().unwrap(), with_mdev(U));
}
