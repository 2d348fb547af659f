//! `migrate run`'s commit of two hosts, all or nothing: the source first,
//! then the target, and the source put back if the target cannot be
//! written.

use std::path::Path;

use apmatrix_model::Host;

use crate::store::{Claim, StoreError};

/// How a two-host commit ended, when it did not.
#[derive(Debug)]
pub(super) enum PairError {
    /// A host changed since it was read; neither host was changed.
    Moved,
    /// It failed; the message says in what state it left each host.
    Failed(String),
}

/// What [`commit_pair`] needs of a claimed host (a [`Claim`], or a fake in
/// the tests).
pub(super) trait Swap {
    fn host(&self) -> &Host;
    fn swap(&mut self, new: Host) -> Result<(), StoreError>;
    fn path(&self) -> &Path;
}

impl Swap for Claim {
    fn host(&self) -> &Host {
        Claim::host(self)
    }
    fn swap(&mut self, new: Host) -> Result<(), StoreError> {
        Claim::swap(self, new)
    }
    fn path(&self) -> &Path {
        Claim::path(self)
    }
}

/// Commits the source's new host, then the target's. The source goes
/// first: should the rest fail too, the guest is then stopped with its
/// devices unplugged, never running on both hosts. If the target cannot be
/// written, the source is put back (a compare and swap against what was
/// just written to it).
pub(super) fn commit_pair(
    source: &mut dyn Swap,
    new_source: Host,
    target: &mut dyn Swap,
    new_target: Host,
    guest: &str,
) -> std::result::Result<(), PairError> {
    let old_source = source.host().clone();
    match source.swap(new_source) {
        Ok(()) => {}
        Err(StoreError::Moved(_)) => return Err(PairError::Moved),
        Err(e) => {
            return Err(PairError::Failed(format!(
                "the source could not be written: {e}; the target was not touched"
            )))
        }
    }
    let Err(e) = target.swap(new_target) else {
        return Ok(());
    };
    match source.swap(old_source) {
        Ok(()) if matches!(e, StoreError::Moved(_)) => Err(PairError::Moved),
        Ok(()) => Err(PairError::Failed(format!(
            "the target could not be written: {e}; the source was put back as it was, so \
             neither host changed"
        ))),
        Err(undo) => Err(PairError::Failed(format!(
            "the target could not be written: {e}; putting the source back failed too: {undo}. \
             The source ({}) now has guest {guest} stopped and its adapters unassigned; the \
             target ({}) is as it was. Start the guest again on the source and assign its \
             adapters back, or run the migration again",
            source.path().display(),
            target.path().display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A claimed host in memory whose swaps fail when told to.
    struct Fake {
        host: Host,
        fail: Option<StoreError>,
        swaps: usize,
        path: PathBuf,
    }

    impl Fake {
        fn new(name: &str) -> Fake {
            Fake {
                host: Host::seed_example(),
                fail: None,
                swaps: 0,
                path: PathBuf::from(name),
            }
        }
    }

    impl Swap for Fake {
        fn host(&self) -> &Host {
            &self.host
        }
        fn swap(&mut self, new: Host) -> Result<(), StoreError> {
            if let Some(e) = self.fail.take() {
                return Err(e);
            }
            self.swaps += 1;
            self.host = new;
            Ok(())
        }
        fn path(&self) -> &Path {
            &self.path
        }
    }

    fn changed() -> Host {
        let mut h = Host::seed_example();
        h.start_guest("G", None, Default::default()).unwrap();
        h
    }

    #[test]
    fn both_hosts_are_committed_source_first() {
        let (mut s, mut t) = (Fake::new("s"), Fake::new("t"));
        commit_pair(&mut s, changed(), &mut t, changed(), "G").unwrap();
        assert_eq!((s.host.clone(), t.host.clone()), (changed(), changed()));
        assert_eq!((s.swaps, t.swaps), (1, 1));
    }

    #[test]
    fn a_target_that_cannot_be_written_puts_the_source_back() {
        let (mut s, mut t) = (Fake::new("s"), Fake::new("t"));
        t.fail = Some(StoreError::Stopped);
        let Err(PairError::Failed(why)) = commit_pair(&mut s, changed(), &mut t, changed(), "G")
        else {
            panic!("committed")
        };
        assert_eq!(
            why,
            "the target could not be written: the server has stopped; the source was put back \
             as it was, so neither host changed"
        );
        assert_eq!(
            (s.host.clone(), t.host.clone()),
            (Host::seed_example(), Host::seed_example())
        );
        assert_eq!(s.swaps, 2);
    }

    #[test]
    fn a_target_that_moved_puts_the_source_back_and_the_run_starts_over() {
        let (mut s, mut t) = (Fake::new("s"), Fake::new("t"));
        t.fail = Some(StoreError::Moved(PathBuf::from("t")));
        assert!(matches!(
            commit_pair(&mut s, changed(), &mut t, changed(), "G"),
            Err(PairError::Moved)
        ));
        assert_eq!(s.host, Host::seed_example());
    }

    #[test]
    fn a_source_that_moved_leaves_the_target_untouched() {
        let (mut s, mut t) = (Fake::new("s"), Fake::new("t"));
        s.fail = Some(StoreError::Moved(PathBuf::from("s")));
        assert!(matches!(
            commit_pair(&mut s, changed(), &mut t, changed(), "G"),
            Err(PairError::Moved)
        ));
        assert_eq!((s.swaps, t.swaps), (0, 0));
    }

    /// The undo is a swap too: when it fails, the message says where each
    /// host is left.
    struct FailsSecondSwap(Fake);

    impl Swap for FailsSecondSwap {
        fn host(&self) -> &Host {
            self.0.host()
        }
        fn swap(&mut self, new: Host) -> Result<(), StoreError> {
            if self.0.swaps == 1 {
                return Err(StoreError::Moved(PathBuf::from("s")));
            }
            self.0.swap(new)
        }
        fn path(&self) -> &Path {
            self.0.path()
        }
    }

    #[test]
    fn when_the_undo_fails_too_the_message_says_where_each_host_is_left() {
        let mut s = FailsSecondSwap(Fake::new("src.json"));
        let mut t = Fake::new("dst.json");
        t.fail = Some(StoreError::Stopped);
        let Err(PairError::Failed(why)) = commit_pair(&mut s, changed(), &mut t, changed(), "G")
        else {
            panic!("committed")
        };
        assert_eq!(
            why,
            "the target could not be written: the server has stopped; putting the source back \
             failed too: s changed since it was read (another change came first); nothing was \
             written to it. The source (src.json) now has guest G stopped and its adapters \
             unassigned; the target (dst.json) is as it was. Start the guest again on the \
             source and assign its adapters back, or run the migration again"
        );
        assert_eq!(s.0.host, changed());
    }
}
