//! The API socket's path (`mini-sched daemon --socket PATH`): claimed only when nothing is
//! there or a stale socket is (one left by a daemon that died: nothing answers on it). A file
//! of any other kind is never removed, and a socket something answers on belongs to another
//! daemon.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Makes `path` free for the API socket: removes a stale socket, refuses anything else.
pub fn claim(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("--socket {shown}: {e}")),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "--socket {shown} exists and is not a socket: it is left alone; \
             remove it yourself or choose another --socket"
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(format!("another daemon is listening on {shown}")),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|e| format!("removing the stale socket {shown}: {e}")),
        Err(e) => Err(format!("--socket {shown}: checking the socket there: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mini-sched-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_is_refused_and_kept() {
        let dir = dir("socket-file");
        let path = dir.join("api.sock");
        std::fs::write(&path, "precious").unwrap();
        let message = claim(&path).unwrap_err();
        assert!(message.contains("is not a socket"), "{message}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_live_socket_is_refused_and_a_stale_one_removed() {
        let dir = dir("socket-live");
        let path = dir.join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let message = claim(&path).unwrap_err();
        assert_eq!(
            message,
            format!("another daemon is listening on {}", path.display())
        );
        drop(listener);
        claim(&path).unwrap();
        assert!(!path.exists());
        claim(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
