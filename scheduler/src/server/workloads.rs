//! Changes to workloads: apply (create, update with a new revision, scale, configure), scale,
//! rollback and delete. The controllers carry them out; these only change desired state.

use super::views::{rollout, workload_view};
use super::{no_workload, ApiError};
use crate::api::{ApplyResult, RolloutStatus, WorkloadView};
use crate::controller::Daemon;
use crate::spec::{self, WorkloadSpec};
use crate::state::{now_rfc3339, sequence, Revision, State, WorkloadRecord, REVISIONS_KEPT};

/// Adds `spec` as the workload's next revision, running `image_digest` if it is known.
fn push_revision(
    state: &mut State,
    name: &str,
    spec: WorkloadSpec,
    image_digest: Option<String>,
) -> u64 {
    let w = state.workloads.get_mut(name).expect("workload exists");
    let revision = w.revisions.last().map_or(0, |r| r.revision) + 1;
    w.revisions.push(Revision {
        revision,
        created_at: now_rfc3339(),
        spec: spec.clone(),
        image_digest,
    });
    if w.revisions.len() > REVISIONS_KEPT {
        w.revisions.remove(0);
    }
    w.revision = revision;
    w.spec = spec;
    state.save_workload(name);
    revision
}

/// `apply`: validates the spec text and makes it the workload's desired state. The text is
/// parsed on a blocking thread: a large or odd document never stalls the daemon's async
/// workers (its size and depth are bounded too: [`spec::limits`]).
pub async fn apply(daemon: &Daemon, text: String, dry_run: bool) -> Result<ApplyResult, ApiError> {
    let (settings, records) =
        daemon.with(|s| (s.services.settings.clone(), s.services.records.clone()));
    let parsed = tokio::task::spawn_blocking(move || {
        let cluster = |spec: &spec::service::ServiceSpec| {
            crate::service::check_against(&settings, &records, spec)
        };
        spec::parse_object_against(&text, &cluster)
    })
    .await
    .map_err(|e| ApiError::bad_request(format!("reading the spec failed: {e}")))?;
    let object = parsed.map_err(|problems| {
        super::services::invalid(problems.list().iter().map(|p| p.to_string()).collect())
    })?;
    let mut spec = match object {
        spec::Object::Workload(spec) => *spec,
        spec::Object::Service(spec) => return super::services::apply(daemon, spec, dry_run),
    };
    let name = spec.name.clone();
    daemon.with(|s| {
        if let Some(why) = crate::controller::autoscale::pressure_refused(s, &spec) {
            return Err(ApiError::bad_request(format!(
                "the workload spec is invalid:\n  {why}"
            )));
        }
        if let (Some(w), Some(a)) = (s.workloads.get(&name), &spec.autoscale) {
            // Autoscaled already: `replicas` was only the starting point; the count the
            // autoscaler (or a `scale`) reached stays, within the new bounds.
            if w.spec.autoscale.is_some() {
                spec.replicas = w.spec.replicas.clamp(a.min, a.max);
            }
        }
        let action = match s.workloads.get(&name) {
            None => "created",
            Some(w) if w.deleting => {
                return Err(ApiError::conflict(format!(
                    "workload {name} is being deleted; apply it again once it is gone"
                )))
            }
            Some(w) if !w.spec.template_eq(&spec) => "updated",
            Some(w) if w.spec == spec => "unchanged",
            Some(w)
                if WorkloadSpec {
                    replicas: w.spec.replicas,
                    ..spec.clone()
                } == w.spec =>
            {
                "scaled"
            }
            Some(_) => "configured",
        };
        if dry_run {
            let revision = s
                .workloads
                .get(&name)
                .map_or(1, |w| w.revision + u64::from(action == "updated"));
            return Ok(ApplyResult {
                kind: "workload".into(),
                address: None,
                workload: name,
                revision,
                action: action.into(),
            });
        }
        if s.workloads.get(&name).is_some_and(|w| w.autoscale_paused) {
            let w = s.workloads.get_mut(&name).expect("exists");
            w.autoscale_paused = false;
            s.save_workload(&name);
            s.event(
                format!("workload/{name}"),
                "AutoscaleResumed",
                "apply resumes the autoscaling a `scale` paused".into(),
            );
        }
        let revision = match action {
            "created" => {
                // Instances left by a stored record that could not be read (see
                // `daemon::load`) keep their ids and count as older revisions.
                let left: Vec<(u64, u64)> = s
                    .instances_of(&name)
                    .map(|i| (sequence(&i.record.id), i.record.revision))
                    .collect();
                let next_seq = left.iter().map(|&(seq, _)| seq).max().unwrap_or(0) + 1;
                let revision = left.iter().map(|&(_, rev)| rev).max().unwrap_or(0) + 1;
                let record = WorkloadRecord::new(spec, revision, next_seq);
                s.workloads.insert(name.clone(), record);
                s.save_workload(&name);
                s.event(
                    format!("workload/{name}"),
                    "Created",
                    format!("revision {revision}"),
                );
                revision
            }
            "updated" => {
                let revision = push_revision(s, &name, spec, None);
                s.event(
                    format!("workload/{name}"),
                    "Updated",
                    format!("rolling out revision {revision}"),
                );
                revision
            }
            "unchanged" => s.workloads[&name].revision,
            _ => {
                // Same template: the current revision takes the new settings (replicas,
                // priority, update strategy, depends_on).
                let w = s.workloads.get_mut(&name).expect("exists");
                w.spec = spec.clone();
                if let Some(current) = w.revisions.last_mut() {
                    current.spec = spec;
                }
                let revision = w.revision;
                s.save_workload(&name);
                s.event(format!("workload/{name}"), "Configured", action.to_string());
                revision
            }
        };
        Ok(ApplyResult {
            kind: "workload".into(),
            address: None,
            workload: name,
            revision,
            action: action.into(),
        })
    })
}

/// `scale`: a new desired replica count.
pub fn scale(daemon: &Daemon, name: &str, replicas: u32) -> Result<WorkloadView, ApiError> {
    let max = spec::limits::MAX_REPLICAS;
    if replicas > max {
        return Err(ApiError::bad_request(format!(
            "{replicas} replicas is more than the maximum, {max}"
        )));
    }
    daemon.with(|s| {
        let w = s.workloads.get_mut(name).ok_or_else(|| no_workload(name))?;
        if w.deleting {
            return Err(ApiError::conflict(format!(
                "workload {name} is being deleted"
            )));
        }
        let from = w.spec.replicas;
        w.spec.replicas = replicas;
        if let Some(current) = w.revisions.last_mut() {
            current.spec.replicas = replicas;
        }
        s.save_workload(name);
        let paused = crate::controller::autoscale::pause(s, name);
        s.event(
            format!("workload/{name}"),
            "Scaled",
            if paused {
                format!("replicas {from} → {replicas}; autoscaling paused until the next apply")
            } else {
                format!("replicas {from} → {replicas}")
            },
        );
        Ok(workload_view(s, &s.workloads[name]))
    })
}

/// `rollout undo`: the template of `revision` (default: the one before the current) becomes a
/// new revision, keeping the current replica count.
pub fn rollback(
    daemon: &Daemon,
    name: &str,
    revision: Option<u64>,
) -> Result<RolloutStatus, ApiError> {
    daemon.with(|s| {
        let w = s.workloads.get(name).ok_or_else(|| no_workload(name))?;
        let target = match revision {
            Some(n) => w
                .revisions
                .iter()
                .find(|r| r.revision == n)
                .ok_or_else(|| {
                    let kept: Vec<String> =
                        w.revisions.iter().map(|r| r.revision.to_string()).collect();
                    ApiError::not_found(format!(
                        "workload {name} has no revision {n} (kept: {})",
                        kept.join(", ")
                    ))
                })?,
            None => w.revisions.iter().rev().nth(1).ok_or_else(|| {
                ApiError::conflict(format!(
                    "workload {name} has no earlier revision to roll back to"
                ))
            })?,
        };
        let from = target.revision;
        let spec = WorkloadSpec {
            replicas: w.spec.replicas,
            ..target.spec.clone()
        };
        if spec.template_eq(&w.spec) {
            return Err(ApiError::conflict(format!(
                "revision {from} is what workload {name} runs already"
            )));
        }
        // The restored revision runs the bytes it ran then, even if its tag moved since.
        let digest = target.image_digest.clone();
        let revision = push_revision(s, name, spec, digest);
        s.event(
            format!("workload/{name}"),
            "RolledBack",
            format!("revision {revision} restores the template of revision {from}"),
        );
        Ok(rollout(s, &s.workloads[name]))
    })
}

/// `delete workload`: its instances stop, then it is gone.
pub fn delete(daemon: &Daemon, name: &str) -> Result<WorkloadView, ApiError> {
    daemon.with(|s| {
        let w = s.workloads.get_mut(name).ok_or_else(|| no_workload(name))?;
        w.deleting = true;
        s.save_workload(name);
        s.event(
            format!("workload/{name}"),
            "Deleting",
            "stopping every instance".into(),
        );
        Ok(workload_view(s, &s.workloads[name]))
    })
}
