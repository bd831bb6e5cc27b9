//! Values of config.json that parse but that config.md calls invalid, or that this runtime
//! cannot apply: checked before anything is created, because "runtimes MUST generate an error
//! when invalid or unsupported values are encountered" (config.md, Valid values). Also the one
//! deprecated form the spec still asks runtimes to accept: relative mount destinations.

use oci_spec::runtime::{Hook, Mount, Spec};
use std::path::{Path, PathBuf};

/// Checks ociVersion, the hooks, process.env, the security labels and the annotations.
pub fn validate(spec: &Spec) -> Result<(), String> {
    oci_version(spec.version())?;
    if let Some(h) = spec.hooks() {
        for (kind, list) in [
            ("prestart", h.prestart()),
            ("createRuntime", h.create_runtime()),
            ("createContainer", h.create_container()),
            ("startContainer", h.start_container()),
            ("poststart", h.poststart()),
            ("poststop", h.poststop()),
        ] {
            for (i, hook) in list.iter().flatten().enumerate() {
                check_hook(&format!("hooks.{kind}[{i}]"), hook)?;
            }
        }
    }
    if let Some(p) = spec.process() {
        crate::identity::check_ids(p.user(), "process.user")?;
        for e in p.env().iter().flatten() {
            if e.split_once('=').is_none_or(|(name, _)| name.is_empty()) {
                return Err(format!(
                    "process.env entry {e:?} is not NAME=value: give every variable a name and an '='"
                ));
            }
        }
        // The features document reports both as unsupported; running without them would run
        // the process unconfined.
        if p.apparmor_profile()
            .as_deref()
            .is_some_and(|a| !a.is_empty())
        {
            return Err(
                "process.apparmorProfile is set but mini-run does not support AppArmor: remove it"
                    .into(),
            );
        }
        if p.selinux_label().as_deref().is_some_and(|l| !l.is_empty()) {
            return Err(
                "process.selinuxLabel is set but mini-run does not support SELinux: remove it"
                    .into(),
            );
        }
    }
    if spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(""))
    {
        return Err("annotations has an empty key: keys must not be empty".into());
    }
    Ok(())
}

/// ociVersion: SemVer 2.0.0 and, since the spec is compatible only within a major version,
/// major version 1. An absent (empty) version is accepted, as runc does.
fn oci_version(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if !is_semver(v) {
        return Err(format!(
            "ociVersion {v:?} is not a SemVer 2.0.0 version such as \"1.0.2\""
        ));
    }
    if !v.starts_with("1.") {
        return Err(format!(
            "ociVersion {v:?} is not supported: mini-run implements the 1.x runtime spec"
        ));
    }
    Ok(())
}

/// Whether `v` is MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] as SemVer 2.0.0 defines it.
fn is_semver(v: &str) -> bool {
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let identifier =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            p.split('.').all(|id| {
                identifier(id) && (!id.bytes().all(|b| b.is_ascii_digit()) || numeric(id))
            })
        })
        && build.is_none_or(|b| b.split('.').all(identifier))
}

fn check_hook(name: &str, hook: &Hook) -> Result<(), String> {
    if !hook.path().is_absolute() {
        return Err(format!(
            "{name}.path {:?} must be an absolute path",
            hook.path()
        ));
    }
    if hook.timeout().is_some_and(|t| t <= 0) {
        return Err(format!(
            "{name}.timeout must be greater than zero (omit it for no timeout)"
        ));
    }
    Ok(())
}

/// Makes relative mount destinations absolute under "/" (config.md: deprecated, but "MUST be
/// interpreted as relative to /"); returns the destinations it rewrote, for a warning.
pub fn absolute_mount_destinations(mounts: &mut [Mount]) -> Vec<PathBuf> {
    let mut rewritten = Vec::new();
    for m in mounts.iter_mut() {
        if !m.destination().is_absolute() {
            rewritten.push(m.destination().clone());
            let abs = Path::new("/").join(m.destination());
            m.set_destination(abs);
        }
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_versions_are_told_from_others() {
        for ok in ["1.0.2", "1.0.2-dev", "1.2.0+build.7", "0.1.0", "1.0.0-rc.1"] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "1.0", "1", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "x",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
        assert!(oci_version("2.0.0").is_err());
        assert!(oci_version("").is_ok());
    }

    #[test]
    fn relative_mount_destinations_become_absolute() {
        let mut mounts = vec![
            Mount::default(),
            oci_spec::runtime::MountBuilder::default()
                .destination("/abs")
                .build()
                .unwrap(),
        ];
        mounts[0].set_destination(PathBuf::from("data/x"));
        assert_eq!(
            absolute_mount_destinations(&mut mounts),
            vec![PathBuf::from("data/x")]
        );
        assert_eq!(mounts[0].destination(), Path::new("/data/x"));
        assert_eq!(mounts[1].destination(), Path::new("/abs"));
    }
}
