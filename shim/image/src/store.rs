//! The image store: image records, layers unpacked once per `diff_id` and shared read-only by
//! every image and container that uses them, and leases that keep a container's layers alive.
//!
//! ```text
//! <root>/lock                          flock: commits, removals and leases are serialized
//! <root>/images/<alg>/<hex>.json       one record per image (manifest digest)
//! <root>/layers/<alg>/<hex>/fs/        an unpacked layer (diff_id), overlay-ready
//! <root>/layers/<alg>/<hex>/layer.json what it was unpacked from
//! <root>/leases/<key>.json             a container rootfs and the layers it mounts
//! <root>/tmp/<pid>-<n>/                staging; a layer appears in layers/ only complete
//! ```

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{Image, ImageConfig, Layer};
use crate::layer::{self, LayerBlob};
use crate::layout::Layout;
use crate::spec::{ConfigFile, Manifest};

static STAGING: AtomicU64 = AtomicU64::new(0);

/// The result of [`Store::import`].
#[derive(Debug, Clone)]
pub struct Imported {
    /// The stored image.
    pub image: Image,
    /// Layers this import unpacked.
    pub layers_unpacked: usize,
    /// Layers already in the store (by `diff_id`) and reused as they were.
    pub layers_reused: usize,
}

/// A lease: a container rootfs and the layers it mounts.
#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    dir: PathBuf,
    layers: Vec<String>,
}

/// An image store rooted at a directory (the agent uses `<state-dir>/images`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A staging directory, removed on drop unless it was moved into place.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root` and removes staging directories left by
    /// processes that died mid-import.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let store = Store { root: root.into() };
        for d in ["images", "layers", "leases", "tmp"] {
            let p = store.root.join(d);
            fs::create_dir_all(&p).map_err(|e| Error::path("creating", &p, e))?;
        }
        let tmp = store.root.join("tmp");
        for entry in fs::read_dir(&tmp)
            .map_err(|e| Error::path("listing", &tmp, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|p| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok()
            });
            if !alive {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> Result<Flock<File>> {
        let path = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::path("opening", &path, e))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::path("locking", &path, e))
    }

    fn staging(&self) -> Result<Staging> {
        let p = self.root.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            STAGING.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&p).map_err(|e| Error::path("creating", &p, e))?;
        Ok(Staging(p))
    }

    /// The directory of an unpacked layer (an overlay lowerdir), by `diff_id`.
    pub fn layer_path(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.layer_dir(&Digest::parse(diff_id)?).join("fs"))
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.rel_path())
    }

    fn image_file(&self, id: &Digest) -> PathBuf {
        self.root
            .join("images")
            .join(id.rel_path())
            .with_extension("json")
    }

    /// Imports an image from an OCI image layout directory or an oci-archive file (plain or
    /// gzip-compressed tar), as `podman save --format oci-archive|oci-dir` and
    /// `skopeo copy ... oci:|oci-archive:` write them. `reference` picks the image by its
    /// `org.opencontainers.image.ref.name` when the source holds several. Every blob read is
    /// checked against its digest and size, and every layer's uncompressed stream against the
    /// config's `diff_id`; layers already in the store are not unpacked again. On any error
    /// nothing of the import is left in the store.
    pub fn import(&self, source: &Path, reference: Option<&str>) -> Result<Imported> {
        let meta = fs::metadata(source).map_err(|e| {
            Error::NotFound(format!(
                "image source {}: {e}: give an OCI layout directory or an oci-archive file",
                source.display()
            ))
        })?;
        let extracted;
        let layout_dir = if meta.is_dir() {
            source.to_path_buf()
        } else {
            extracted = self.staging()?;
            crate::archive::extract(source, &extracted.0)?;
            extracted.0.clone()
        };
        let layout = Layout::open(&layout_dir)?;
        let (manifest_desc, name) = layout.select(reference)?;
        let id = Digest::parse(&manifest_desc.digest)?;
        let manifest: Manifest = layout.read_json(&manifest_desc, "manifest")?;
        if manifest.schema_version != 2 {
            return Err(Error::Unsupported(format!(
                "manifest {id}: schema version {} is not supported (2 is)",
                manifest.schema_version
            )));
        }
        let config_file: ConfigFile = layout.read_json(&manifest.config, "image config")?;
        Digest::parse(&manifest.config.digest)?;
        if config_file.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(Error::Invalid(format!(
                "image {id}: the manifest lists {} layers but the config {} diff_ids",
                manifest.layers.len(),
                config_file.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers.iter().zip(&config_file.rootfs.diff_ids) {
            Digest::parse(&desc.digest)?;
            Digest::parse(diff_id)?;
            layer::compression(&desc.media_type)?;
            layers.push(Layer {
                diff_id: diff_id.clone(),
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
            });
        }
        // Unpack outside the lock (imports of different images proceed in parallel), then
        // commit under it, unpacking again anything a concurrent removal took away meanwhile.
        let mut unpacked = Vec::new();
        let mut lock = None;
        for pass in 0..2 {
            if pass == 1 {
                lock = Some(self.lock()?);
            }
            for (i, l) in layers.iter().enumerate() {
                match self.ensure_layer(&layout, l, i, layers.len()) {
                    Ok(true) => unpacked.push(l.diff_id.clone()),
                    Ok(false) => {}
                    Err(e) => {
                        let lock = match lock {
                            Some(l) => l,
                            None => self.lock()?,
                        };
                        // A failed import leaves no layer of its own behind.
                        self.discard_unused(&unpacked)?;
                        drop(lock);
                        return Err(e);
                    }
                }
            }
        }
        let unpacked = unpacked.len();
        let mut image = Image {
            id: id.to_string(),
            names: name.into_iter().collect(),
            config_digest: manifest.config.digest.clone(),
            layers,
            config: ImageConfig::new(config_file.config, config_file.os, config_file.architecture),
        };
        if let Ok(old) = self.read_record(&id) {
            for n in old.names {
                if !image.names.contains(&n) {
                    image.names.push(n);
                }
            }
        }
        // A name belongs to one image: take it from any other.
        for mut other in self.records()? {
            if other.id != image.id && other.names.iter().any(|n| image.names.contains(n)) {
                other.names.retain(|n| !image.names.contains(n));
                self.write_record(&other)?;
            }
        }
        self.write_record(&image)?;
        let layers_reused = image.layers.len().saturating_sub(unpacked);
        Ok(Imported {
            image,
            layers_unpacked: unpacked,
            layers_reused,
        })
    }

    /// Unpacks a layer unless the store has it; returns whether it unpacked.
    fn ensure_layer(&self, layout: &Layout, l: &Layer, i: usize, n: usize) -> Result<bool> {
        let diff_id = Digest::parse(&l.diff_id)?;
        let dest = self.layer_dir(&diff_id);
        if dest.join("layer.json").exists() {
            return Ok(false);
        }
        let digest = Digest::parse(&l.digest)?;
        let what = format!("layer {} of {n} ({})", i + 1, l.digest);
        let blob = LayerBlob {
            path: &layout.blob_path(&digest),
            digest: &digest,
            size: l.size,
            diff_id: &diff_id,
            compression: layer::compression(&l.media_type)?,
            what: &what,
        };
        if !blob.path.exists() {
            return Err(Error::Invalid(format!(
                "{what}: blob {} is missing from the image layout",
                blob.path.display()
            )));
        }
        let staging = self.staging()?;
        layer::unpack(&blob, &staging.0.join("fs"))?;
        let record = staging.0.join("layer.json");
        fs::write(&record, serde_json::to_vec(l).expect("layer serializes"))
            .map_err(|e| Error::path("writing", &record, e))?;
        let parent = dest.parent().expect("layer dir has a parent");
        fs::create_dir_all(parent).map_err(|e| Error::path("creating", parent, e))?;
        match fs::rename(&staging.0, &dest) {
            Ok(()) => Ok(true),
            // Another import finished the same layer first: keep theirs.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) => Ok(false),
            Err(e) => Err(Error::path("moving the unpacked layer to", &dest, e)),
        }
    }

    fn read_record(&self, id: &Digest) -> Result<Image> {
        let path = self.image_file(id);
        let data = fs::read(&path).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::NotFound(format!("image {id} is not in the store: import it first"))
            } else {
                Error::path("reading", &path, e)
            }
        })?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    fn write_record(&self, image: &Image) -> Result<()> {
        let path = self.image_file(&Digest::parse(&image.id)?);
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(image).expect("image serializes"),
        )
    }

    fn records(&self) -> Result<Vec<Image>> {
        let mut out = Vec::new();
        let dir = self.root.join("images");
        for alg in fs::read_dir(&dir)
            .map_err(|e| Error::path("listing", &dir, e))?
            .flatten()
        {
            for f in fs::read_dir(alg.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Some(hex) = name.strip_suffix(".json") else {
                    continue;
                };
                let alg = alg.file_name().to_string_lossy().into_owned();
                if let Ok(id) = Digest::parse(&format!("{alg}:{hex}")) {
                    out.push(self.read_record(&id)?);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Every image in the store, by id.
    pub fn images(&self) -> Result<Vec<Image>> {
        self.records()
    }

    /// Finds an image by id (`sha256:...`, or a unique hex prefix of at least 12 digits) or by
    /// name (`localhost/busybox:latest`; a name without a tag also matches `:latest`).
    pub fn image(&self, reference: &str) -> Result<Image> {
        if let Ok(id) = Digest::parse(reference) {
            return self.read_record(&id);
        }
        let images = self.records()?;
        let last = reference.rsplit('/').next().unwrap_or(reference);
        let tagged = (!last.contains(':')).then(|| format!("{reference}:latest"));
        let by_name = images.iter().find(|i| {
            i.names
                .iter()
                .any(|n| n == reference || Some(n) == tagged.as_ref())
        });
        if let Some(i) = by_name {
            return Ok(i.clone());
        }
        if reference.len() >= 12 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<&Image> = images
                .iter()
                .filter(|i| {
                    i.id.split_once(':')
                        .is_some_and(|(_, h)| h.starts_with(reference))
                })
                .collect();
            if let [one] = matches.as_slice() {
                return Ok((*one).clone());
            }
        }
        Err(Error::NotFound(format!(
            "image {reference:?} is not in the store: import it first"
        )))
    }

    /// The `diff_id`s of every unpacked layer in the store.
    pub fn layers(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let dir = self.root.join("layers");
        for alg in fs::read_dir(&dir)
            .map_err(|e| Error::path("listing", &dir, e))?
            .flatten()
        {
            for l in fs::read_dir(alg.path()).into_iter().flatten().flatten() {
                if l.path().join("layer.json").exists() {
                    out.push(format!(
                        "{}:{}",
                        alg.file_name().to_string_lossy(),
                        l.file_name().to_string_lossy()
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes an image record, then every layer no image and no container rootfs uses.
    pub fn remove_image(&self, reference: &str) -> Result<()> {
        let image = self.image(reference)?;
        let _lock = self.lock()?;
        let path = self.image_file(&Digest::parse(&image.id)?);
        fs::remove_file(&path).map_err(|e| Error::path("removing", &path, e))?;
        self.prune_locked()
    }

    /// Removes layers no image and no live lease references, and leases whose rootfs is gone.
    pub fn prune(&self) -> Result<()> {
        let _lock = self.lock()?;
        self.prune_locked()
    }

    fn prune_locked(&self) -> Result<()> {
        self.discard_unused(&self.layers()?)
    }

    /// Removes those of `layers` that no image and no live lease references (and leases
    /// whose rootfs is gone). Called with the lock held.
    fn discard_unused(&self, layers: &[String]) -> Result<()> {
        let mut used: BTreeSet<String> = BTreeSet::new();
        for image in self.records()? {
            used.extend(image.layers.into_iter().map(|l| l.diff_id));
        }
        for (path, lease) in self.leases()? {
            if lease.dir.join(crate::rootfs::RECORD).exists() {
                used.extend(lease.layers);
            } else {
                let _ = fs::remove_file(path);
            }
        }
        for diff_id in layers {
            if used.contains(diff_id) {
                continue;
            }
            // Out of layers/ first, so a crash mid-removal leaves no partial layer there.
            let dir = self.layer_dir(&Digest::parse(diff_id)?);
            if !dir.exists() {
                continue;
            }
            let staging = self.staging()?;
            let trash = staging.0.join("layer");
            fs::rename(&dir, &trash).map_err(|e| Error::path("removing layer", &dir, e))?;
        }
        Ok(())
    }

    fn leases(&self) -> Result<Vec<(PathBuf, Lease)>> {
        let dir = self.root.join("leases");
        let mut out = Vec::new();
        for f in fs::read_dir(&dir)
            .map_err(|e| Error::path("listing", &dir, e))?
            .flatten()
        {
            let data = fs::read(f.path()).map_err(|e| Error::path("reading", &f.path(), e))?;
            if let Ok(lease) = serde_json::from_slice(&data) {
                out.push((f.path(), lease));
            }
        }
        Ok(out)
    }

    fn lease_path(&self, dir: &Path) -> PathBuf {
        let key = Digest::sha256_of(dir.as_os_str().as_encoded_bytes());
        self.root
            .join("leases")
            .join(format!("{}.json", &key.hex()[..32]))
    }

    /// Creates a container rootfs in the new directory `dir` (see [`crate::Rootfs`]): an
    /// overlay of the image's layers with its own writable upper layer, mounted at
    /// [`crate::Rootfs::path`]. The layers stay in the store until [`Store::remove_rootfs`].
    pub fn create_rootfs(&self, image: &Image, dir: &Path) -> Result<crate::Rootfs> {
        let dir = absolute(dir)?;
        let _lock = self.lock()?;
        let mut lowerdirs = Vec::new();
        for l in image.layers.iter().rev() {
            let p = self.layer_path(&l.diff_id)?;
            if !p.exists() {
                return Err(Error::NotFound(format!(
                    "layer {} of image {} is missing from the store: import the image again",
                    l.diff_id, image.id
                )));
            }
            lowerdirs.push(p);
        }
        let lease = Lease {
            dir: dir.clone(),
            layers: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
        };
        let lease_path = self.lease_path(&dir);
        write_atomic(
            &lease_path,
            &serde_json::to_vec(&lease).expect("lease serializes"),
        )?;
        let created = crate::rootfs::Rootfs::create(&dir, &image.id, lowerdirs, &self.root);
        if created.is_err() {
            let _ = fs::remove_file(&lease_path);
        }
        created
    }

    /// Unmounts and deletes a container rootfs made by [`Store::create_rootfs`] and releases
    /// its layers (they are removed with their image). Fine if it is already gone.
    pub fn remove_rootfs(&self, dir: &Path) -> Result<()> {
        let dir = absolute(dir)?;
        crate::rootfs::remove(&dir)?;
        let _lock = self.lock()?;
        match fs::remove_file(self.lease_path(&dir)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::path("removing the lease of", &dir, e)),
        }
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|e| Error::path("resolving", dir, e))
}

/// Writes `data` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let parent = path.parent().expect("file path has a parent");
    fs::create_dir_all(parent).map_err(|e| Error::path("creating", parent, e))?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, data).map_err(|e| Error::path("writing", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::path("writing", path, e)
    })
}
