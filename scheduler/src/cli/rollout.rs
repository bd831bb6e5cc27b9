//! `rollout status`: follows a rollout until it completes, as a progress bar on a terminal and
//! as one line per change otherwise.

use super::client::{encode, Client};
use super::Error;
use crate::api::RolloutStatus;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::time::{Duration, Instant};

/// How often the rollout is polled.
pub const POLL: Duration = Duration::from_millis(500);

/// Where progress shows.
enum View {
    /// A bar redrawn in place on the terminal.
    Bar(ProgressBar),
    /// A line whenever something changes; the last line written.
    Lines(Option<String>),
}

impl View {
    fn new(terminal: bool) -> View {
        if !terminal {
            return View::Lines(None);
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} updated and ready  {wide_msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        View::Bar(bar)
    }

    fn show(&mut self, s: &RolloutStatus) -> Result<(), Error> {
        match self {
            View::Bar(bar) => {
                bar.set_prefix(format!("{} revision {}", s.workload, s.revision));
                bar.set_length(u64::from(s.desired));
                bar.set_position(u64::from(s.updated_ready.min(s.desired)));
                bar.set_message(format!("{}: {}", s.state, s.message));
            }
            View::Lines(last) => {
                let line = progress_line(s);
                if last.as_deref() != Some(line.as_str()) {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{line}")?;
                    out.flush()?;
                    *last = Some(line);
                }
            }
        }
        Ok(())
    }

    fn close(self) {
        if let View::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// One line about a rollout under way: the updated instances (started, ready) and the old
/// ones (running, stopping) counted apart, as `kubectl rollout status` does.
pub fn progress_line(s: &RolloutStatus) -> String {
    format!(
        "Waiting for rollout of {} revision {} to finish: {} of {} updated, {} ready; old: {} running, {} stopping ({}: {})",
        s.workload,
        s.revision,
        s.updated,
        s.desired,
        s.updated_ready,
        s.old_running,
        s.old_stopping,
        s.state,
        s.message
    )
}

/// The line for a finished rollout.
pub fn done_line(s: &RolloutStatus) -> String {
    format!(
        "workload/{} successfully rolled out (revision {}, {} of {} ready)",
        s.workload, s.revision, s.updated_ready, s.desired
    )
}

/// Polls the rollout of `workload` every [`POLL`] until it is `complete`, showing progress on
/// stdout (a bar when `terminal`). Fails with [`Error::RolloutFailed`] as soon as an instance
/// of the revision cannot start; gives up with [`Error::RolloutTimeout`] once `timeout` has
/// passed without completion (`None`: never).
pub async fn watch(
    client: &Client,
    workload: &str,
    timeout: Option<Duration>,
    terminal: bool,
) -> Result<RolloutStatus, Error> {
    let path = format!("/v1/workloads/{}/rollout", encode(workload));
    let started = Instant::now();
    let mut view = View::new(terminal);
    loop {
        let status: RolloutStatus = match client.get(&path).await {
            Ok(s) => s,
            Err(e) => {
                view.close();
                return Err(e);
            }
        };
        if status.state == "complete" {
            view.close();
            return Ok(status);
        }
        if status.state == "failed" {
            view.close();
            return Err(Error::RolloutFailed {
                workload: workload.to_string(),
                message: status.message,
            });
        }
        if let Err(e) = view.show(&status) {
            view.close();
            return Err(e);
        }
        if let Some(after) = timeout.filter(|t| started.elapsed() >= *t) {
            view.close();
            return Err(Error::RolloutTimeout {
                workload: workload.to_string(),
                after,
                state: status.state,
                message: status.message,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str) -> RolloutStatus {
        RolloutStatus {
            workload: "web".into(),
            revision: 3,
            state: state.into(),
            desired: 3,
            updated: 2,
            updated_ready: 1,
            old: 2,
            old_running: 1,
            old_stopping: 1,
            message: "waiting for web-7 to turn ready".into(),
        }
    }

    #[test]
    fn lines_say_how_far_the_rollout_is() {
        assert_eq!(
            progress_line(&status("progressing")),
            "Waiting for rollout of web revision 3 to finish: 2 of 3 updated, 1 ready; old: 1 running, 1 stopping (progressing: waiting for web-7 to turn ready)"
        );
        let mut done = status("complete");
        done.updated_ready = 3;
        assert_eq!(
            done_line(&done),
            "workload/web successfully rolled out (revision 3, 3 of 3 ready)"
        );
    }

    #[test]
    fn timeouts_say_the_last_state() {
        let e = Error::RolloutTimeout {
            workload: "web".into(),
            after: Duration::from_secs(300),
            state: "stalled".into(),
            message: "0/3 nodes available: 3 insufficient resources".into(),
        };
        assert_eq!(
            e.to_string(),
            "rollout of web did not complete within 5m: stalled: 0/3 nodes available: 3 insufficient resources"
        );
    }
}
