//! A private image registry for the pull tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a loopback port, with its storage, configuration, certificates
//! and log in a temporary directory, and images built offline from the busybox fixture and
//! pushed into it with `skopeo copy`.
//!
//! [`Registry::start`] serves HTTPS with a certificate from a test CA made by `mini-shim cert`
//! (the same commands the agents' mutual TLS uses) and, with [`Auth::Htpasswd`], asks for
//! basic auth checked against a bcrypt htpasswd file; [`Registry::start_plain`] serves plain
//! HTTP without auth (what an agent reaches only through `--insecure-registry`). The registry
//! process is killed and everything it stored removed on drop, even when the test fails.

use crate::{captured_output, free_port, mini_shim_ok, wait_until, ChildGuard, TempDir};
use mini_image::Digest;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the registry may take to answer after it was started.
const START: Duration = Duration::from_secs(30);

/// Who the registry lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Everyone.
    None,
    /// Basic auth with [`Registry::USER`] and [`Registry::PASSWORD`].
    Htpasswd,
}

/// A running registry.
pub struct Registry {
    dir: TempDir,
    port: u16,
    tls: bool,
    auth: Auth,
    _process: ChildGuard,
}

impl Registry {
    /// The user of [`Auth::Htpasswd`].
    pub const USER: &'static str = "mini";
    /// Its password.
    pub const PASSWORD: &'static str = "registry-secret";

    /// A registry serving HTTPS on 127.0.0.1 with a certificate from its own test CA.
    pub fn start(auth: Auth) -> Registry {
        Registry::launch(true, auth)
    }

    /// A registry serving plain HTTP without auth on 127.0.0.1.
    pub fn start_plain() -> Registry {
        Registry::launch(false, Auth::None)
    }

    fn launch(tls: bool, auth: Auth) -> Registry {
        let dir = TempDir::new("registry");
        let port = free_port();
        let pki = dir.path().join("pki");
        let mut http = json!({ "addr": format!("127.0.0.1:{port}") });
        if tls {
            let pki_dir = pki.to_str().expect("utf-8");
            mini_shim_ok(&["cert", "ca", "--dir", pki_dir]);
            mini_shim_ok(&[
                "cert",
                "issue",
                "--dir",
                pki_dir,
                "--name",
                "registry",
                "--server",
                "--san",
                "127.0.0.1",
            ]);
            // skopeo's --dest-cert-dir reads CAs as *.crt.
            let certs = dir.path().join("certs.d");
            std::fs::create_dir(&certs).expect("certs dir");
            std::fs::copy(pki.join("ca.pem"), certs.join("ca.crt")).expect("copy the CA");
            http["tls"] = json!({
                "certificate": pki.join("registry.pem"),
                "key": pki.join("registry-key.pem"),
            });
        }
        let mut config = json!({
            "version": 0.1,
            "log": { "level": "warn", "accesslog": { "disabled": true } },
            "storage": {
                "filesystem": { "rootdirectory": dir.path().join("data") },
                "delete": { "enabled": true },
            },
            "http": http,
        });
        if auth == Auth::Htpasswd {
            let hash = bcrypt::hash(Registry::PASSWORD, 4).expect("bcrypt");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{}:{hash}\n", Registry::USER)).expect("htpasswd");
            config["auth"] = json!({ "htpasswd": { "realm": "mini-tests", "path": file } });
        }
        // YAML is a superset of JSON: the registry reads this as its configuration file.
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config.to_string()).expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let process = ChildGuard::start(
            Command::new("docker-registry")
                .arg("serve")
                .arg(&config_file)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup"))
                .stderr(log),
        );
        let registry = Registry {
            dir,
            port,
            tls,
            auth,
            _process: process,
        };
        // Up once /v2/ answers at all: 200 without auth, 401 with.
        let up = wait_until(START, || {
            matches!(registry.v2_status().as_str(), "200" | "401")
        });
        assert!(up, "the registry did not come up: {}", registry.log());
        registry
    }

    /// The HTTP status of `GET /v2/` without credentials ("000" if nothing answers).
    fn v2_status(&self) -> String {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ]);
        if self.tls {
            c.arg("--cacert").arg(self.ca());
        }
        c.arg(format!("{}/v2/", self.url()));
        String::from_utf8_lossy(&captured_output(&mut c).stdout).into_owned()
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address())
    }

    /// The test CA's certificate (PEM) the registry's certificate is issued by.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("pki/ca.pem")
    }

    /// The registry's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A docker-style `config.json` (`auths`) with `password` for this registry, written to
    /// `path`.
    pub fn write_auth_file(&self, path: &Path, password: &str) {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", Registry::USER));
        let file = json!({ "auths": { self.address(): { "auth": auth } } });
        std::fs::write(path, file.to_string()).expect("auth file");
    }

    /// Pushes the image `layout` holds (its one manifest) as `repository:tag`
    /// (`test/busybox:1`) with `skopeo copy`; returns the full reference pushed.
    pub fn push(&self, layout: &Path, repository_tag: &str) -> String {
        let reference = format!("{}/{repository_tag}", self.address());
        let mut c = Command::new("skopeo");
        c.args(["--insecure-policy", "copy", "--quiet"]);
        if self.tls {
            c.arg("--dest-cert-dir")
                .arg(self.dir.path().join("certs.d"));
        } else {
            c.arg("--dest-tls-verify=false");
        }
        if self.auth == Auth::Htpasswd {
            c.arg("--dest-creds")
                .arg(format!("{}:{}", Registry::USER, Registry::PASSWORD));
        }
        c.arg(format!("oci:{}", layout.display()))
            .arg(format!("docker://{reference}"));
        let out = captured_output(&mut c);
        assert!(
            out.status.success(),
            "skopeo copy to {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        reference
    }

    /// The file the registry serves the blob `digest` from (to corrupt it).
    pub fn blob_file(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// An image built offline: an OCI layout directory with one manifest.
pub struct TestImage {
    /// The layout directory (skopeo's `oci:` source).
    pub layout: PathBuf,
    /// The manifest's digest: what a registry reports as the image's digest.
    pub manifest: Digest,
    /// The layer blobs' digests, base first.
    pub layers: Vec<Digest>,
}

/// Builds, under `dir` (a new directory), an OCI layout of the busybox fixture (one gzip
/// layer) plus a small layer holding `/etc/mini-image` with `marker`, so images
/// with different markers share their base layer and differ in their second.
pub fn busybox_image(dir: &Path, marker: &str) -> TestImage {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout dir");
    let put = |data: &[u8]| {
        let digest = Digest::sha256_of(data);
        std::fs::write(blobs.join(digest.hex()), data).expect("blob");
        (digest, data.len())
    };
    let tar_of = |root: &Path| {
        let out = captured_output(
            Command::new("tar")
                .args(["--numeric-owner", "-C"])
                .arg(root)
                .args(["-c", "."]),
        );
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let extra = dir.join("extra");
    std::fs::create_dir_all(extra.join("etc")).expect("extra layer dir");
    std::fs::write(extra.join("etc/mini-image"), marker).expect("marker");
    let gzip = |tar: &[u8]| {
        // gzip layers, as podman and skopeo push them: skopeo would compress plain tar
        // layers itself on the way to the registry, changing their digests.
        let plain = dir.join("layer.tar");
        std::fs::write(&plain, tar).expect("layer tar");
        let out = captured_output(Command::new("gzip").args(["-n", "-c"]).arg(&plain));
        assert!(
            out.status.success(),
            "gzip: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&plain).expect("remove the layer tar");
        out.stdout
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_descs = Vec::new();
    for tar in [tar_of(&crate::fixture_rootfs()), tar_of(&extra)] {
        diff_ids.push(Digest::sha256_of(&tar));
        let (digest, size) = put(&gzip(&tar));
        layer_descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest.as_str(), "size": size,
        }));
        layers.push(digest);
    }
    std::fs::remove_dir_all(&extra).expect("remove the extra layer dir");
    let config = json!({
        "architecture": mini_image_arch(), "os": "linux",
        "config": { "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids.iter().map(Digest::as_str).collect::<Vec<_>>() },
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.as_str(), "size": config_size,
        },
        "layers": layer_descs,
    });
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.as_str(), "size": manifest_size,
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    TestImage {
        layout: dir.to_path_buf(),
        manifest: manifest_digest,
        layers,
    }
}

/// This host's architecture in the image spec's (GOARCH) spelling.
fn mini_image_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
