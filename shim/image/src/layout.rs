//! Reading an OCI image layout directory (image-spec "image-layout.md"): `oci-layout`,
//! `index.json` and content-addressed `blobs/<alg>/<hex>`, choosing one image from the index
//! and reading its manifest and config with their digests verified.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::digest::{hash_stream, Digest};
use crate::error::{Context, Error, Result};
use crate::spec::{
    Descriptor, Index, OciLayoutFile, ANNOTATION_REF_NAME, MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};

/// The largest index, manifest or config blob read into memory.
const MAX_JSON_BLOB: u64 = 4 << 20;

/// An image layout directory.
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Opens `dir`, checking its `oci-layout` file.
    pub(crate) fn open(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        let text = std::fs::read(&marker).map_err(|e| {
            Error::Invalid(format!(
                "{} is not an OCI image layout ({}: {e}): save images with `podman save --format oci-archive` or `skopeo copy ... oci:DIR`",
                dir.display(),
                marker.display()
            ))
        })?;
        let layout: OciLayoutFile = serde_json::from_slice(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", marker.display())))?;
        if !layout.image_layout_version.starts_with("1.") {
            return Err(Error::Unsupported(format!(
                "{}: image layout version {} is not supported (1.x is)",
                marker.display(),
                layout.image_layout_version
            )));
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the blob of `digest` lives.
    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(digest.rel_path())
    }

    /// Reads a small JSON blob, checking its size and digest against `desc` first.
    pub(crate) fn read_json<T: DeserializeOwned>(
        &self,
        desc: &Descriptor,
        what: &str,
    ) -> Result<T> {
        let digest = Digest::parse(&desc.digest)?;
        let what = format!("{what} {digest}");
        if desc.size > MAX_JSON_BLOB {
            return Err(Error::Invalid(format!(
                "{what}: {} bytes is too large for a JSON blob (limit {MAX_JSON_BLOB})",
                desc.size
            )));
        }
        let path = self.blob_path(&digest);
        let mut data = Vec::new();
        File::open(&path)
            .and_then(|f| f.take(MAX_JSON_BLOB + 1).read_to_end(&mut data))
            .map_err(|e| Error::path(&format!("reading {what} at"), &path, e))?;
        verify(&what, desc, &digest, &data)?;
        serde_json::from_slice(&data).map_err(|e| Error::Invalid(format!("{what}: {e}")))
    }

    /// Chooses one image manifest: the one whose ref name is `reference`, else the only one
    /// (or the only one for this host's platform); nested indexes are followed to this host's
    /// platform. Returns the manifest descriptor and the ref name the index gave it.
    pub(crate) fn select(&self, reference: Option<&str>) -> Result<(Descriptor, Option<String>)> {
        let path = self.dir.join("index.json");
        let text = std::fs::read(&path).context(|| format!("reading {}", path.display()))?;
        let index: Index = serde_json::from_slice(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        if index.schema_version != 2 {
            return Err(Error::Unsupported(format!(
                "{}: schema version {} is not supported (2 is)",
                path.display(),
                index.schema_version
            )));
        }
        let names = |list: &[Descriptor]| {
            let n: Vec<&str> = list.iter().filter_map(ref_name).collect();
            if n.is_empty() {
                "no names".to_string()
            } else {
                n.join(", ")
            }
        };
        let mut candidates: Vec<Descriptor> = match reference {
            Some(r) => index
                .manifests
                .iter()
                .filter(|d| ref_name(d) == Some(r))
                .cloned()
                .collect(),
            None => index.manifests.clone(),
        };
        if candidates.len() > 1 {
            candidates.retain(|d| d.platform.as_ref().is_none_or(platform_matches));
        }
        let chosen = match (candidates.len(), reference) {
            (1, _) => candidates.remove(0),
            (0, Some(r)) => {
                return Err(Error::NotFound(format!(
                    "no image named {r:?} in {} (it holds {})",
                    self.dir.display(),
                    names(&index.manifests)
                )))
            }
            (0, None) => {
                return Err(Error::Invalid(format!(
                    "{} holds no image",
                    self.dir.display()
                )))
            }
            (n, _) => {
                return Err(Error::Invalid(format!(
                    "{} holds {n} images ({}): name the one to import",
                    self.dir.display(),
                    names(&candidates)
                )))
            }
        };
        let name = ref_name(&chosen).map(str::to_string);
        let mut desc = chosen;
        // Follow nested indexes (multi-platform images) to this host's platform.
        for _ in 0..4 {
            match desc.media_type.as_str() {
                MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST => {
                    let nested: Index = self.read_json(&desc, "image index")?;
                    desc = nested
                        .manifests
                        .into_iter()
                        .find(|d| d.platform.as_ref().is_some_and(platform_matches))
                        .ok_or_else(|| {
                            Error::NotFound(format!(
                                "image index {} has no manifest for {}",
                                desc.digest,
                                host_platform()
                            ))
                        })?;
                }
                MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST | "" => return Ok((desc, name)),
                other => {
                    return Err(Error::Unsupported(format!(
                        "{} is a {other}, not an image manifest",
                        desc.digest
                    )))
                }
            }
        }
        Err(Error::Invalid("image indexes nest too deeply".into()))
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
}

/// The image-spec (GOARCH) name of this host's architecture.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn host_platform() -> String {
    format!("linux/{}", host_arch())
}

fn platform_matches(p: &crate::spec::Platform) -> bool {
    p.os == "linux" && p.architecture == host_arch()
}

/// Checks that `data` is what `desc` describes.
pub(crate) fn verify(what: &str, desc: &Descriptor, digest: &Digest, data: &[u8]) -> Result<()> {
    if data.len() as u64 != desc.size {
        return Err(Error::SizeMismatch {
            what: what.to_string(),
            expected: desc.size,
            actual: data.len() as u64,
        });
    }
    let (actual, _) =
        hash_stream(data, digest.algorithm()).map_err(|e| Error::io(what.to_string(), e))?;
    if &actual != digest {
        return Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}
