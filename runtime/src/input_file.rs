//! Bounded reads of input files. A file given where a JSON document is expected might be
//! `/dev/zero`, a FIFO nobody writes, or a symlink to either: read naively, the first grows the
//! reader without limit and the second blocks it forever. [`read`] opens without blocking,
//! refuses anything but a regular file, and reads at most its limit (one byte more, to tell a
//! file that is too large from one that fits exactly); [`read_from`] bounds a stream (stdin).
//!
//! mini-shim and mini-sched read their own state, certificates and specs through it too.

use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most mini-run reads of a JSON input: config.json, `exec --process` and `update
/// --resources` (a file or stdin).
pub const JSON_LIMIT: u64 = 16 << 20;

/// The most mini-run reads of its own state.json: four times [`JSON_LIMIT`], so the state made
/// from any config.json that was accepted can always be read back (and the container deleted).
pub const STATE_LIMIT: u64 = 4 * JSON_LIMIT;

/// Reads the regular file at `path` (symlinks followed), failing with an `InvalidInput` error
/// if it is not a regular file or holds more than `limit` bytes. Other errors (`NotFound`
/// included) are the system's.
pub fn read(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO would block the open itself until a writer came.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{what}, not a regular file"),
        ));
    }
    // Sized from the file's length, the data arrives in one read (and one more that finds
    // the end) instead of read_to_end's doubling from 32 bytes: `list` reads every state.json.
    let expected = usize::try_from(meta.len().min(limit)).unwrap_or(0);
    read_into(Vec::with_capacity(expected.saturating_add(1)), file, limit)
}

/// Reads `reader` to its end, failing with an `InvalidInput` error once it gave more than
/// `limit` bytes.
pub fn read_from(reader: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    read_into(Vec::new(), reader, limit)
}

fn read_into(mut data: Vec<u8>, reader: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("larger than the limit of {}", size(limit)),
        ));
    }
    Ok(data)
}

/// `limit` for people: whole MiB or KiB where it is one, bytes otherwise.
fn size(limit: u64) -> String {
    match limit {
        l if l >= 1 << 20 && l % (1 << 20) == 0 => format!("{} MiB", l >> 20),
        l if l >= 1 << 10 && l % (1 << 10) == 0 => format!("{} KiB", l >> 10),
        l => format!("{l} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        let e = read(Path::new("/dev/zero"), JSON_LIMIT).unwrap_err();
        assert_eq!(e.to_string(), "a character device, not a regular file");
        let e = read(Path::new("/"), JSON_LIMIT).unwrap_err();
        assert_eq!(e.to_string(), "a directory, not a regular file");
        let dir = std::env::temp_dir().join(format!("input-file-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read(&fifo, JSON_LIMIT).unwrap_err();
        assert_eq!(e.to_string(), "a FIFO, not a regular file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_may_fill_its_limit_but_not_pass_it() {
        assert_eq!(read_from(&b"12345"[..], 5).unwrap(), b"12345");
        let e = read_from(&b"123456"[..], 5).unwrap_err();
        assert_eq!(e.to_string(), "larger than the limit of 5 bytes");
        let e = read_from(std::io::repeat(0), 16 << 20).unwrap_err();
        assert_eq!(e.to_string(), "larger than the limit of 16 MiB");
        assert_eq!(size(64 << 10), "64 KiB");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
