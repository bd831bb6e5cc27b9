//! Ending containers: `kill` (one signal), `stop` (a signal, then SIGKILL to every process
//! after a grace period), `wait`, and `delete` (which also removes the container's files).

use super::containers::{monitor_error, parse_signal};
use super::run::CGROUP_PARENT;
use super::{Agent, Error};
use crate::monitor;
use crate::protocol::{ContainerInfo, Status, StopRequest};
use std::path::Path;
use std::time::Duration;

impl Agent {
    /// `POST /v1/containers/{id}/kill`.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_kill(h, id, signal);
        }
        let signal = parse_signal(signal)?;
        self.running(id)
            .await?
            .kill(signal as i32, false)
            .await
            .map_err(|e| monitor_error(id, "signalling", e))
    }

    /// `POST /v1/containers/{id}/wait`: until the process ended.
    pub async fn wait(&self, id: &str) -> Result<ContainerInfo, Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_wait(h, id).await;
        }
        let dir = self.existing(id)?;
        if let monitor::MonitorStatus::Live { .. } = self.inspect(&dir).await? {
            monitor::Client::new(&dir)
                .wait()
                .await
                .map_err(|e| monitor_error(id, "waiting for", e))?;
        }
        self.info(id).await
    }

    /// `POST /v1/containers/{id}/stop`: the signal, then SIGKILL to every process of the
    /// container after the grace period.
    pub async fn stop(&self, id: &str, request: StopRequest) -> Result<ContainerInfo, Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_stop(h, id, &request);
        }
        let signal = parse_signal(request.signal.as_deref().unwrap_or("SIGTERM"))?;
        let grace = Duration::from_secs(request.timeout_secs.unwrap_or(10));
        let info = self.info(id).await?;
        if info.status != Status::Running {
            return Ok(info); // nothing runs: already stopped
        }
        let client = monitor::Client::new(&self.existing(id)?);
        let map = |e| monitor_error(id, "stopping", e);
        client
            .kill(signal as i32, false)
            .await
            .or_else(ignore_not_running)
            .map_err(map)?;
        if tokio::time::timeout(grace, client.wait()).await.is_err() {
            kill_all(&client).await.map_err(map)?;
        }
        self.log(&format!("stop {id}: stopped"));
        self.info(id).await
    }

    /// `DELETE /v1/containers/{id}`: refuses a running container unless `force` (then it is
    /// killed first), and removes everything of it.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_delete(h, id, force);
        }
        let dir = self.existing(id)?;
        let _claim = self.claim(id)?;
        let info = self.info(id).await?;
        if info.status == Status::Running {
            if !force {
                return Err(Error::Conflict(format!(
                    "container {id:?} is running; stop it first or delete with ?force=true"
                )));
            }
            kill_all(&monitor::Client::new(&dir))
                .await
                .map_err(|e| monitor_error(id, "killing", e))?;
        }
        // The monitor exits once the container is removed from the runtime and its clients
        // have their answers.
        let gone = async {
            while let Ok(monitor::MonitorStatus::Live { .. }) = self.inspect(&dir).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(MONITOR_EXIT, gone).await.is_err() {
            return Err(Error::Monitor(format!(
                "the monitor of {id:?} did not exit after its container; try again"
            )));
        }
        // Whatever a dead monitor left in the runtime goes too.
        let d = dir.clone();
        let _ = tokio::task::spawn_blocking(move || monitor::adopt(&d)).await;
        self.remove_files(&dir).await?;
        // The agents' shared cgroup parent goes with the last container in it.
        let parent =
            tokio::task::spawn_blocking(|| mini_cgroups::remove_if_empty(Path::new(CGROUP_PARENT)));
        if let Ok(Err(e)) = parent.await {
            self.log(&format!("delete {id}: removing {CGROUP_PARENT}: {e}"));
        }
        self.log(&format!("delete {id}: removed"));
        Ok(())
    }
}

/// How long a monitor may take to exit after its container did.
const MONITOR_EXIT: Duration = Duration::from_secs(30);

/// A signal that arrives after the container exited is no failure for stop and delete.
fn ignore_not_running(e: monitor::Error) -> Result<(), monitor::Error> {
    match e {
        monitor::Error::NotRunning(_) => Ok(()),
        e => Err(e),
    }
}

/// SIGKILL to every process of the container, then waits until it exited.
async fn kill_all(client: &monitor::Client) -> Result<(), monitor::Error> {
    client
        .kill(libc::SIGKILL, true)
        .await
        .or_else(ignore_not_running)?;
    client.wait().await.map(drop)
}
