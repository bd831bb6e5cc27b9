//! `probe`: a small static binary that runs *inside* a test container and
//! reports what it sees as JSON on stdout.
//!
//! The first argument picks a subcommand (no argument means `report`); see
//! [`USAGE`] and `rootfs-fixtures/README.md`. Every subcommand prints at most
//! one JSON object per line, so tests can parse the last line of stdout.

mod actions;
mod caps;
mod errno;
mod report;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// One-line usage, printed to stderr (exit status 2) on a bad command line.
const USAGE: &str = "usage: probe [report | exit N | sleep SECS | signal-self SIG | \
try-open PATH r|w|rw|path | try-write PATH TEXT | read PATH | alloc MIB | spawn N | \
burn SECS | wait-file PATH SECS]";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args) {
        Some(code) => code,
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Dispatches to a subcommand; `None` means the command line was invalid.
fn run(args: &[OsString]) -> Option<ExitCode> {
    let Some(cmd) = args.first() else {
        return Some(report::run());
    };
    let rest = &args[1..];
    let code = match (cmd.to_str()?, rest) {
        ("report", []) => report::run(),
        ("exit", [n]) => actions::exit(num(n)?),
        ("sleep", [secs]) => actions::sleep(secs_arg(secs)?),
        ("signal-self", [sig]) => actions::signal_self(num(sig)?),
        ("try-open", [path, mode]) => actions::try_open(path, actions::OpenMode::parse(mode)?),
        ("try-write", [path, text]) => actions::try_write(path, text),
        ("read", [path]) => actions::read(path),
        ("alloc", [mib]) => actions::alloc(num(mib)?),
        ("spawn", [n]) => actions::spawn(num(n)?),
        ("burn", [secs]) => actions::burn(secs_arg(secs)?),
        ("wait-file", [path, secs]) => actions::wait_file(path, secs_arg(secs)?),
        _ => return None,
    };
    Some(code)
}

/// Parses an integer argument.
fn num<T: std::str::FromStr>(arg: &OsString) -> Option<T> {
    arg.to_str()?.parse().ok()
}

/// Parses a number of seconds (fractions allowed; 0 to `u32::MAX`).
fn secs_arg(arg: &OsString) -> Option<Duration> {
    Duration::try_from_secs_f64(num(arg)?)
        .ok()
        .filter(|d| d.as_secs() <= u32::MAX.into())
}

/// Prints `value` as one line of JSON and flushes, ignoring a closed stdout.
fn print_json(value: &Value) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}
