//! Pulling an image into the agent's store.
//!
//! The manifest is fetched (an index or Docker manifest list is resolved to this node's
//! platform, `linux/<arch>`) and its bytes checked against the digest that names them; then the
//! config and every layer the store does not hold yet (by `diff_id`) are fetched as blobs into
//! the blob cache `<store>/blobs/<alg>/<hex>`:
//!
//! - a blob streams into `<store>/tmp/<pid>-blob-<n>/data` while it is hashed and counted; a
//!   body longer than its descriptor's size is cut off at once, a shorter one or one that does
//!   not hash to its digest is refused and deleted; only a verified blob is renamed into the
//!   cache, so the cache never holds a partial or corrupt blob (a killed agent leaves only its
//!   temporary directory, which the store removes when it is next opened);
//! - pulls that need the same blob at once wait for one download (one lock per digest);
//! - the image is then imported from a private image layout (the manifest, hard links to the
//!   cached blobs) by mini-image, which checks every digest again while it unpacks.

use super::{credentials, reference};
use crate::protocol::PullPolicy;
use futures_util::StreamExt;
use mini_image::{Digest, Image, Store};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest manifest, index or image config accepted (what mini-image reads as JSON).
pub const MAX_JSON: u64 = 4 << 20;

/// The media types asked for: OCI and Docker v2 manifests and indexes.
const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

static TEMP: AtomicU64 = AtomicU64::new(0);

/// How the agent reaches registries (`mini-shim agent` flags).
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// A docker-style `config.json` with credentials (`--registry-auth`).
    pub auth_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted besides the system's (`--registry-ca`).
    pub ca_files: Vec<PathBuf>,
    /// Registries (`host[:port]`) reached over plain HTTP (`--insecure-registry`).
    pub insecure: Vec<String>,
}

/// Why a pull failed; each renders as one line naming the image and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The reference is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The registry has no such image (or none for this platform), or the pull policy forbids
    /// fetching one the node lacks.
    #[error("{0}")]
    NotFound(String),
    /// The registry refused the credentials (or their absence).
    #[error("{0}")]
    Unauthorized(String),
    /// Content did not match the digest or size that names it.
    #[error("{0}")]
    DigestMismatch(String),
    /// The registry could not be reached (connection, TLS, timeout).
    #[error("{0}")]
    Unreachable(String),
    /// Anything else: the registry's answer or the store failed.
    #[error("{0}")]
    Failed(String),
}

impl PullError {
    /// The one word `describe` and the metrics use: `not_found`, `unauthorized`,
    /// `digest_mismatch`, `unreachable`, `invalid`, `failed`.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::Invalid(_) => "invalid",
            PullError::NotFound(_) => "not_found",
            PullError::Unauthorized(_) => "unauthorized",
            PullError::DigestMismatch(_) => "digest_mismatch",
            PullError::Unreachable(_) => "unreachable",
            PullError::Failed(_) => "failed",
        }
    }
}

/// What pulls did, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Pulls that contacted a registry and succeeded.
    pub pulls: AtomicU64,
    /// Pulls that failed.
    pub failures: AtomicU64,
    /// Blobs downloaded (and verified).
    pub blobs: AtomicU64,
    /// Bytes of verified blobs downloaded.
    pub bytes: AtomicU64,
}

/// The agent's puller: its options, the downloads under way, its counters.
#[derive(Default)]
pub struct Puller {
    options: RegistryOptions,
    /// One lock per blob digest: a second pull of a blob waits for the first.
    downloads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What pulls did.
    pub counters: Counters,
}

impl Puller {
    /// A puller for `options`.
    pub fn new(options: RegistryOptions) -> Puller {
        Puller {
            options,
            ..Puller::default()
        }
    }

    /// The image `text` names, from the store at `store_dir` or pulled into it, as `policy`
    /// (default [`PullPolicy::default_for`]) says. Errors name the image and the node.
    pub async fn ensure(
        &self,
        store_dir: &Path,
        text: &str,
        policy: Option<PullPolicy>,
        node: &str,
    ) -> Result<Image, PullError> {
        let reference = reference::parse(text).map_err(PullError::Invalid)?;
        let policy = policy.unwrap_or_else(|| PullPolicy::default_for(text));
        let store = blocking({
            let dir = store_dir.to_path_buf();
            move || Store::open(dir).map_err(|e| PullError::Failed(e.to_string()))
        })
        .await?;
        let local = blocking({
            let (store, reference) = (store.clone(), reference.clone());
            move || Ok(local_image(&store, &reference))
        })
        .await?;
        match (policy, local) {
            (PullPolicy::Never, None) => Err(PullError::NotFound(format!(
                "image {text} is not on node {node} and its pull policy is never: pull it there or use if-not-present"
            ))),
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some(image)) => Ok(image),
            _ => match self.pull(&store, &reference).await {
                Ok(image) => {
                    self.counters.pulls.fetch_add(1, Ordering::Relaxed);
                    Ok(image)
                }
                Err(e) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    Err(with_context(e, text, node))
                }
            },
        }
    }

    fn client(&self) -> Result<Client, PullError> {
        // reqwest is built without a default crypto provider (no aws-lc); use ring, as the
        // agent's own TLS does. Fails only when one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::new();
        for file in &self.options.ca_files {
            let data = mini_run::input_file::read(file, 1 << 20)
                .map_err(|e| PullError::Failed(format!("--registry-ca {}: {e}", file.display())))?;
            roots.push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.options.insecure.clone()),
            extra_root_certificates: roots,
            platform_resolver: Some(Box::new(oci_client::client::current_platform_resolver)),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        Client::try_from(config)
            .map_err(|e| PullError::Failed(format!("setting up the registry client: {e}")))
    }

    fn auth(&self, reference: &Reference) -> Result<RegistryAuth, PullError> {
        match &self.options.auth_file {
            Some(file) => credentials::for_registry(file, reference.registry())
                .map_err(PullError::Unauthorized),
            None => Ok(RegistryAuth::Anonymous),
        }
    }

    async fn pull(&self, store: &Store, reference: &Reference) -> Result<Image, PullError> {
        let client = self.client()?;
        let auth = self.auth(reference)?;
        let (manifest_bytes, manifest_digest) = fetch_manifest(&client, reference, &auth).await?;
        let manifest = match parse_manifest(&manifest_bytes)? {
            OciManifest::Image(m) => m,
            OciManifest::ImageIndex(index) => {
                let entry = oci_client::client::current_platform_resolver(&index.manifests)
                    .ok_or_else(|| {
                        let platforms: Vec<String> = index
                            .manifests
                            .iter()
                            .filter_map(|m| m.platform.as_ref().map(|p| p.to_string()))
                            .collect();
                        PullError::NotFound(format!(
                            "the image index has no manifest for this node's platform (it has {})",
                            if platforms.is_empty() {
                                "none named".into()
                            } else {
                                platforms.join(", ")
                            }
                        ))
                    })?;
                let platform_ref = reference.clone_with_digest(entry.clone());
                let (bytes, digest) = fetch_manifest(&client, &platform_ref, &auth).await?;
                let OciManifest::Image(m) = parse_manifest(&bytes)? else {
                    return Err(PullError::Failed(format!(
                        "the index entry {entry} is another index, not an image manifest"
                    )));
                };
                return self
                    .fetch_and_import(store, &client, reference, (bytes, digest, m))
                    .await;
            }
        };
        self.fetch_and_import(
            store,
            &client,
            reference,
            (manifest_bytes, manifest_digest, manifest),
        )
        .await
    }

    async fn fetch_and_import(
        &self,
        store: &Store,
        client: &Client,
        reference: &Reference,
        (bytes, digest, manifest): (bytes::Bytes, Digest, OciImageManifest),
    ) -> Result<Image, PullError> {
        if manifest.config.size < 0 || manifest.config.size as u64 > MAX_JSON {
            return Err(PullError::Failed(format!(
                "the image config is {} bytes (at most {MAX_JSON})",
                manifest.config.size
            )));
        }
        let config_path = self
            .blob(store, client, reference, &manifest.config)
            .await?;
        let config_data = std::fs::read(&config_path)
            .map_err(|e| PullError::Failed(format!("reading the image config: {e}")))?;
        let config: serde_json::Value = serde_json::from_slice(&config_data)
            .map_err(|e| PullError::Failed(format!("the image config is not JSON: {e}")))?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers.len() {
            return Err(PullError::Failed(format!(
                "the manifest lists {} layers but the config {} diff_ids",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let have = {
            let store = store.clone();
            blocking(move || store.layers().map_err(|e| PullError::Failed(e.to_string()))).await?
        };
        // Layers the store holds unpacked are not fetched; the rest in parallel.
        let wanted: Vec<&OciDescriptor> = manifest
            .layers
            .iter()
            .zip(&diff_ids)
            .filter(|(_, diff_id)| !have.contains(diff_id))
            .map(|(d, _)| d)
            .collect();
        // Owned futures in a Vec (a stream of closures over borrows is not provably `Send`).
        let mut downloads = Vec::with_capacity(wanted.len());
        for desc in &wanted {
            downloads.push(self.blob(store, client, reference, desc));
        }
        let fetched = futures_util::future::join_all(downloads).await;
        let mut blobs = vec![(
            Digest::parse(&manifest.config.digest).map_err(invalid)?,
            config_path,
        )];
        for (desc, path) in wanted.iter().zip(fetched) {
            blobs.push((Digest::parse(&desc.digest).map_err(invalid)?, path?));
        }
        let name = reference::store_name(reference);
        let store = store.clone();
        blocking(move || import(&store, &name, &bytes, &digest, &blobs)).await
    }

    /// The verified blob of `desc` in the cache, downloaded if it is not there yet.
    async fn blob(
        &self,
        store: &Store,
        client: &Client,
        reference: &Reference,
        desc: &OciDescriptor,
    ) -> Result<PathBuf, PullError> {
        let digest = Digest::parse(&desc.digest).map_err(invalid)?;
        let size = u64::try_from(desc.size).map_err(|_| {
            PullError::Failed(format!("blob {digest}: negative size {}", desc.size))
        })?;
        let cached = store.root().join("blobs").join(digest.rel_path());
        let lock = self
            .downloads
            .lock()
            .expect("downloads")
            .entry(digest.to_string())
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        if cached.exists() {
            return Ok(cached);
        }
        let temp = store.root().join("tmp").join(format!(
            "{}-blob-{}",
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self
            .download(client, reference, desc, &digest, size, &temp, &cached)
            .await;
        let _ = std::fs::remove_dir_all(&temp);
        self.downloads
            .lock()
            .expect("downloads")
            .remove(digest.as_str());
        result.map(|()| cached)
    }

    /// Streams the blob into `temp/data`, verifies it, renames it to `cached`.
    #[allow(clippy::too_many_arguments)]
    async fn download(
        &self,
        client: &Client,
        reference: &Reference,
        desc: &OciDescriptor,
        digest: &Digest,
        size: u64,
        temp: &Path,
        cached: &Path,
    ) -> Result<(), PullError> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            PullError::Failed(format!("{what} {}: {e}", p.display()))
        };
        mini_run::private_files::create_dir(temp).map_err(|e| io("creating", temp, e))?;
        let file_path = temp.join("data");
        let mut file =
            std::fs::File::create(&file_path).map_err(|e| io("creating", &file_path, e))?;
        let mut stream = client
            .pull_blob_stream(reference, desc)
            .await
            .map_err(|e| classify(e, &format!("blob {digest}")))?;
        let mut hasher = mini_image::Hasher::new(digest.algorithm());
        let mut received: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if e.to_string().contains("Invalid digest") {
                    PullError::DigestMismatch(format!("blob {digest}: {e}"))
                } else {
                    PullError::Unreachable(format!("downloading blob {digest}: {e}"))
                }
            })?;
            received += chunk.len() as u64;
            if received > size {
                return Err(PullError::DigestMismatch(format!(
                    "blob {digest}: the registry sent more than the {size} bytes its descriptor names"
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| io("writing", &file_path, e))?;
        }
        if received != size {
            return Err(PullError::DigestMismatch(format!(
                "blob {digest}: the registry sent {received} of its {size} bytes"
            )));
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(PullError::DigestMismatch(format!(
                "blob {digest}: the content hashes to {actual}"
            )));
        }
        file.sync_all().map_err(|e| io("syncing", &file_path, e))?;
        let parent = cached.parent().expect("blob path has a parent");
        mini_run::private_files::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
        std::fs::rename(&file_path, cached).map_err(|e| io("moving the blob to", cached, e))?;
        self.counters.blobs.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }
}

/// The image `reference` names if the store holds it: by digest when it has one, else by
/// name.
fn local_image(store: &Store, reference: &Reference) -> Option<Image> {
    match reference.digest() {
        Some(digest) => store.image(digest).ok(),
        None => store.image(&reference::store_name(reference)).ok(),
    }
}

/// The manifest's bytes and digest, checked against the digest the reference or the registry
/// names.
async fn fetch_manifest(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
) -> Result<(bytes::Bytes, Digest), PullError> {
    let (bytes, digest) = client
        .pull_manifest_raw(reference, auth, ACCEPT)
        .await
        .map_err(|e| classify(e, "the manifest"))?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(PullError::Failed(format!(
            "the manifest is {} bytes (at most {MAX_JSON})",
            bytes.len()
        )));
    }
    let expected = Digest::parse(reference.digest().unwrap_or(&digest)).map_err(invalid)?;
    let actual = Digest::sha256_of(&bytes);
    if expected.algorithm() == actual.algorithm() && actual != expected {
        return Err(PullError::DigestMismatch(format!(
            "the manifest hashes to {actual}, not {expected}"
        )));
    }
    Ok((bytes, expected))
}

fn parse_manifest(bytes: &[u8]) -> Result<OciManifest, PullError> {
    serde_json::from_slice(bytes)
        .map_err(|e| PullError::Failed(format!("the registry's manifest does not parse: {e}")))
}

/// Writes an image layout holding the manifest and links to the cached blobs in a staging
/// directory of the store and imports it as `name`.
fn import(
    store: &Store,
    name: &str,
    manifest: &[u8],
    digest: &Digest,
    blobs: &[(Digest, PathBuf)],
) -> Result<Image, PullError> {
    let failed = |e: std::io::Error| PullError::Failed(format!("writing the pulled image: {e}"));
    let layout = store.root().join("tmp").join(format!(
        "{}-pull-{}",
        std::process::id(),
        TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _remove = Remove(&layout);
    let blob_dir = |d: &Digest| layout.join("blobs").join(d.rel_path());
    std::fs::create_dir_all(blob_dir(digest).parent().expect("parent")).map_err(failed)?;
    std::fs::write(blob_dir(digest), manifest).map_err(failed)?;
    for (d, path) in blobs {
        let dest = blob_dir(d);
        std::fs::create_dir_all(dest.parent().expect("parent")).map_err(failed)?;
        match std::fs::hard_link(path, &dest) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            other => other.map_err(failed)?,
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type(manifest),
            "digest": digest.as_str(),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": name },
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).map_err(failed)?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .map_err(failed)?;
    store
        .import(&layout, Some(name))
        .map(|i| i.image)
        .map_err(|e| match e {
            mini_image::Error::DigestMismatch { .. } | mini_image::Error::SizeMismatch { .. } => {
                PullError::DigestMismatch(e.to_string())
            }
            other => PullError::Failed(other.to_string()),
        })
}

/// The manifest's own `mediaType` (Docker's always has one; OCI's usually does).
fn media_type(manifest: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(manifest)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into())
}

fn invalid(e: mini_image::Error) -> PullError {
    PullError::Failed(format!("the registry named an invalid digest: {e}"))
}

/// Sorts a client error into the reasons a user acts on.
fn classify(e: OciDistributionError, what: &str) -> PullError {
    use OciDistributionError as E;
    let text = format!("{what}: {e}");
    match &e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => PullError::Unauthorized(text),
        E::ServerError {
            code: 401 | 403, ..
        } => PullError::Unauthorized(text),
        E::ServerError { code: 404, .. } | E::ImageManifestNotFoundError(_) => {
            PullError::NotFound(text)
        }
        E::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                PullError::Unauthorized(text)
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                PullError::NotFound(text)
            } else {
                PullError::Failed(text)
            }
        }
        E::DigestError(_) => PullError::DigestMismatch(text),
        E::RequestError(r) if r.is_connect() || r.is_timeout() || r.is_request() => {
            PullError::Unreachable(format!("{what}: {}", error_chain(r)))
        }
        _ => PullError::Failed(text),
    }
}

/// An error and its causes on one line (reqwest's own text omits the cause: "error sending
/// request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Prefixes the image and node, and says what to do for each reason.
fn with_context(e: PullError, text: &str, node: &str) -> PullError {
    let head = format!("pulling {text} on node {node}");
    match e {
        PullError::Invalid(m) => PullError::Invalid(m),
        PullError::NotFound(m) => PullError::NotFound(format!(
            "{head}: not found: {m}: check the name, tag and registry"
        )),
        PullError::Unauthorized(m) => PullError::Unauthorized(format!(
            "{head}: unauthorized: {m}: check the registry's credentials in the agent's --registry-auth file"
        )),
        PullError::DigestMismatch(m) => PullError::DigestMismatch(format!(
            "{head}: digest mismatch: {m}: the registry serves corrupt content; nothing of it was kept"
        )),
        PullError::Unreachable(m) => PullError::Unreachable(format!(
            "{head}: unreachable: {m}: check the address, the network, and --registry-ca or --insecure-registry"
        )),
        PullError::Failed(m) => PullError::Failed(format!("{head}: {m}")),
    }
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PullError> + Send + 'static,
) -> Result<T, PullError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PullError::Failed(format!("the pull's worker failed: {e}")))?
}
