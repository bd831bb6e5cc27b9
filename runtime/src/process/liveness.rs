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
    let data = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // rest starts at field 3 (state); start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
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
    }
}
