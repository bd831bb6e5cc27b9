//! `POST /v1/containers`: check the source, make the root filesystem (a read-only rootfs
//! directory, or an image's overlay with a writable layer), write the bundle and `meta.json`,
//! and start the container under its monitor. Any failure removes all of it.

use super::bundle::{self, ImageDefaults, Root};
use super::containers::{now, Meta, META_FILE, ROOTFS_DIR};
use super::{Agent, Error};
use crate::monitor;
use crate::protocol::{ContainerInfo, Network, RunRequest, Source};
use mini_run::private_files;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The cgroup under which the agents of this host put their containers (as
/// `<node>_<id>`); the delete that leaves it empty removes it.
pub(super) const CGROUP_PARENT: &str = "/mini-shim";

/// Imports the image (layers unpacked once per digest, every blob verified) and makes the
/// container's overlay rootfs in `rootfs_dir`.
fn image_root(
    store: &Path,
    image: &Path,
    reference: Option<&str>,
    rootfs_dir: &Path,
    node: &str,
) -> Result<(Root, ImageDefaults, Option<PathBuf>), Error> {
    let unavailable = |e: mini_image::Error| {
        Error::SourceUnavailable(format!("image {} on node {node}: {e}", image.display()))
    };
    if !image.is_absolute() {
        return Err(Error::BadRequest(format!(
            "source.image.path {image:?} must be an absolute path"
        )));
    }
    let store = mini_image::Store::open(store).map_err(unavailable)?;
    let imported = store.import(image, reference).map_err(unavailable)?.image;
    overlay_root(&store, &imported, rootfs_dir).map_err(unavailable)
}

/// The container's overlay rootfs of a stored image in `rootfs_dir`, with the image's run
/// defaults.
fn overlay_root(
    store: &mini_image::Store,
    image: &mini_image::Image,
    rootfs_dir: &Path,
) -> Result<(Root, ImageDefaults, Option<PathBuf>), mini_image::Error> {
    let rootfs = store.create_rootfs(image, rootfs_dir)?;
    let config = &image.config;
    let user = mini_image::resolve_user(&rootfs.path(), &config.user)?;
    let defaults = ImageDefaults {
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        env: config.env.clone(),
        working_dir: Some(config.cwd().to_string()),
        user: Some((user.uid, user.gid)),
    };
    let root = Root {
        path: rootfs.path(),
        readonly: false,
    };
    Ok((root, defaults, Some(rootfs.upper())))
}

impl Agent {
    /// `POST /v1/containers`.
    pub async fn run(&self, request: RunRequest) -> Result<ContainerInfo, Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_run(h, request);
        }
        let dir = self.container_dir(&request.id)?;
        let _claim = self.claim(&request.id)?;
        if dir.exists() {
            return Err(Error::Conflict(format!(
                "container {:?} already exists on node {}; delete it first or choose another id",
                request.id, self.config.node
            )));
        }
        if let Source::Rootfs(path) = &request.source {
            self.check_rootfs(Path::new(path))?;
        }
        super::network::check_ports(request.network, &request.ports)?;
        private_files::create_dir(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let result = async {
            let bundle = self.prepare(&dir, &request).await?;
            self.attach(&dir, &request.id).await?;
            self.start(&dir, &request.id, &bundle).await
        }
        .await;
        if let Err(e) = result {
            let _ = self.remove_files(&dir).await;
            self.log(&format!("run {}: {e}", request.id));
            return Err(e);
        }
        self.log(&format!("run {}: started", request.id));
        self.info(&request.id).await
    }

    /// A rootfs directory source must be an absolute path to a directory.
    fn check_rootfs(&self, path: &Path) -> Result<(), Error> {
        if !path.is_absolute() {
            return Err(Error::BadRequest(format!(
                "source.rootfs {path:?} must be an absolute path"
            )));
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::SourceUnavailable(format!(
                "rootfs {} on node {} is not a directory",
                path.display(),
                self.config.node
            ))),
            Err(e) => Err(Error::SourceUnavailable(format!(
                "rootfs {} is unavailable on node {}: {e}",
                path.display(),
                self.config.node
            ))),
        }
    }

    /// Makes the root filesystem, writes the bundle (config.json) and meta.json; returns the
    /// bundle directory.
    async fn prepare(&self, dir: &Path, request: &RunRequest) -> Result<PathBuf, Error> {
        let mut image_digest = None;
        let (root, image, writable_layer) = match &request.source {
            // A shared directory: mounted read-only, so no container changes it.
            Source::Rootfs(path) => (
                Root {
                    path: PathBuf::from(path),
                    readonly: true,
                },
                ImageDefaults::default(),
                None,
            ),
            Source::Image(image) => {
                let store = self.images_dir();
                let (image, reference) = (PathBuf::from(&image.path), image.reference.clone());
                let rootfs_dir = dir.join(ROOTFS_DIR);
                let node = self.config.node.clone();
                tokio::task::spawn_blocking(move || {
                    image_root(&store, &image, reference.as_deref(), &rootfs_dir, &node)
                })
                .await
                .map_err(|e| Error::SourceUnavailable(format!("preparing the image: {e}")))??
            }
            Source::Registry(registry) => {
                let store = self.images_dir();
                let image = self
                    .puller
                    .ensure(
                        &store,
                        &registry.reference,
                        registry.pull,
                        &self.config.node,
                    )
                    .await
                    .map_err(|e| match e {
                        crate::registry::PullError::Invalid(m) => {
                            Error::BadRequest(format!("source.registry.reference: {m}"))
                        }
                        other => Error::SourceUnavailable(other.to_string()),
                    })?;
                image_digest = Some(image.id.clone());
                let rootfs_dir = dir.join(ROOTFS_DIR);
                let node = self.config.node.clone();
                tokio::task::spawn_blocking(move || {
                    let store = mini_image::Store::open(store)?;
                    overlay_root(&store, &image, &rootfs_dir)
                })
                .await
                .map_err(|e| Error::SourceUnavailable(format!("preparing the image: {e}")))?
                .map_err(|e| {
                    Error::SourceUnavailable(format!(
                        "image {} on node {node}: {e}",
                        registry.reference
                    ))
                })?
            }
        };
        // One flat level under the agent's parent, so deleting a container leaves no per-node one.
        let cgroups_path = format!("{CGROUP_PARENT}/{}_{}", self.config.node, request.id);
        let mut config = bundle::config(request, &root, &image, &cgroups_path)?;
        if request.network == Network::Cluster {
            self.prepare_network(dir, &mut config, &root, &request.ports)?;
        }
        let bundle_dir = dir.join("bundle");
        private_files::create_dir(&bundle_dir)
            .map_err(|e| Error::io("creating", &bundle_dir, e))?;
        write_json(&bundle_dir.join("config.json"), &config)?;
        let meta = Meta {
            request: request.clone(),
            created_at: now(),
            cgroups_path,
            writable_layer,
            image_digest,
        };
        write_json(&dir.join(META_FILE), &meta)?;
        Ok(bundle_dir)
    }

    /// Starts the container's monitor and waits until the container runs or failed.
    async fn start(&self, dir: &Path, id: &str, bundle: &Path) -> Result<(), Error> {
        let opts = monitor::SpawnOptions::new(dir, id, bundle, &self.runtime_root());
        tokio::task::spawn_blocking(move || monitor::spawn(&opts))
            .await
            .map_err(|e| Error::StartFailed(format!("starting the monitor: {e}")))?
            .map(drop)
            .map_err(|e| Error::StartFailed(format!("container {id:?} did not start: {e}")))
    }
}

/// Writes `value` to `path` as a new file only root may read: config.json and meta.json hold
/// the container's environment.
pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(value).expect("serializable");
    private_files::write_atomic(path, &tmp, &text, false).map_err(|e| Error::io("writing", path, e))
}
