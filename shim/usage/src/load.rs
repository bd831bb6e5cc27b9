//! Load averages from /proc/loadavg.

use serde::Serialize;

use crate::error::{parse_error, read, Result};

const LOADAVG: &str = "/proc/loadavg";

/// The kernel's load averages: runnable plus uninterruptible tasks, exponentially averaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LoadAvg {
    /// Over 1 minute.
    pub one: f64,
    /// Over 5 minutes.
    pub five: f64,
    /// Over 15 minutes.
    pub fifteen: f64,
    /// Tasks runnable right now.
    pub runnable: u64,
    /// Tasks (threads) that exist.
    pub tasks: u64,
}

impl LoadAvg {
    /// Reads /proc/loadavg.
    pub fn read() -> Result<LoadAvg> {
        LoadAvg::parse(&read(LOADAVG)?)
    }

    /// Parses "0.50 0.40 0.30 2/345 6789".
    pub fn parse(text: &str) -> Result<LoadAvg> {
        let bad = || parse_error(LOADAVG, text.trim());
        let f: Vec<&str> = text.split_whitespace().collect();
        let (runnable, tasks) = f.get(3).and_then(|s| s.split_once('/')).ok_or_else(bad)?;
        Ok(LoadAvg {
            one: f[0].parse().map_err(|_| bad())?,
            five: f[1].parse().map_err(|_| bad())?,
            fifteen: f[2].parse().map_err(|_| bad())?,
            runnable: runnable.parse().map_err(|_| bad())?,
            tasks: tasks.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_parses() {
        let l = LoadAvg::parse("0.50 0.40 0.30 2/345 6789\n").unwrap();
        assert_eq!(
            (l.one, l.five, l.fifteen, l.runnable, l.tasks),
            (0.5, 0.4, 0.3, 2, 345)
        );
        assert!(LoadAvg::parse("0.5 0.4\n").is_err());
    }
}
