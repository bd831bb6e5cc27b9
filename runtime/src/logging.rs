//! runc's logging contract: `--log FILE` receives the runtime's messages, as text
//! (`time="..." level=debug msg="..."`) or (with `--log-format json`) as JSON lines with
//! `level`, `msg` and `time`, which is how containerd and conmon read a runtime's last error.
//! The file is opened (created) when the command starts, whether or not anything goes wrong.
//! With `--debug`, each step of a command is logged at level `debug`: to the log file, or to
//! stderr without one. Errors also go to stderr as one line.

use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;
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
    file: Option<File>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Sets where and how to log, opening (creating) the log file for appending; call once, early.
pub fn init(file: Option<&Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = file
        .map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        })
        .transpose()?;
    let _ = CONFIG.set(Config {
        file,
        format,
        debug,
    });
    Ok(())
}

#[derive(Serialize)]
struct Line<'a> {
    level: &'a str,
    msg: &'a str,
    time: String,
}

fn line(format: Format, level: &str, msg: &str) -> String {
    let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    match format {
        Format::Json => serde_json::to_string(&Line { level, msg, time }).expect("serializes"),
        Format::Text => format!("time={time:?} level={level} msg={msg:?}"),
    }
}

fn write(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    let Some(mut file) = cfg.file.as_ref() else {
        return;
    };
    let _ = writeln!(file, "{}", line(cfg.format, level, msg));
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
        eprintln!("{}", line(cfg.format, "debug", msg));
    }
}
