//! The parts of the OCI image spec this crate reads: `oci-layout`, the image index, manifests,
//! descriptors and the image config. Only what import needs is modelled; unknown fields are
//! ignored and optional ones may be missing or `null` (Docker-produced JSON has both).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// `application/vnd.oci.image.index.v1+json`.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker's manifest list, accepted like an index.
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's schema 2 manifest, accepted like an OCI manifest.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The annotation naming an image in an index (`podman save` writes `localhost/name:tag`,
/// `skopeo copy ... oci:dir:tag` writes `tag`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `null` and missing both read as the default.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The `oci-layout` file.
#[derive(Debug, Deserialize)]
pub struct OciLayoutFile {
    /// "1.0.0".
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

/// A content descriptor.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    #[serde(default)]
    pub media_type: String,
    /// The content's digest (validated before use).
    pub digest: String,
    /// The content's length in bytes.
    pub size: u64,
    /// The platform an index entry is for.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations (the index's ref name).
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Platform {
    /// GOARCH spelling: amd64, arm64, ...
    pub architecture: String,
    /// GOOS spelling: linux, ...
    pub os: String,
    /// e.g. v8 for arm64.
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image index (`index.json` of a layout, or a nested multi-platform index).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// 2.
    pub schema_version: u32,
    /// The manifests (or nested indexes).
    #[serde(default, deserialize_with = "null_default")]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// 2.
    pub schema_version: u32,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default, deserialize_with = "null_default")]
    pub layers: Vec<Descriptor>,
}

/// The image config blob (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ConfigFile {
    /// GOARCH spelling.
    #[serde(default)]
    pub architecture: String,
    /// GOOS spelling.
    #[serde(default)]
    pub os: String,
    /// What a container of this image runs.
    #[serde(default, deserialize_with = "null_default")]
    pub config: RunConfig,
    /// The uncompressed digests of the layers.
    pub rootfs: RootFs,
}

/// `rootfs` of the image config.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RootFs {
    /// "layers".
    #[serde(rename = "type")]
    pub kind: String,
    /// One per layer, base first: the digest of the layer's uncompressed tar stream.
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<String>,
}

/// `config` of the image config: the defaults for a container's process.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    /// `KEY=value` entries.
    #[serde(default, deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// The executable and its leading arguments.
    #[serde(default, deserialize_with = "null_default")]
    pub entrypoint: Vec<String>,
    /// Default arguments (or the command when there is no entrypoint).
    #[serde(default, deserialize_with = "null_default")]
    pub cmd: Vec<String>,
    /// The process's working directory.
    #[serde(default, deserialize_with = "null_default")]
    pub working_dir: String,
    /// Labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// The signal that stops the container gracefully (e.g. "SIGTERM").
    #[serde(default, deserialize_with = "null_default")]
    pub stop_signal: String,
    /// Ports the image documents, "80/tcp".
    #[serde(default, deserialize_with = "keys_of_map")]
    pub exposed_ports: Vec<String>,
    /// Paths the image marks as volumes.
    #[serde(default, deserialize_with = "keys_of_map")]
    pub volumes: Vec<String>,
}

/// Go's `map[string]struct{}` as JSON (`{"80/tcp": {}}`) → its keys.
fn keys_of_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let map = Option::<BTreeMap<String, serde::de::IgnoredAny>>::deserialize(d)?;
    Ok(map.unwrap_or_default().into_keys().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_style_nulls_and_maps_parse() {
        let c: ConfigFile = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux",
                "config":{"Env":null,"Cmd":["sh"],"ExposedPorts":{"80/tcp":{}},"Volumes":null},
                "rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#,
        )
        .unwrap();
        assert!(c.config.env.is_empty());
        assert_eq!(c.config.cmd, ["sh"]);
        assert_eq!(c.config.exposed_ports, ["80/tcp"]);
        let c: ConfigFile =
            serde_json::from_str(r#"{"config":null,"rootfs":{"type":"layers","diff_ids":[]}}"#)
                .unwrap();
        assert_eq!(c.config, RunConfig::default());
    }
}
