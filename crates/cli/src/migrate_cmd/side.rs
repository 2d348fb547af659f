//! Where one host of a migration is: a state file or a sysfs root, read
//! into a model host, and how the printed procedure names it.

use std::path::{Path, PathBuf};

use apmatrix_admin::running::running_guests;
use apmatrix_admin::{observe, DirRoot};
use apmatrix_model::Host;

use crate::source::{is_real_sys, rebuilt};
use crate::store::Store;
use crate::{CliError, Result};

/// Where one host of the migration is, for what is printed.
pub(super) struct Side {
    /// How it was named.
    pub label: String,
    /// The sysfs root its writes go to: the directory, or /sys for a
    /// state file (under `apmatrix exec` or on the real host it stands for).
    pub root: String,
    /// The command that applies a configuration file there.
    pub apply: String,
}

/// A sysfs root (a directory), rebuilt in the model with the guests of
/// libvirt's live XML; otherwise a state file.
pub(super) fn read_side(path: &Path, run: Option<&Path>, which: &str) -> Result<(Host, Side)> {
    let label = path.display().to_string();
    if !path.is_dir() {
        let host = Store::new(path.to_path_buf()).load()?;
        return Ok((host, state_file(label)));
    }
    let seen = observe(&DirRoot::new(path)).map_err(|e| CliError::Failed(e.to_string()))?;
    let run = run
        .map(Path::to_path_buf)
        .or_else(|| is_real_sys(path).then(|| PathBuf::from("/run")));
    let guests = running_guests(run.as_deref().unwrap_or(Path::new("")), Path::new(""));
    let host = rebuilt(&seen, &guests, &format!("the {which}: "));
    let side = Side {
        root: label.clone(),
        apply: format!("apmatrix apply --sysfs {}", shell_word(&label)),
        label,
    };
    Ok((host, side))
}

/// A state file: its writes are the tree's under `apmatrix exec`.
pub(super) fn state_file(label: String) -> Side {
    Side {
        root: "/sys".into(),
        apply: format!("apmatrix --host {} apply", shell_word(&label)),
        label,
    }
}

/// A word for the shell: as it is when it needs no quoting.
pub(super) fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_they_need_it() {
        assert_eq!(shell_word("Guest1-hostdev.xml"), "Guest1-hostdev.xml");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
