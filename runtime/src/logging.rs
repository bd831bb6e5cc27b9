//! runc's logging contract: `--log FILE` receives the runtime's messages, as text or (with
//! `--log-format json`) as JSON lines with `level`, `msg` and `time`, which is how containerd
//! and conmon read a runtime's last error. Errors also go to stderr as one line.

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `time="..." level=error msg="..."`
    #[default]
    Text,
    /// `{"level":"error","msg":"...","time":"..."}`
    Json,
}

struct Config {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Sets where and how to log; call once, early.
pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    let _ = CONFIG.set(Config {
        file,
        format,
        debug,
    });
}

#[derive(Serialize)]
struct Line<'a> {
    level: &'a str,
    msg: &'a str,
    time: String,
}

fn write(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    let Some(file) = &cfg.file else { return };
    let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let line = match cfg.format {
        Format::Json => serde_json::to_string(&Line { level, msg, time }).expect("serializes"),
        Format::Text => format!("time={time:?} level={level} msg={msg:?}"),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Logs an error to the log file (stderr is the caller's job).
pub fn error(msg: &str) {
    write("error", msg);
}

/// Logs a warning to the log file.
pub fn warn(msg: &str) {
    write("warning", msg);
}

/// Logs a debug message when `--debug` is on (to the log file, or stderr without one).
pub fn debug(msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    if !cfg.debug {
        return;
    }
    if cfg.file.is_some() {
        write("debug", msg);
    } else {
        eprintln!("mini-run: debug: {msg}");
    }
}
