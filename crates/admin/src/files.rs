//! Reading the files users point apmatrix at (configurations, host
//! descriptions, mdevctl configs, udev rules, sysfs attributes): regular
//! files only, and only so much of them, so that a path to /dev/zero, a
//! FIFO or a huge file gives an error instead of a hang or a full memory.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most a configuration, description or mdevctl config may hold.
pub const TEXT_LIMIT: u64 = 16 << 20;

/// Reads a whole regular file of at most `limit` bytes as UTF-8.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file (it is {what})"),
        ));
    }
    let too_big = |n: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{n} bytes is more than the {limit} apmatrix reads from such a file"),
        )
    };
    if meta.len() > limit {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "not text: the file is not valid UTF-8",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.toml");
        std::fs::write(&f, "x = 1\n").unwrap();
        assert_eq!(read_text(&f, 100).unwrap(), "x = 1\n");
        let err = read_text(&f, 3).unwrap_err().to_string();
        assert!(err.contains("6 bytes is more than the 3"), "{err}");
        let err = read_text(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
        assert!(read_text(dir.path(), 100)
            .unwrap_err()
            .to_string()
            .contains("a directory"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_text(&fifo, 100)
            .unwrap_err()
            .to_string()
            .contains("a FIFO"));
        // a link to /dev/zero is what it leads to
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read_text(&link, 100).is_err());
    }
}
