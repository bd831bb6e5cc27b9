//! Builds OCI image layouts by hand (layers as tar streams with whiteouts, links, xattrs...)
//! to import into a private store. Run as root: layers hold device nodes and trusted xattrs,
//! and rootfs tests mount overlays.

#![allow(dead_code)] // each test file uses part of this module

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A directory under /tmp, removed (after unmounting anything below it) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "mini-image-{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        for m in mounts_under(&self.0) {
            let _ = nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

pub fn sha256(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// One tar entry of a test layer.
pub enum Entry {
    Dir(&'static str),
    File(&'static str, &'static [u8]),
    /// path, content, uid, mode, mtime, xattrs
    FileMeta(
        &'static str,
        &'static [u8],
        u64,
        u32,
        u64,
        Vec<(&'static str, &'static [u8])>,
    ),
    Symlink(&'static str, &'static str),
    HardLink(&'static str, &'static str),
    Fifo(&'static str),
    /// A raw path (for entries a builder would refuse, like "..").
    RawFile(&'static [u8], &'static [u8]),
}

/// How a layer blob is compressed.
#[derive(Clone, Copy)]
pub enum Compression {
    None,
    Gzip,
    /// zstd, split into two frames (with a skippable frame between them).
    Zstd,
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

/// The uncompressed tar stream of `entries`.
pub fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::Dir(p) => {
                let mut h = header(tar::EntryType::Directory, 0, 0o755);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            Entry::File(p, data) => {
                let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
                b.append_data(&mut h, p, *data).unwrap();
            }
            Entry::FileMeta(p, data, uid, mode, mtime, xattrs) => {
                if !xattrs.is_empty() {
                    let pax: Vec<(String, &[u8])> = xattrs
                        .iter()
                        .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                        .collect();
                    b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                        .unwrap();
                }
                let mut h = header(tar::EntryType::Regular, data.len() as u64, *mode);
                h.set_uid(*uid);
                h.set_gid(*uid);
                h.set_mtime(*mtime);
                b.append_data(&mut h, p, *data).unwrap();
            }
            Entry::Symlink(p, target) => {
                let mut h = header(tar::EntryType::Symlink, 0, 0o777);
                b.append_link(&mut h, p, target).unwrap();
            }
            Entry::HardLink(p, target) => {
                let mut h = header(tar::EntryType::Link, 0, 0o644);
                b.append_link(&mut h, p, target).unwrap();
            }
            Entry::Fifo(p) => {
                let mut h = header(tar::EntryType::Fifo, 0, 0o600);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            Entry::RawFile(p, data) => {
                let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
                let name = &mut h.as_old_mut().name;
                name[..p.len()].copy_from_slice(p);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn compress(data: &[u8], c: Compression) -> (Vec<u8>, &'static str) {
    match c {
        Compression::None => (data.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => {
            let (a, b) = data.split_at(data.len() / 2);
            let level = ruzstd::encoding::CompressionLevel::Fastest;
            let mut out = ruzstd::encoding::compress_to_vec(a, level);
            // A skippable frame: magic 0x184D2A50, length 4, payload.
            out.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
            out.extend(ruzstd::encoding::compress_to_vec(b, level));
            (out, "application/vnd.oci.image.layer.v1.tar+zstd")
        }
    }
}

/// A layer ready to go into a layout.
#[derive(Clone)]
pub struct TestLayer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    pub diff_id: String,
}

pub fn layer(entries: &[Entry], c: Compression) -> TestLayer {
    let tar = tar_of(entries);
    let (blob, media_type) = compress(&tar, c);
    TestLayer {
        blob,
        media_type,
        diff_id: sha256(&tar),
    }
}

/// An OCI image layout directory being written.
pub struct Layout {
    pub dir: PathBuf,
    manifests: Vec<Value>,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
            manifests: Vec::new(),
        }
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Stores a blob; returns its descriptor.
    pub fn blob(&self, media_type: &str, data: &[u8]) -> Value {
        let digest = sha256(data);
        std::fs::write(self.blob_path(&digest), data).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": data.len()})
    }

    /// Adds an image (config `run` merged into a default config) named `name`; returns the
    /// manifest descriptor.
    pub fn image(&mut self, name: Option<&str>, layers: &[TestLayer], run: Value) -> Value {
        let config = json!({
            "architecture": "amd64", "os": "linux", "config": run,
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        });
        let config = self.blob(
            "application/vnd.oci.image.config.v1+json",
            &serde_json::to_vec(&config).unwrap(),
        );
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|l| self.blob(l.media_type, &l.blob))
            .collect();
        let manifest = json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": layer_descs,
        });
        let mut desc = self.blob(
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        if let Some(n) = name {
            let mut ann = BTreeMap::new();
            ann.insert("org.opencontainers.image.ref.name", n);
            desc["annotations"] = json!(ann);
        }
        self.manifests.push(desc.clone());
        self.write_index();
        desc
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.manifests});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// Writes the layout as an (optionally gzip-compressed) oci-archive file.
    pub fn archive(&self, dest: &Path, gzip: bool) {
        let file = std::fs::File::create(dest).unwrap();
        let out: Box<dyn Write> = if gzip {
            Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(file)
        };
        let mut b = tar::Builder::new(out);
        b.append_dir_all(".", &self.dir).unwrap();
        b.into_inner().unwrap().flush().unwrap();
    }
}
