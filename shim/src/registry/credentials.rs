//! Registry credentials from a docker-style `config.json` (what `docker login`, `podman
//! login --authfile` and `skopeo login` write): `{"auths": {"host[:port]": {"auth":
//! "base64(user:password)"}}}`, or `username` and `password` fields. The file is read at each
//! pull, so fixed credentials take effect without a restart; nothing of it is ever logged.

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The largest credentials file read.
const MAX_FILE: u64 = 1 << 20;

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The host part of an `auths` key: `https://index.docker.io/v1/` and `docker.io` name the
/// same registry.
fn host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.split('/').next().unwrap_or(key);
    match key {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

/// The credentials `file` holds for `registry` (as the reference names it), or anonymous
/// access when it holds none. The error names the file and what is wrong with it, never a
/// secret.
pub fn for_registry(file: &Path, registry: &str) -> Result<RegistryAuth, String> {
    let bad = |what: String| format!("registry credentials {}: {what}", file.display());
    let data = mini_run::input_file::read(file, MAX_FILE).map_err(|e| bad(e.to_string()))?;
    let config: ConfigFile = serde_json::from_slice(&data)
        .map_err(|_| bad("not a docker config.json with an `auths` object".into()))?;
    let Some(entry) = config.auths.iter().find(|(k, _)| host(k) == host(registry)) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let (key, entry) = entry;
    match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| bad(format!("auths.{key:?}.auth is not base64 of user:password")))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| bad(format!("auths.{key:?}.auth is not base64 of user:password")))?;
            Ok(RegistryAuth::Basic(user.to_string(), password.to_string()))
        }
        (None, Some(user), Some(password)) => {
            Ok(RegistryAuth::Basic(user.clone(), password.clone()))
        }
        _ => Err(bad(format!(
            "auths.{key:?} has neither `auth` nor `username` and `password`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (std::path::PathBuf, impl Drop) {
        struct Gone(std::path::PathBuf);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let p = std::env::temp_dir().join(format!(
            "mini-shim-auth-{}-{}.json",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&p, text).unwrap();
        (p.clone(), Gone(p))
    }

    #[test]
    fn auths_are_matched_by_host_and_decoded() {
        let (p, _g) = file(
            r#"{"auths": {"127.0.0.1:5000": {"auth": "bWluaTpwdw=="},
                "https://index.docker.io/v1/": {"username": "u", "password": "p"}}}"#,
        );
        assert!(matches!(for_registry(&p, "127.0.0.1:5000").unwrap(),
            RegistryAuth::Basic(u, pw) if u == "mini" && pw == "pw"));
        assert!(matches!(for_registry(&p, "docker.io").unwrap(),
            RegistryAuth::Basic(u, _) if u == "u"));
        assert!(matches!(
            for_registry(&p, "other:5000").unwrap(),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn a_broken_file_is_named_without_its_secrets() {
        let (p, _g) = file(r#"{"auths": {"h:1": {"auth": "not base64 secret!"}}}"#);
        let e = for_registry(&p, "h:1").unwrap_err();
        assert!(e.contains("not base64 of user:password"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }
}
