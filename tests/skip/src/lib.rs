//! Counted, enforceable skips for tests that need something a host may lack.
//!
//! libtest has no run-time skip: a test that returns early counts as passed. A test that cannot
//! run here calls [`skip`] first, which
//! - panics when the environment variable `MINI_REQUIRE` (a comma-separated list) names the
//!   [`Need`]: the environment that must run everything (the host must run every cgroup v1
//!   test, the VM every v2 test) fails instead of skipping;
//! - otherwise writes one line `mini-test-skip: <test>: <reason>` straight to the process's
//!   standard error, past libtest's output capture, so `scripts/test-all.sh` counts it as
//!   skipped (and not passed) and lists it in its summary.

use std::io::Write;

/// What a test needs that a host may lack; the names are what `MINI_REQUIRE` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A cgroup v1 (or hybrid) hierarchy: `cgroup-v1`.
    CgroupV1,
    /// A pure cgroup v2 hierarchy with its controllers: `cgroup-v2`.
    CgroupV2,
    /// Some other feature of this kernel or host (a block device, time namespaces, no
    /// SELinux): `host`. Never required; the reason says what is missing.
    Host,
}

impl Need {
    /// Its name in `MINI_REQUIRE`.
    pub fn name(self) -> &'static str {
        match self {
            Need::CgroupV1 => "cgroup-v1",
            Need::CgroupV2 => "cgroup-v2",
            Need::Host => "host",
        }
    }

    /// Whether `MINI_REQUIRE` names it.
    pub fn required(self) -> bool {
        std::env::var("MINI_REQUIRE")
            .map(|v| v.split(',').any(|n| n.trim() == self.name()))
            .unwrap_or(false)
    }
}

/// Records that the running test is skipped because `reason`, or panics when `need` is
/// required here. The caller returns right after. The test is named by its thread (libtest
/// names each test's thread after it), else by `test`.
pub fn skip(test: &str, need: Need, reason: &str) {
    let current = std::thread::current();
    let test = current.name().filter(|n| *n != "main").unwrap_or(test);
    if need.required() {
        panic!(
            "{test} cannot run: {reason}, but MINI_REQUIRE={} says this environment must run it",
            need.name()
        );
    }
    let line = format!("mini-test-skip: {test}: {reason}\n");
    // Straight to fd 2: libtest captures only the print macros.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test (one thread) owns MINI_REQUIRE in this binary.
    #[test]
    fn a_required_need_fails_and_others_skip() {
        std::env::set_var("MINI_REQUIRE", "host, cgroup-v2");
        let failed = std::panic::catch_unwind(|| skip("t", Need::CgroupV2, "no io controller"));
        let msg = *failed
            .expect_err("required: must panic")
            .downcast::<String>()
            .unwrap();
        assert!(
            msg.contains("no io controller") && msg.contains("cgroup-v2"),
            "{msg}"
        );
        assert!(Need::Host.required());
        assert!(!Need::CgroupV1.required());
        std::env::remove_var("MINI_REQUIRE");
        assert!(!Need::CgroupV2.required());
    }
}
