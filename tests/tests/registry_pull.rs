//! Images from a real registry (Debian's docker-registry with TLS from a test CA and htpasswd
//! basic auth, or plain HTTP), pulled by a real mini-shim agent: a container runs from
//! `127.0.0.1:PORT/test/busybox:1`, a second one of the same image pulls nothing, wrong
//! credentials fail clearly and fixed ones work without a restart, a corrupted blob in the
//! registry's storage is refused and nothing of it is kept, and a plain-HTTP registry is
//! reached only when the agent lists it as insecure.

use mini_tests::registry::{busybox_image, Auth, Registry, TestImage};
use mini_tests::{mini_shim_bin, unique, wait_until, Answer, TempDir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const START: Duration = Duration::from_secs(30);

/// An agent in development mode on a unix socket, with registry flags; its containers are
/// force-deleted and the process killed on drop.
struct Agent {
    state: TempDir,
    child: Child,
}

impl Agent {
    fn start(registry_flags: &[String]) -> Agent {
        let state = TempDir::new("registry-agent");
        let socket = state.path().join("agent.sock");
        let child = Command::new(mini_shim_bin())
            .args(["agent", "--dev", "--listen"])
            .arg(format!("unix:{}", socket.display()))
            .arg("--state-dir")
            .arg(state.path().join("state"))
            .arg("--node-name")
            .arg(unique("pull"))
            .args(registry_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state.path().join("agent.log")).unwrap())
            .spawn()
            .expect("spawn the agent");
        let agent = Agent { state, child };
        assert!(
            wait_until(START, || agent
                .try_request("GET", "/v1/version", None)
                .is_some_and(|a| a.status == 200)),
            "the agent did not come up: {}",
            agent.log()
        );
        agent
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("agent.log")).unwrap_or_default()
    }

    fn images(&self) -> PathBuf {
        self.state.path().join("state/images")
    }

    fn try_request(&self, method: &str, path: &str, body: Option<&Value>) -> Option<Answer> {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "120", "-X", method, "--unix-socket"])
            .arg(self.state.path().join("agent.sock"))
            .args(["-w", "\n%{http_code}"])
            .arg(format!("http://agent{path}"));
        if let Some(body) = body {
            c.args(["-H", "content-type: application/json", "--data-binary"])
                .arg(body.to_string());
        }
        let out = c.output().expect("run curl");
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n')?;
        Some(Answer {
            status: status.trim().parse().ok()?,
            body: body.to_string(),
        })
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.try_request(method, path, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer; agent log: {}", self.log()))
    }

    /// `POST /v1/containers` of `reference`, running `script`.
    fn run(&self, id: &str, reference: &str, pull: Option<&str>, script: &str) -> Answer {
        let mut source = json!({ "reference": reference });
        if let Some(p) = pull {
            source["pull"] = json!(p);
        }
        let body = json!({
            "id": id,
            "source": { "registry": source },
            "process": { "args": ["sh", "-c", script] },
        });
        self.request("POST", "/v1/containers", Some(&body))
    }

    /// [`Agent::run`] that must succeed; returns the container's info.
    fn run_ok(&self, id: &str, reference: &str, pull: Option<&str>, script: &str) -> Value {
        let a = self.run(id, reference, pull, script);
        assert_eq!(a.status, 201, "{a:?}; agent log: {}", self.log());
        a.json()
    }

    /// What `/etc/mini-image` says in running container `id` (the image's marker).
    fn marker(&self, id: &str) -> String {
        let exec = json!({ "args": ["cat", "/etc/mini-image"] });
        let a = self.request("POST", &format!("/v1/containers/{id}/exec"), Some(&exec));
        assert_eq!(a.status, 200, "{a:?}");
        a.json()["stdout"].as_str().unwrap_or_default().to_string()
    }

    /// The value of a metric without labels.
    fn metric(&self, name: &str) -> f64 {
        let text = self.request("GET", "/metrics", None).body;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
            .trim()
            .parse()
            .expect("a number")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(list) = self.try_request("GET", "/v1/containers", None) {
            if let Some(all) = serde_json::from_str::<Value>(&list.body)
                .ok()
                .and_then(|v| v["containers"].as_array().cloned())
            {
                for c in all {
                    let id = c["id"].as_str().unwrap_or_default();
                    let path = format!("/v1/containers/{id}?force=true");
                    let _ = self.try_request("DELETE", &path, None);
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flags(registry: &Registry, auth_file: Option<&Path>) -> Vec<String> {
    let mut f = vec![
        "--registry-ca".to_string(),
        registry.ca().display().to_string(),
    ];
    if let Some(file) = auth_file {
        f.push("--registry-auth".into());
        f.push(file.display().to_string());
    }
    f
}

/// Files directly in `dir` (none if it does not exist), recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn pushed(registry: &Registry, dir: &TempDir, marker: &str, tag: &str) -> (String, TestImage) {
    let image = busybox_image(&dir.path().join(marker), marker);
    let reference = registry.push(&image.layout, tag);
    (reference, image)
}

/// A registry with basic auth holding `test/busybox:1` (marker `marker`), and an agent whose
/// credentials file gives `password`.
struct Authenticated {
    registry: Registry,
    work: TempDir,
    reference: String,
    image: TestImage,
    auth: PathBuf,
    agent: Agent,
}

fn authenticated(marker: &str, password: &str) -> Authenticated {
    let registry = Registry::start(Auth::Htpasswd);
    let work = TempDir::new("registry-images");
    let (reference, image) = pushed(&registry, &work, marker, "test/busybox:1");
    let auth = work.path().join("auth.json");
    registry.write_auth_file(&auth, password);
    let agent = Agent::start(&flags(&registry, Some(&auth)));
    Authenticated {
        registry,
        work,
        reference,
        image,
        auth,
        agent,
    }
}

#[test]
fn a_registry_image_runs_and_a_second_container_of_it_pulls_nothing() {
    let Authenticated {
        registry,
        work: _work,
        reference,
        image,
        agent,
        ..
    } = authenticated("one", Registry::PASSWORD);

    let a = agent.run_ok("first", &reference, None, "sleep 600");
    assert_eq!(a["image_digest"], image.manifest.as_str(), "{a}");
    assert_eq!(agent.marker("first"), "one");
    // The config and both layers, each downloaded once and verified.
    assert_eq!(agent.metric("mini_shim_image_pull_blobs_total"), 3.0);
    assert_eq!(agent.metric("mini_shim_image_pulls_total"), 1.0);
    let bytes = agent.metric("mini_shim_image_pull_bytes_total");
    assert!(bytes > 0.0);

    // The same image again (if-not-present, the default for a tag other than latest): the
    // store has it, the registry is not asked.
    agent.run_ok("second", &reference, None, "sleep 600");
    assert_eq!(agent.marker("second"), "one");
    assert_eq!(agent.metric("mini_shim_image_pulls_total"), 1.0);
    assert_eq!(agent.metric("mini_shim_image_pull_bytes_total"), bytes);

    // `always` asks for the manifest again, but fetches no blob the node holds.
    agent.run_ok("third", &reference, Some("always"), "sleep 600");
    assert_eq!(agent.metric("mini_shim_image_pulls_total"), 2.0);
    assert_eq!(agent.metric("mini_shim_image_pull_bytes_total"), bytes);

    // `never` with an image the node lacks: a clear refusal, nothing fetched.
    let missing = format!("{}/test/busybox:absent", registry.address());
    let d = agent.run("fourth", &missing, Some("never"), "true");
    assert_eq!(d.status, 422, "{d:?}");
    assert!(d.error_message().contains("pull policy is never"), "{d:?}");
}

#[test]
fn wrong_credentials_fail_clearly_and_fixed_ones_work_without_a_restart() {
    let Authenticated {
        registry,
        work: _work,
        reference,
        auth,
        agent,
        ..
    } = authenticated("creds", "not-the-password");

    let a = agent.run("c1", &reference, None, "sleep 600");
    assert_eq!(a.status, 422, "{a:?}");
    let message = a.error_message();
    assert!(message.contains("unauthorized"), "{message}");
    assert!(message.contains("--registry-auth"), "{message}");
    assert!(!message.contains("not-the-password"), "{message}");
    assert!(!agent.log().contains("not-the-password"), "{}", agent.log());
    assert_eq!(agent.metric("mini_shim_image_pull_failures_total"), 1.0);
    assert_eq!(agent.request("GET", "/v1/containers/c1", None).status, 404);

    registry.write_auth_file(&auth, Registry::PASSWORD);
    agent.run_ok("c1", &reference, None, "sleep 600");
}

#[test]
fn a_corrupted_blob_is_refused_and_nothing_of_it_is_kept() {
    let registry = Registry::start(Auth::None);
    let work = TempDir::new("registry-images");
    let (reference, image) = pushed(&registry, &work, "corrupt", "test/busybox:1");
    // The marker layer, same length, one byte in the middle flipped: served as it is stored.
    let blob = registry.blob_file(&image.layers[1]);
    let mut data = std::fs::read(&blob).expect("the stored blob");
    let at = data.len() / 2;
    data[at] ^= 0xff;
    std::fs::write(&blob, &data).expect("corrupt the blob");
    let agent = Agent::start(&flags(&registry, None));

    let a = agent.run("bad", &reference, None, "sleep 600");
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.error_message().contains("digest mismatch"), "{a:?}");
    assert_eq!(agent.request("GET", "/v1/containers/bad", None).status, 404);
    let images = agent.images();
    let kept: Vec<PathBuf> = files_under(&images.join("blobs"))
        .into_iter()
        .filter(|p| p.ends_with(image.layers[1].hex()))
        .collect();
    assert!(kept.is_empty(), "the corrupt blob was kept: {kept:?}");
    assert!(
        files_under(&images.join("tmp")).is_empty(),
        "temporary files left"
    );
    assert!(
        files_under(&images.join("images")).is_empty(),
        "an image record was written"
    );
}

#[test]
fn a_plain_http_registry_is_reached_only_when_listed_as_insecure() {
    let registry = Registry::start_plain();
    let work = TempDir::new("registry-images");
    let image = busybox_image(&work.path().join("plain"), "plain");
    let reference = registry.push(&image.layout, "test/busybox:1");

    let strict = Agent::start(&[]);
    let a = strict.run("c1", &reference, None, "sleep 600");
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.error_message().contains("unreachable"), "{a:?}");
    drop(strict);

    let insecure = Agent::start(&["--insecure-registry".into(), registry.address()]);
    insecure.run_ok("c1", &reference, None, "sleep 600");
    assert_eq!(insecure.marker("c1"), "plain");
}
