//! Content digests (`algorithm:hex`, image-spec "descriptor.md#digests"): validation, blob paths,
//! and a reader that hashes what flows through it.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::rc::Rc;

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// The digest algorithms this crate verifies (the two the image spec registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256, 64 hex digits; what every common tool writes.
    Sha256,
    /// SHA-512, 128 hex digits.
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest: a registered algorithm and lowercase hex of the right length, so it is
/// safe to use as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(text: &str) -> Result<Digest> {
        let (alg, hex) = text
            .split_once(':')
            .ok_or_else(|| Error::Invalid(format!("digest {text:?} is not algorithm:hex")))?;
        let alg = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(Error::Unsupported(format!(
                    "digest {text:?}: algorithm {alg:?} is not supported (sha256 and sha512 are)"
                )))
            }
        };
        let valid = hex.len() == alg.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(Error::Invalid(format!(
                "digest {text:?}: expected {} lowercase hex digits",
                alg.hex_len()
            )));
        }
        Ok(Digest(text.to_string()))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        if self.0.starts_with("sha512:") {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        }
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0[self.algorithm().name().len() + 1..]
    }

    /// The whole `algorithm:hex` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<algorithm>/<hex>`: where a blob or layer of this digest lives below a store or
    /// layout directory.
    pub fn rel_path(&self) -> PathBuf {
        PathBuf::from(self.algorithm().name()).join(self.hex())
    }

    /// The SHA-256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex(&Sha256::digest(data))))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running hash of one algorithm, for content that arrives in pieces (a registry blob).
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for `alg`.
    pub fn new(alg: Algorithm) -> Hasher {
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest(format!("sha256:{}", hex(&h.finalize()))),
            Hasher::Sha512(h) => Digest(format!("sha512:{}", hex(&h.finalize()))),
        }
    }
}

/// What a [`HashingReader`] has seen so far; shared, so it can be read after the reader went
/// into a decompressor or a tar parser.
#[derive(Clone)]
pub(crate) struct Tally(Rc<RefCell<(Hasher, u64)>>);

impl Tally {
    /// The digest and byte count of everything read so far.
    pub(crate) fn result(&self) -> (Digest, u64) {
        let state = self.0.borrow();
        (state.0.clone().finish(), state.1)
    }

    /// Reads `reader` to its end, adding what it yields to the tally.
    pub(crate) fn drain(&self, reader: impl Read) -> io::Result<()> {
        let mut r = HashingReader {
            inner: reader,
            tally: self.clone(),
        };
        io::copy(&mut r, &mut io::sink()).map(drop)
    }
}

/// Hashes and counts every byte read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    tally: Tally,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`, hashing with the algorithm of `expected`.
    pub(crate) fn new(inner: R, alg: Algorithm) -> (HashingReader<R>, Tally) {
        let tally = Tally(Rc::new(RefCell::new((Hasher::new(alg), 0))));
        (
            HashingReader {
                inner,
                tally: tally.clone(),
            },
            tally,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.tally.0.borrow_mut();
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        Ok(n)
    }
}

/// Hashes a whole stream with the algorithm of `alg`; returns its digest and length.
pub(crate) fn hash_stream(reader: impl Read, alg: Algorithm) -> io::Result<(Digest, u64)> {
    let (mut r, tally) = HashingReader::new(reader, alg);
    io::copy(&mut r, &mut io::sink())?;
    Ok(tally.result())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_validated_before_use_as_file_names() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(
            d.rel_path(),
            PathBuf::from(format!("sha256/{}", "a".repeat(64)))
        );
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABC",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            "nocolon",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Digest::parse(&format!("md5:{}", "a".repeat(32))),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn hashing_reader_matches_known_digests() {
        let (d, n) = hash_stream(&b"abc"[..], Algorithm::Sha256).unwrap();
        assert_eq!(
            d.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(n, 3);
        assert_eq!(Digest::sha256_of(b"abc"), d);
        let (d, _) = hash_stream(&b""[..], Algorithm::Sha512).unwrap();
        assert!(d
            .as_str()
            .starts_with("sha512:cf83e1357eefb8bdf1542850d66d8007"));
    }
}
