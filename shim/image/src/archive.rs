//! Extracting an oci-archive (a tar of an image layout, as `podman save --format oci-archive`
//! and `skopeo copy ... oci-archive:` write it) into a private staging directory. Only the
//! layout's own files are taken: `oci-layout`, `index.json` and `blobs/<alg>/<hex>` with a valid
//! digest as name; everything else in the archive is skipped, so nothing can land outside the
//! staging directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Extracts the archive at `archive` (plain or gzip-compressed tar) into `dest` (empty).
pub(crate) fn extract(archive: &Path, dest: &Path) -> Result<()> {
    let file = File::open(archive).map_err(|e| Error::path("opening", archive, e))?;
    let mut reader = BufReader::new(file);
    let head = reader
        .fill_buf()
        .map_err(|e| Error::path("reading", archive, e))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let bad = |e: io::Error| {
        Error::Invalid(format!(
            "{} is not a readable oci-archive: {e}",
            archive.display()
        ))
    };
    let mut tar = tar::Archive::new(stream);
    let mut saw_layout = false;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let text = String::from_utf8_lossy(&raw);
        let parts: Vec<&str> = text
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let rel = match parts.as_slice() {
            [name @ ("oci-layout" | "index.json")] => {
                saw_layout |= *name == "oci-layout";
                name.to_string()
            }
            ["blobs", alg, hex] => match Digest::parse(&format!("{alg}:{hex}")) {
                Ok(d) => format!("blobs/{}", d.rel_path().display()),
                Err(_) => continue,
            },
            _ => continue,
        };
        let path = dest.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::path("creating", parent, e))?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::path("creating", &path, e))?;
        io::copy(&mut entry, &mut out).map_err(|e| Error::path("writing", &path, e))?;
    }
    if !saw_layout {
        return Err(Error::Invalid(format!(
            "{} is not an oci-archive (no oci-layout file): save images with `podman save --format oci-archive`",
            archive.display()
        )));
    }
    Ok(())
}
