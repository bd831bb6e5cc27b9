//! Whether a recorded pid still names the same living process.

/// The answer of [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The process runs (or sleeps, or is stopped): it is the one recorded.
    Alive,
    /// The process exited (a zombie counts as exited), or the pid now names another process.
    Gone,
}

/// Reads the state character and the start time (field 22) of `/proc/<pid>/stat`.
pub fn stat(pid: i32) -> Option<(char, u64)> {
    let data = read_stat(pid)?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // rest starts at field 3 (state); start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The kernel's PF_EXITING task flag (include/linux/sched.h): the process is in exit(2).
const PF_EXITING: u64 = 0x4;

/// Whether `pid` is on its way out: it is exiting (an init of a PID namespace stays there until
/// every process of the namespace is gone) or has a SIGKILL pending.
pub fn dying(pid: i32) -> bool {
    let exiting = read_stat(pid)
        .and_then(|data| {
            // Fields resume after the command name; the flags are field 9.
            let rest = &data[data.rfind(')')? + 2..];
            rest.split(' ').nth(6)?.parse::<u64>().ok()
        })
        .is_some_and(|flags| flags & PF_EXITING != 0);
    let kill_pending = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|status| {
            status
                .lines()
                .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
                .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
                .any(|mask| mask & (1 << (libc::SIGKILL - 1)) != 0)
        })
        .unwrap_or(false);
    exiting || kill_pending
}

/// `/proc/<pid>/stat` in one read: the kernel fills a buffer this size at once (the command
/// name is at most 15 bytes), where growing from 32 bytes takes six reads per container `list`
/// and `state` look at.
fn read_stat(pid: i32) -> Option<String> {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let n = file.read(&mut buf).ok()?;
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// Checks `pid` against the start time recorded when it was created.
pub fn check(pid: i32, start_time: u64) -> Liveness {
    match stat(pid) {
        Some((state, start)) if start == start_time && state != 'Z' && state != 'X' => {
            Liveness::Alive
        }
        _ => Liveness::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let (_, start) = stat(me).expect("own stat");
        assert_eq!(check(me, start), Liveness::Alive);
        assert_eq!(check(me, start + 1), Liveness::Gone);
        assert!(!dying(me));
    }
}
