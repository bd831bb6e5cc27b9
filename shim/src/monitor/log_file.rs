//! The log files: `log.jsonl`, rotated by size to `log.jsonl.1` (newest) ... `log.jsonl.N`
//! (oldest), and the cursors that read them back for `logs` requests.
//!
//! Writing never blocks or fails the container. A record that cannot be written (ENOSPC,
//! EDQUOT, EIO) is dropped and counted; a failed write is cut back to the last whole record, so
//! the file stays valid JSON lines. On a full disk the oldest rotated files are deleted first
//! to make room for new output. Once writing works again, a `monitor` record says how many
//! lines were lost, then logging goes on.

use super::diag;
use super::error::{Error, Result};
use super::layout::{self, log_path};
use super::log_record::{self, Stream};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// When to rotate and how much to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Rotate once the current file would grow beyond this many bytes.
    pub max_bytes: u64,
    /// How many rotated files to keep besides the current one (at least 1).
    pub max_files: u32,
}

impl Default for LogLimits {
    /// 10 MiB per file, 3 rotated files: at most 40 MiB per container.
    fn default() -> Self {
        LogLimits {
            max_bytes: 10 << 20,
            max_files: 3,
        }
    }
}

/// Appends records to the log files of one container.
pub struct LogWriter {
    dir: PathBuf,
    file: File,
    len: u64,
    limits: LogLimits,
    generation: u64,
    dropped_lines: u64,
    unreported: Option<(u64, u64, String)>,
}

/// Opens the current log file, created only root may read: the log holds whatever the
/// container printed, secrets included.
fn open_current(dir: &Path) -> std::io::Result<File> {
    mini_run::private_files::options()
        .append(true)
        .create(true)
        .open(log_path(dir, 0))
}

impl LogWriter {
    /// Opens (or creates) `log.jsonl` in `dir`, appending to what is there; log files an
    /// older version left readable by others are narrowed to 0600.
    pub fn open(dir: &Path, limits: LogLimits) -> Result<LogWriter> {
        if limits.max_files == 0 || limits.max_bytes == 0 {
            return Err(Error::Invalid(
                "log limits: keep at least one rotated file of at least one byte".into(),
            ));
        }
        for n in layout::log_files(dir) {
            let path = log_path(dir, n);
            mini_run::private_files::restrict(&path)
                .map_err(|e| Error::io(format!("making {} private", path.display()), e))?;
        }
        let path = log_path(dir, 0);
        let file =
            open_current(dir).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("inspecting {}", path.display()), e))?
            .len();
        Ok(LogWriter {
            dir: dir.to_path_buf(),
            file,
            len,
            limits,
            // Generations count rotations; starting above the oldest kept file's distance
            // lets files rotated before this writer existed be addressed too.
            generation: u64::from(limits.max_files),
            dropped_lines: 0,
            unreported: None,
        })
    }

    /// Lines dropped so far because they could not be written.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    /// Appends one record (a JSON line); a record that cannot be written is dropped and
    /// counted, never retried later.
    pub fn append(&mut self, record: &[u8]) {
        if let Some((lines, bytes, why)) = self.unreported.take() {
            let text = format!(
                "{lines} lines ({bytes} bytes) of output were not logged: writing {} failed: {why}",
                layout::LOG_FILE
            );
            let note =
                log_record::encode(&super::exit::now(), Stream::Monitor, text.as_bytes(), false);
            if let Err(e) = self.write(&note) {
                self.unreported = Some((lines, bytes, e.to_string()));
                self.drop_record(record, &e);
                return;
            }
        }
        if let Err(e) = self.write(record) {
            self.drop_record(record, &e);
        }
    }

    fn drop_record(&mut self, record: &[u8], e: &std::io::Error) {
        self.dropped_lines += 1;
        let (lines, bytes, _) = self.unreported.get_or_insert((0, 0, String::new()));
        *lines += 1;
        *bytes += record.len() as u64;
        if *lines == 1 {
            diag(&format!("dropping log output: {e}"));
        }
        self.unreported.as_mut().expect("set above").2 = e.to_string();
    }

    /// Writes one record, rotating first if it would overflow the current file, and freeing
    /// the oldest rotated files when the disk is full.
    fn write(&mut self, record: &[u8]) -> std::io::Result<()> {
        if self.len > 0 && self.len + record.len() as u64 > self.limits.max_bytes {
            if let Err(e) = self.rotate() {
                diag(&format!("rotating {}: {e}", layout::LOG_FILE));
            }
        }
        loop {
            match self.file.write_all(record) {
                Ok(()) => {
                    self.len += record.len() as u64;
                    return Ok(());
                }
                Err(e) => {
                    // Whatever part of the record got written goes: the file stays whole lines.
                    let _ = self.file.set_len(self.len);
                    let full = matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
                    if !(full && self.remove_oldest()) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Deletes the oldest rotated file; whether there was one.
    fn remove_oldest(&mut self) -> bool {
        let oldest = layout::log_files(&self.dir).into_iter().find(|&n| n > 0);
        oldest.is_some_and(|n| std::fs::remove_file(log_path(&self.dir, n)).is_ok())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let max = self.limits.max_files;
        match std::fs::remove_file(log_path(&self.dir, max)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (0..max).rev() {
            match std::fs::rename(log_path(&self.dir, n), log_path(&self.dir, n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.generation += 1;
        self.len = 0;
        match open_current(&self.dir) {
            Ok(f) => {
                self.file = f;
                Ok(())
            }
            Err(e) => {
                // Keep appending to the file just rotated away until a new one can be made.
                self.generation -= 1;
                let _ = std::fs::rename(log_path(&self.dir, 1), log_path(&self.dir, 0));
                self.len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
                Err(e)
            }
        }
    }

    /// The file that held generation `gen` (the current file is generation
    /// `self.generation`, the one before it is `log.jsonl.1`, ...), if it still exists.
    fn open_generation(&self, gen: u64) -> std::io::Result<Option<File>> {
        let back = self.generation - gen;
        if back > u64::from(self.limits.max_files) {
            return Ok(None);
        }
        match File::open(log_path(&self.dir, back as u32)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A reader of the log from its oldest kept record up to what the writer has written; it
/// follows rotations that happen while it reads (descriptors stay valid across renames).
pub struct LogCursor {
    file: Option<File>,
    gen: u64,
}

impl LogCursor {
    /// A cursor at the oldest record kept.
    pub fn new(writer: &LogWriter) -> LogCursor {
        let oldest = layout::log_files(&writer.dir)
            .first()
            .map_or(0, |&n| u64::from(n).min(u64::from(writer.limits.max_files)));
        LogCursor {
            file: None,
            gen: writer.generation - oldest,
        }
    }

    /// Reads the next bytes of the log into `buf`; 0 once it caught up with the writer.
    pub fn read(&mut self, writer: &LogWriter, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.file.is_none() {
                self.file = writer.open_generation(self.gen)?;
            }
            if let Some(f) = &mut self.file {
                let n = f.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
            }
            if self.gen >= writer.generation {
                return Ok(0);
            }
            self.gen += 1;
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mini-shim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn read_all(c: &mut LogCursor, w: &LogWriter) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = c.read(w, &mut buf).unwrap();
            if n == 0 {
                return String::from_utf8(out).unwrap();
            }
            out.extend(&buf[..n]);
        }
    }

    #[test]
    fn rotation_keeps_max_files_and_a_cursor_reads_across_rotations() {
        let dir = temp("rotate");
        let limits = LogLimits {
            max_bytes: 10,
            max_files: 2,
        };
        let mut w = LogWriter::open(&dir, limits).unwrap();
        w.append(b"aaaa\n");
        w.append(b"bbbb\n");
        let mut early = LogCursor::new(&w);
        let mut first = [0u8; 3];
        assert_eq!(early.read(&w, &mut first).unwrap(), 3);
        for rec in [b"cccc\n", b"dddd\n", b"eeee\n"] {
            w.append(rec);
        }
        assert_eq!(layout::log_files(&dir), vec![2, 1, 0]);
        // The early cursor holds the first file open and goes on through the newer ones.
        assert_eq!(
            format!("aaa{}", read_all(&mut early, &w)),
            "aaaa\nbbbb\ncccc\ndddd\neeee\n"
        );
        w.append(b"ffff\n");
        w.append(b"gggg\n");
        assert_eq!(layout::log_files(&dir), vec![2, 1, 0]);
        let mut late = LogCursor::new(&w);
        assert_eq!(read_all(&mut late, &w), "cccc\ndddd\neeee\nffff\ngggg\n");
        w.append(b"hhhh\n");
        assert_eq!(read_all(&mut late, &w), "hhhh\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zero_limits_are_refused() {
        let dir = temp("limits");
        let bad = LogLimits {
            max_bytes: 1,
            max_files: 0,
        };
        assert!(LogWriter::open(&dir, bad).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
