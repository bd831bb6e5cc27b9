//! Unpacking one layer blob: decompression by media type, digest checks of the blob (against
//! the manifest) and of the uncompressed stream (against the config's `diff_id`), and the
//! overlay-ready tree written by [`crate::apply`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use crate::apply::{apply, Applied};
use crate::digest::{hash_stream, Digest, HashingReader};
use crate::error::{Error, Result};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

/// The compression a layer media type names; other media types are refused.
pub(crate) fn compression(media_type: &str) -> Result<Compression> {
    Ok(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Compression::None,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
        other => {
            return Err(Error::Unsupported(format!(
            "layer media type {other:?} is not supported (tar, tar+gzip and tar+zstd layers are)"
        )))
        }
    })
}

/// What to unpack: the blob, its expected digest and size, and the expected `diff_id`.
pub(crate) struct LayerBlob<'a> {
    /// The blob file.
    pub path: &'a Path,
    /// The manifest's digest of the blob.
    pub digest: &'a Digest,
    /// The manifest's size of the blob.
    pub size: u64,
    /// The config's digest of the uncompressed tar stream.
    pub diff_id: &'a Digest,
    /// How the blob is compressed.
    pub compression: Compression,
    /// How errors name the layer, e.g. "layer 2 of 3 (sha256:...)".
    pub what: &'a str,
}

/// Unpacks `blob` into the new directory `dest`, verifying everything. On error `dest` may
/// hold a partial tree: the caller removes it.
pub(crate) fn unpack(blob: &LayerBlob<'_>, dest: &Path) -> Result<Applied> {
    let file = File::open(blob.path).map_err(|e| Error::path("opening", blob.path, e))?;
    match unpack_verified(&file, blob, dest) {
        Ok(applied) => Ok(applied),
        // A corrupt blob usually first shows as a decompression or tar error: report the
        // digest mismatch, the cause, rather than its symptom.
        Err(e) => Err(check_blob(blob).err().unwrap_or(e)),
    }
}

fn unpack_verified(file: &File, blob: &LayerBlob<'_>, dest: &Path) -> Result<Applied> {
    let (hashed, blob_tally) = HashingReader::new(file, blob.digest.algorithm());
    let decompressed: Box<dyn Read + '_> = match blob.compression {
        Compression::None => Box::new(hashed),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(hashed)),
        Compression::Zstd => Box::new(ZstdFrames {
            source: BufReader::new(hashed),
            decoder: FrameDecoder::new(),
            in_frame: false,
        }),
    };
    let (mut diff, diff_tally) = HashingReader::new(decompressed, blob.diff_id.algorithm());
    std::fs::create_dir(dest).map_err(|e| Error::path("creating", dest, e))?;
    let applied = apply(dest, &mut diff)?;
    // The tar end-of-archive blocks and any padding after them belong to the diff_id.
    io::copy(&mut diff, &mut io::sink()).map_err(|e| {
        Error::Invalid(format!("{}: reading the rest of the layer: {e}", blob.what))
    })?;
    drop(diff);
    blob_tally
        .drain(file)
        .map_err(|e| Error::path("reading", blob.path, e))?;
    let (actual, size) = blob_tally.result();
    expect(blob, &actual, size)?;
    let (actual_diff, _) = diff_tally.result();
    if &actual_diff != blob.diff_id {
        return Err(Error::DigestMismatch {
            what: format!("{} uncompressed content", blob.what),
            expected: blob.diff_id.to_string(),
            actual: actual_diff.to_string(),
        });
    }
    Ok(applied)
}

/// Hashes the whole blob on its own.
fn check_blob(blob: &LayerBlob<'_>) -> Result<()> {
    let file = File::open(blob.path).map_err(|e| Error::path("opening", blob.path, e))?;
    let (actual, size) = hash_stream(BufReader::new(file), blob.digest.algorithm())
        .map_err(|e| Error::path("reading", blob.path, e))?;
    expect(blob, &actual, size)
}

fn expect(blob: &LayerBlob<'_>, actual: &Digest, size: u64) -> Result<()> {
    if actual != blob.digest {
        return Err(Error::DigestMismatch {
            what: format!("{} blob", blob.what),
            expected: blob.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    if size != blob.size {
        return Err(Error::SizeMismatch {
            what: format!("{} blob", blob.what),
            expected: blob.size,
            actual: size,
        });
    }
    Ok(())
}

/// A zstd stream of any number of frames; skippable frames are skipped.
struct ZstdFrames<R: BufRead> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                    let wanted = buf.len() - self.decoder.can_collect();
                    self.decoder
                        .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                        .map_err(io::Error::other)?;
                }
                let n = self.decoder.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.in_frame = false;
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.decoder.init(&mut self.source) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.source).take(length.into()), &mut io::sink())?;
                    if skipped < length.into() {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                    }
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}
