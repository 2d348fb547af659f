//! What the FUSE-based integration tests share.

use std::path::Path;

/// Whether FUSE can be used here (root and /dev/fuse). CI has both and sets
/// APMATRIX_REQUIRE_FUSE=1, so a missing one fails there instead of skipping.
pub fn fuse_usable() -> bool {
    let ok = Path::new("/dev/fuse").exists() && unsafe { libc::geteuid() } == 0;
    if !ok {
        assert!(
            std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
            "APMATRIX_REQUIRE_FUSE is set but FUSE is not usable (need root and /dev/fuse)"
        );
        eprintln!("skipping: the emulated tree needs root and /dev/fuse");
    }
    ok
}
