//! `events`: a container's resource usage and out-of-memory kills as runc's JSON event lines:
//! `{"type":"stats","id":ID,"data":{...}}` every interval and `{"type":"oom","id":ID}` for each
//! OOM kill in its cgroup, until the container stops; or with `--stats` one stats line.

use crate::error::{Context, Error, Result};
use crate::process::liveness::{self, Liveness};
use crate::state::{ContainerDir, Record, Status};
use mini_cgroups::{Manager, Stats};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest the stream waits before checking whether the container still runs.
const POLL: Duration = Duration::from_millis(500);

/// One event line, as runc prints it.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// "stats" or "oom".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The container id.
    pub id: &'a str,
    /// The statistics of a "stats" event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

/// Parses `--interval` (a duration such as `5s`, `500ms` or `1m`); it must be positive.
pub fn parse_interval(text: &str) -> Result<Duration> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        Error::invalid(format!(
            "invalid --interval {text:?} ({e}): use a duration like 5s or 500ms"
        ))
    })?;
    if d.is_zero() {
        return Err(Error::invalid(
            "--interval must be greater than 0: use a duration like 5s or 500ms",
        ));
    }
    Ok(d)
}

/// The record and cgroup (none for a rootless container without one) of a container that has
/// not stopped. The container's lock is released on return, so that a long `events` does not
/// block other commands.
fn open(root: &Path, id: &str) -> Result<(Record, Option<Box<dyn Manager>>)> {
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    if status == Status::Stopped {
        return Err(Error::invalid(format!(
            "container {id:?} is stopped: there are no events to report; start a new one"
        )));
    }
    let cgroup = rec
        .cgroup
        .is_some()
        .then(|| super::cgroup(&rec))
        .transpose()?;
    Ok((rec, cgroup))
}

/// A container's statistics; without a cgroup only its process count is known.
fn stats_of(rec: &Record, cgroup: Option<&dyn Manager>) -> Result<Stats> {
    match cgroup {
        Some(cg) => Ok(cg.stats()?),
        None => {
            let mut stats = Stats::default();
            stats.pids.current = super::processes(rec)?.len() as u64;
            Ok(stats)
        }
    }
}

/// The single line `events --stats` prints.
pub fn stats(root: &Path, id: &str) -> Result<String> {
    let (rec, cgroup) = open(root, id)?;
    let event = Event {
        kind: "stats",
        id,
        data: Some(stats_of(&rec, cgroup.as_deref())?),
    };
    Ok(serde_json::to_string(&event).expect("event serializes"))
}

/// Writes a stats event to `out` every `interval` and an oom event for each OOM kill, until the
/// container's init exits.
pub fn stream(root: &Path, id: &str, interval: Duration, out: &mut dyn Write) -> Result<()> {
    let (rec, cgroup) = open(root, id)?;
    Stream {
        id,
        rec: &rec,
        cgroup: cgroup.as_deref(),
        out,
        ooms: cgroup
            .as_ref()
            .map(|c| c.oom_kill_count())
            .transpose()?
            .unwrap_or(0),
    }
    .run(interval)
}

struct Stream<'a> {
    id: &'a str,
    rec: &'a Record,
    cgroup: Option<&'a dyn Manager>,
    out: &'a mut dyn Write,
    /// OOM kills reported so far (the count when the stream began, plus the events since).
    ooms: u64,
}

impl Stream<'_> {
    fn alive(&self) -> bool {
        liveness::check(self.rec.pid, self.rec.pid_start_time) == Liveness::Alive
    }

    fn emit(&mut self, kind: &'static str, data: Option<Stats>) -> Result<()> {
        let event = Event {
            kind,
            id: self.id,
            data,
        };
        let line = serde_json::to_string(&event).expect("event serializes");
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .context(|| "writing events")
    }

    /// Reports the OOM kills since the last call.
    fn report_ooms(&mut self) -> Result<()> {
        let Some(cgroup) = self.cgroup else {
            return Ok(());
        };
        let count = cgroup.oom_kill_count()?;
        while self.ooms < count {
            self.ooms += 1;
            self.emit("oom", None)?;
        }
        Ok(())
    }

    /// A cgroup error ends the stream quietly if the container stopped meanwhile (its cgroup may
    /// be gone with it).
    fn unless_stopped(&self, r: Result<()>) -> Result<bool> {
        match r {
            Ok(()) => Ok(true),
            Err(_) if !self.alive() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn run(mut self, interval: Duration) -> Result<()> {
        let mut next_stats = Instant::now() + interval;
        // Waiting on the kernel's OOM notification only makes reports prompt: the kill count
        // is also compared on every pass, so without it (no memory controller) nothing is lost.
        let mut notify = self.cgroup.is_some();
        loop {
            if Instant::now() >= next_stats {
                let stats = stats_of(self.rec, self.cgroup);
                let emitted = stats.and_then(|s| self.emit("stats", Some(s)));
                if !self.unless_stopped(emitted)? {
                    return Ok(());
                }
                next_stats = (next_stats + interval).max(Instant::now());
            }
            let step = next_stats
                .saturating_duration_since(Instant::now())
                .min(POLL);
            match self.cgroup.filter(|_| notify) {
                Some(cgroup) => match cgroup.wait_oom(self.ooms, step) {
                    // A cgroup that stays under OOM (its killer disabled) notifies at once on
                    // every registration: pace the passes then.
                    Ok(true) => std::thread::sleep(step.min(Duration::from_millis(50))),
                    Ok(false) => {}
                    Err(_) => notify = false,
                },
                None => std::thread::sleep(step),
            }
            let reported = self.report_ooms();
            if !self.unless_stopped(reported)? {
                return Ok(());
            }
            if !self.alive() {
                // A kill that ended the container is counted before its init is reaped.
                let _ = self.report_ooms();
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn events_serialize_like_runc() {
        let oom = Event {
            kind: "oom",
            id: "c1",
            data: None,
        };
        assert_eq!(
            serde_json::to_string(&oom).unwrap(),
            r#"{"type":"oom","id":"c1"}"#
        );
        let stats = Event {
            kind: "stats",
            id: "c1",
            data: Some(Stats::default()),
        };
        let v = serde_json::to_value(&stats).unwrap();
        assert_eq!(v["type"], "stats");
        assert!(v["data"]["cpu"]["usage"].is_object());
    }
}
