//! mini-image: OCI images for mini-shim's agent.
//!
//! Imports images from an OCI image layout directory or an oci-archive (what
//! `podman save --format oci-archive|oci-dir` and `skopeo copy ... oci:DIR[:TAG]` /
//! `oci-archive:FILE` write), verifies every blob it reads against its digest and size and
//! every layer's uncompressed stream against the config's `diff_id`, unpacks each layer once
//! per `diff_id` into a shared read-only layer store, and gives each container an overlay
//! rootfs (the image's layers as lowerdirs, its own upper and work directories) mounted with
//! mount(2).
//!
//! # API (what the agent calls)
//!
//! ```no_run
//! # fn main() -> mini_image::Result<()> {
//! use mini_image::{ensure_working_dir, resolve_user, Store};
//! use std::path::Path;
//!
//! let store = Store::open("/var/lib/mini-shim/images")?;            // creates it if needed
//! let imported = store.import(Path::new("/tmp/busybox.tar"), None)?;  // archive or layout dir
//! let image = store.image("localhost/busybox:latest")?;              // by name or id
//! assert_eq!(image.id, imported.image.id);
//!
//! // One rootfs per container, in a directory the agent owns (must not exist yet).
//! let dir = Path::new("/var/lib/mini-shim/containers/c1/image");
//! let rootfs = store.create_rootfs(&image, dir)?;                    // mounted
//! let root_path = rootfs.path();                                     // config.json root.path
//! let args = image.config.args(None, None);                          // entrypoint + cmd
//! let env = image.config.env(&["EXTRA=1".to_string()]);
//! let cwd = image.config.cwd();
//! ensure_working_dir(&root_path, cwd)?;                              // images may lack it
//! let user = resolve_user(&root_path, &image.config.user)?;          // uid, gid, groups
//! let used = rootfs.disk_usage()?.bytes;                             // writable layer size
//!
//! // After an agent restart: reopen and remount if needed (e.g. after a reboot).
//! let again = mini_image::Rootfs::open(dir)?;
//! again.mount()?;
//! // When the container is deleted: unmount, delete, release its layers.
//! store.remove_rootfs(dir)?;
//! # Ok(()) }
//! ```
//!
//! - [`Store::import`] returns [`Imported`] with the [`Image`] and how many layers it unpacked
//!   or reused. A source holding several images needs `reference` (the index's
//!   `org.opencontainers.image.ref.name`, e.g. `localhost/busybox:latest`); multi-platform
//!   indexes resolve to `linux/<host arch>`. Layer media types: `tar`, `tar+gzip`,
//!   `tar+zstd` (OCI, including non-distributable) and Docker's `tar.gzip`.
//! - Every failure is an [`Error`] whose text is one line naming what is wrong and what to
//!   do; a corrupt blob is [`Error::DigestMismatch`] or [`Error::SizeMismatch`], an unknown
//!   image or a missing source [`Error::NotFound`]. A failed import leaves nothing behind:
//!   layers are unpacked in a staging directory and moved into the store only once verified.
//! - Whiteouts follow the image spec and are stored the way overlayfs reads them: `.wh.NAME`
//!   becomes a 0/0 character device `NAME`, `.wh..wh..opq` sets `trusted.overlay.opaque=y`.
//!   Entries are created with `openat2(RESOLVE_IN_ROOT)` and never through a final symlink, so
//!   a layer cannot write outside its directory; ownership, modes, mtimes, device nodes, hard
//!   links and xattrs (file capabilities) are kept, except `trusted.overlay.*`.
//! - [`Store::create_rootfs`] records a lease so [`Store::remove_image`] and [`Store::prune`]
//!   keep the layers a container mounts; [`Store::remove_rootfs`] releases it.
//! - [`Rootfs::disk_usage`] (and [`disk_usage`]) reports bytes allocated on disk
//!   (`st_blocks` × 512, hard links once) and inodes of the writable layer, by walking it on
//!   each call.
//! - All functions block (file I/O, mount(2)); call them from `spawn_blocking` in async code.
//!   The store is safe to use from several processes at once (an flock serializes commits).
//!
//! The store layout is described in the `store` module source; each rootfs directory holds
//! `rootfs.json`, `upper/`, `work/` and `merged/`.

#![warn(missing_docs)]

mod apply;
mod archive;
mod digest;
mod disk;
mod error;
mod image;
mod layer;
mod layout;
mod rootfs;
mod spec;
mod store;
mod user;

pub use digest::{Algorithm, Digest, Hasher};
pub use disk::{disk_usage, DiskUsage};
pub use error::{Error, Result};
pub use image::{Image, ImageConfig, Layer};
pub use rootfs::Rootfs;
pub use store::{Imported, Store};
pub use user::{ensure_working_dir, resolve_user, User};
