//! Image references: `[registry[:port]/]name[:tag][@digest]`.
//!
//! Docker's defaults fill in what is missing: no registry means `docker.io` (and a one-part
//! name there means `library/NAME`), no tag and no digest means `latest`. A first part with a
//! `.` or a `:`, or `localhost`, is a registry; anything else is part of the name.

pub use oci_client::Reference;

/// The longest reference accepted (Docker's name limit is 255; a tag and digest follow it).
pub const MAX_LEN: usize = 512;

/// Parses `text` with Docker's defaults; the error says what is wrong and how to write it.
pub fn parse(text: &str) -> Result<Reference, String> {
    if text.len() > MAX_LEN {
        return Err(format!(
            "the image reference is {} bytes long (at most {MAX_LEN})",
            text.len()
        ));
    }
    Reference::try_from(text).map_err(|e| {
        format!(
            "{text:?} is not an image reference ({e}): write [registry[:port]/]name[:tag][@sha256:digest]"
        )
    })
}

/// The reference as the store names the image: registry, repository and tag or digest, with
/// the defaults written out (`docker.io/library/busybox:latest`).
pub fn store_name(reference: &Reference) -> String {
    reference.whole()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_parts_take_dockers_defaults() {
        let r = parse("busybox").unwrap();
        assert_eq!(store_name(&r), "docker.io/library/busybox:latest");
        let r = parse("127.0.0.1:5000/test/busybox:1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "test/busybox");
        assert_eq!(r.tag(), Some("1"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("localhost/app@{digest}")).unwrap();
        assert_eq!(r.registry(), "localhost");
        assert_eq!(r.digest(), Some(digest.as_str()));
    }

    #[test]
    fn invalid_references_are_refused_with_the_syntax() {
        for bad in ["", "a//b", "name:tag:tag", "x@sha256:short", "-lead/x"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("[registry[:port]/]name"), "{bad}: {e}");
        }
        assert!(parse(&"a".repeat(MAX_LEN + 1)).is_err());
    }
}
