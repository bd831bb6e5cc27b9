//! Reaching into a running container: `exec` (a command, its output and exit code) and its
//! log (`logs`, with `tail` and `follow`), both through the container's monitor.

use super::containers::monitor_error;
use super::{Agent, Error};
use crate::monitor;
use crate::protocol::{ExecRequest, ExecResult, LogLine};

impl Agent {
    /// `POST /v1/containers/{id}/exec`.
    pub async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecResult, Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_exec(h, id, &request);
        }
        if request.args.is_empty() {
            return Err(Error::BadRequest("exec needs a command in args".into()));
        }
        for entry in &request.env {
            if entry.split_once('=').is_none_or(|(n, _)| n.is_empty()) {
                return Err(Error::BadRequest(format!(
                    "environment entry {entry:?} is not NAME=value"
                )));
            }
        }
        let timeout = request.timeout_secs.unwrap_or(30).saturating_mul(1000);
        let spec = monitor::ExecSpec {
            args: request.args,
            env: request.env,
            cwd: None,
            user: None,
            timeout_ms: Some(timeout),
        };
        let out = self
            .running(id)
            .await?
            .exec(&spec)
            .await
            .map_err(|e| monitor_error(id, "exec in", e))?;
        Ok(ExecResult {
            exit_code: out
                .exit_code
                .unwrap_or_else(|| 128 + out.signal.unwrap_or(0)),
            stdout: out.stdout,
            stderr: out.stderr,
            timed_out: out.timed_out,
        })
    }

    /// `GET /v1/containers/{id}/logs`: the last `tail` records (all without it), then, with
    /// `follow`, new records until the container's output ends.
    pub async fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<tokio::sync::mpsc::Receiver<LogLine>, Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_logs(h, id);
        }
        let dir = self.existing(id)?;
        let client = monitor::Client::new(&dir);
        // With a tail, count the records kept so far, to skip all but the last `tail` of them.
        let skip = match tail {
            None => 0,
            Some(tail) => {
                let mut stream = client
                    .logs(false)
                    .await
                    .map_err(|e| monitor_error(id, "reading the logs of", e))?;
                let mut total = 0usize;
                while let Some(Ok(_)) = stream.next().await {
                    total += 1;
                }
                total.saturating_sub(tail)
            }
        };
        let mut stream = client
            .logs(follow)
            .await
            .map_err(|e| monitor_error(id, "reading the logs of", e))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut seen = 0usize;
            loop {
                // A client that went away ends the follow at once, not at the next record.
                let record = tokio::select! {
                    () = tx.closed() => break,
                    next = stream.next() => match next {
                        Some(Ok(record)) => record,
                        _ => break,
                    },
                };
                seen += 1;
                if seen <= skip {
                    continue;
                }
                let line = LogLine {
                    timestamp: record.timestamp,
                    stream: match record.stream {
                        monitor::Stream::Stdout => "stdout",
                        monitor::Stream::Stderr => "stderr",
                        monitor::Stream::Monitor => "monitor",
                    }
                    .to_string(),
                    text: record.text,
                    partial: record.partial,
                };
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}
