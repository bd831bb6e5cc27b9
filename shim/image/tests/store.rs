//! The image store with hand-built layouts: digests verified, failed imports leave nothing,
//! layers unpacked once and shared, whiteouts hide lower files in the merged rootfs, overlays
//! independent, cleanup complete. Needs root (overlay mounts, device nodes, trusted xattrs).

mod layouts;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use layouts::{layer, mounts_under, Compression, Entry, Layout, TempDir, TestLayer};
use mini_image::{Error, Store};
use serde_json::json;

fn base_layer() -> TestLayer {
    layer(
        &[
            Entry::Dir("etc"),
            Entry::File("etc/a", b"lower a\n"),
            Entry::File("etc/b", b"lower b\n"),
            Entry::Dir("data"),
            Entry::Dir("data/old"),
            Entry::File("data/old/x", b"x"),
            Entry::File("keep", b"keep"),
        ],
        Compression::Gzip,
    )
}

fn whiteout_layer() -> TestLayer {
    layer(
        &[
            Entry::Dir("etc"),
            Entry::File("etc/.wh.a", b""),
            Entry::Dir("data"),
            Entry::File("data/.wh..wh..opq", b""),
            Entry::File("data/new", b"new"),
        ],
        Compression::Gzip,
    )
}

/// A store and a layout in one temp dir.
struct Fixture {
    tmp: TempDir,
    store: Store,
    layout: Layout,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = TempDir::new("store");
        let store = Store::open(tmp.path().join("store")).unwrap();
        let layout = Layout::new(&tmp.path().join("layout"));
        Fixture { tmp, store, layout }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.tmp.path().join(rel)
    }

    /// Nothing in the store: no image, no layer, no staging leftovers.
    fn assert_store_empty(&self) {
        assert!(self.store.images().unwrap().is_empty());
        assert!(self.store.layers().unwrap().is_empty());
        let tmp = self.store.root().join("tmp");
        assert_eq!(
            std::fs::read_dir(tmp).unwrap().count(),
            0,
            "staging left behind"
        );
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn whiteouts_hide_lower_files_in_the_merged_rootfs() {
    let mut f = Fixture::new();
    f.layout.image(
        Some("test/wh:1"),
        &[base_layer(), whiteout_layer()],
        json!({"Env": ["A=1"], "Cmd": ["sh"], "WorkingDir": "/data", "User": "1000"}),
    );
    let imported = f.store.import(&f.layout.dir, None).unwrap();
    assert_eq!((imported.layers_unpacked, imported.layers_reused), (2, 0));
    let image = f.store.image("test/wh:1").unwrap();
    assert_eq!(image.config.env, ["A=1"]);
    assert_eq!(image.config.cwd(), "/data");
    assert_eq!(image.config.user, "1000");

    // The top layer holds overlay whiteouts.
    let top = f.store.layer_path(&image.layers[1].diff_id).unwrap();
    let wh = std::fs::symlink_metadata(top.join("etc/a")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout device"
    );
    let mut buf = [0u8; 8];
    let path = std::ffi::CString::new(top.join("data").to_str().unwrap()).unwrap();
    // SAFETY: lgetxattr with valid C strings and a buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], b"y", "opaque xattr");

    let rootfs = f.store.create_rootfs(&image, &f.path("c1")).unwrap();
    let root = rootfs.path();
    assert!(rootfs.is_mounted().unwrap());
    assert!(!root.join("etc/a").exists(), "whited-out file is visible");
    assert_eq!(read(&root.join("etc/b")), "lower b\n");
    assert!(
        !root.join("data/old").exists(),
        "opaque dir shows lower entries"
    );
    assert_eq!(read(&root.join("data/new")), "new");
    assert_eq!(read(&root.join("keep")), "keep");
    let user = mini_image::resolve_user(&root, &image.config.user).unwrap();
    assert_eq!((user.uid, user.gid), (1000, 0));

    f.store.remove_rootfs(&f.path("c1")).unwrap();
    assert!(!f.path("c1").exists());
    assert!(mounts_under(f.tmp.path()).is_empty(), "mount left behind");
    f.store.remove_image("test/wh:1").unwrap();
    f.assert_store_empty();
}

#[test]
fn a_corrupted_layer_blob_is_refused_and_nothing_is_left() {
    let mut f = Fixture::new();
    let good = base_layer();
    let bad = whiteout_layer();
    f.layout.image(None, &[good, bad.clone()], json!({}));
    let blob = f.layout.blob_path(&layouts::sha256(&bad.blob));
    let mut data = std::fs::read(&blob).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&blob, &data).unwrap();

    let err = f.store.import(&f.layout.dir, None).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("layer 2 of 2") && text.contains("digest mismatch") && !text.contains('\n'),
        "{text}"
    );
    f.assert_store_empty();
}

#[test]
fn a_truncated_blob_and_a_wrong_diff_id_are_refused() {
    let mut f = Fixture::new();
    let l = base_layer();
    f.layout.image(None, std::slice::from_ref(&l), json!({}));
    let blob = f.layout.blob_path(&layouts::sha256(&l.blob));
    std::fs::write(&blob, &l.blob[..l.blob.len() - 10]).unwrap();
    let err = f.store.import(&f.layout.dir, None).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    f.assert_store_empty();

    // A config whose diff_id does not match the layer's content.
    let mut f = Fixture::new();
    let mut l = base_layer();
    l.diff_id = layouts::sha256(b"something else");
    f.layout.image(None, &[l], json!({}));
    let err = f.store.import(&f.layout.dir, None).unwrap_err();
    assert!(err.to_string().contains("uncompressed content"), "{err}");
    f.assert_store_empty();
}

#[test]
fn a_corrupted_manifest_or_config_is_refused() {
    let mut f = Fixture::new();
    let desc = f.layout.image(None, &[base_layer()], json!({}));
    let manifest = f.layout.blob_path(desc["digest"].as_str().unwrap());
    let text = std::fs::read_to_string(&manifest).unwrap();
    let config_digest = serde_json::from_str::<serde_json::Value>(&text).unwrap()["config"]
        ["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let config = f.layout.blob_path(&config_digest);
    let mut data = std::fs::read(&config).unwrap();
    data[0] = b' ';
    std::fs::write(&config, &data).unwrap();
    let err = f.store.import(&f.layout.dir, None).unwrap_err();
    assert!(err.to_string().contains("image config"), "{err}");
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");

    std::fs::write(&manifest, text.replace("schemaVersion", "schemaversion")).unwrap();
    let err = f.store.import(&f.layout.dir, None).unwrap_err();
    assert!(err.to_string().contains("manifest"), "{err}");
    f.assert_store_empty();
}

#[test]
fn a_layer_shared_by_two_images_is_unpacked_once() {
    let mut f = Fixture::new();
    let base = base_layer();
    f.layout
        .image(Some("one"), std::slice::from_ref(&base), json!({}));
    f.layout
        .image(Some("two"), &[base.clone(), whiteout_layer()], json!({}));
    let one = f.store.import(&f.layout.dir, Some("one")).unwrap();
    assert_eq!((one.layers_unpacked, one.layers_reused), (1, 0));
    let base_dir = f.store.layer_path(&base.diff_id).unwrap();
    let inode = std::fs::metadata(&base_dir).unwrap().ino();
    let two = f.store.import(&f.layout.dir, Some("two")).unwrap();
    assert_eq!((two.layers_unpacked, two.layers_reused), (1, 1));
    assert_eq!(
        std::fs::metadata(&base_dir).unwrap().ino(),
        inode,
        "base layer unpacked again"
    );
    assert_eq!(f.store.layers().unwrap().len(), 2);
    // Importing the same image again unpacks nothing.
    let again = f.store.import(&f.layout.dir, Some("two")).unwrap();
    assert_eq!((again.layers_unpacked, again.layers_reused), (0, 2));

    // Removing one image keeps the layer the other uses.
    f.store.remove_image("one").unwrap();
    assert!(base_dir.exists());
    f.store.remove_image("two").unwrap();
    f.assert_store_empty();
}

#[test]
fn two_overlays_from_one_image_are_independent() {
    let mut f = Fixture::new();
    let base = base_layer();
    f.layout
        .image(Some("img"), std::slice::from_ref(&base), json!({}));
    let image = f.store.import(&f.layout.dir, None).unwrap().image;
    let a = f.store.create_rootfs(&image, &f.path("a")).unwrap();
    let b = f.store.create_rootfs(&image, &f.path("b")).unwrap();
    std::fs::write(a.path().join("etc/a"), "changed in a").unwrap();
    std::fs::write(a.path().join("only-a"), vec![7u8; 64 * 1024]).unwrap();
    std::fs::remove_file(a.path().join("keep")).unwrap();
    assert_eq!(read(&b.path().join("etc/a")), "lower a\n");
    assert!(!b.path().join("only-a").exists());
    assert!(b.path().join("keep").exists());
    let layer = f.store.layer_path(&base.diff_id).unwrap();
    assert_eq!(
        read(&layer.join("etc/a")),
        "lower a\n",
        "the shared layer changed"
    );
    assert!(layer.join("keep").exists());
    // Disk usage counts the writable layer only.
    let used_a = a.disk_usage().unwrap();
    let used_b = b.disk_usage().unwrap();
    assert!(used_a.bytes >= 64 * 1024, "{used_a:?}");
    assert!(used_b.bytes < 64 * 1024, "{used_b:?}");

    // A layer a rootfs uses survives the removal of its image until the rootfs goes.
    f.store.remove_image("img").unwrap();
    assert!(layer.exists());
    assert_eq!(read(&b.path().join("keep")), "keep");
    f.store.remove_rootfs(a.dir()).unwrap();
    // Reopened (as after an agent restart) and removed twice: fine.
    let b2 = mini_image::Rootfs::open(&f.path("b")).unwrap();
    assert!(b2.is_mounted().unwrap());
    f.store.remove_rootfs(b2.dir()).unwrap();
    f.store.remove_rootfs(b2.dir()).unwrap();
    f.store.prune().unwrap();
    assert!(mounts_under(f.tmp.path()).is_empty(), "mount left behind");
    f.assert_store_empty();
}

#[test]
fn a_rootfs_is_remounted_after_an_unmount() {
    let mut f = Fixture::new();
    f.layout.image(None, &[base_layer()], json!({}));
    let image = f.store.import(&f.layout.dir, None).unwrap().image;
    let r = f.store.create_rootfs(&image, &f.path("r")).unwrap();
    std::fs::write(r.path().join("mine"), "kept").unwrap();
    r.unmount().unwrap();
    assert!(!r.is_mounted().unwrap());
    r.mount().unwrap();
    r.mount().unwrap();
    assert_eq!(read(&r.path().join("mine")), "kept");
    assert!(
        f.store.create_rootfs(&image, &f.path("r")).is_err(),
        "reused a dir"
    );
    f.store.remove_rootfs(r.dir()).unwrap();
}

#[test]
fn plain_and_multi_frame_zstd_layers_unpack() {
    let mut f = Fixture::new();
    let plain = layer(&[Entry::File("plain", b"p")], Compression::None);
    let zstd = layer(
        &[Entry::Dir("z"), Entry::File("z/file", &[b'z'; 5000])],
        Compression::Zstd,
    );
    f.layout.image(None, &[plain, zstd.clone()], json!({}));
    let image = f.store.import(&f.layout.dir, None).unwrap().image;
    let dir = f.store.layer_path(&zstd.diff_id).unwrap();
    assert_eq!(std::fs::read(dir.join("z/file")).unwrap(), vec![b'z'; 5000]);
    assert_eq!(
        image.layers[1].media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
}

#[test]
fn metadata_links_and_special_files_are_kept() {
    let mut f = Fixture::new();
    let l = layer(
        &[
            Entry::FileMeta(
                "bin/suid",
                b"#!",
                1234,
                0o4750,
                1_500_000_000,
                vec![("user.mini", b"value")],
            ),
            Entry::HardLink("bin/again", "bin/suid"),
            Entry::Symlink("bin/link", "suid"),
            Entry::Fifo("run/fifo"),
        ],
        Compression::None,
    );
    f.layout.image(None, std::slice::from_ref(&l), json!({}));
    f.store.import(&f.layout.dir, None).unwrap();
    let dir = f.store.layer_path(&l.diff_id).unwrap();
    let m = std::fs::symlink_metadata(dir.join("bin/suid")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 1234));
    assert_eq!(m.permissions().mode() & 0o7777, 0o4750);
    assert_eq!(m.mtime(), 1_500_000_000);
    assert_eq!(m.nlink(), 2);
    assert_eq!(
        std::fs::metadata(dir.join("bin/again")).unwrap().ino(),
        m.ino()
    );
    assert_eq!(
        std::fs::read_link(dir.join("bin/link")).unwrap(),
        Path::new("suid")
    );
    let fifo = std::fs::symlink_metadata(dir.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    let mut buf = [0u8; 16];
    let path = std::ffi::CString::new(dir.join("bin/suid").to_str().unwrap()).unwrap();
    // SAFETY: lgetxattr with valid C strings and a buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"user.mini".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], b"value");
}

#[test]
fn layer_entries_cannot_escape_the_layer() {
    let outside = TempDir::new("outside");
    let target: &'static str = Box::leak(
        outside
            .path()
            .to_str()
            .unwrap()
            .to_string()
            .into_boxed_str(),
    );
    // A symlink to a host directory, then a file "through" it: resolved inside the layer.
    // Without that target inside the layer the entry is refused...
    let mut f = Fixture::new();
    let l = layer(
        &[
            Entry::Symlink("evil", target),
            Entry::File("evil/pwned", b"!"),
        ],
        Compression::None,
    );
    f.layout.image(None, &[l], json!({}));
    let err = f.store.import(&f.layout.dir, None).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(
        !outside.path().join("pwned").exists(),
        "a layer wrote outside its directory"
    );
    f.assert_store_empty();
    // ...with it, the file lands in the layer's own copy of the target.
    let mut f = Fixture::new();
    let inner: &'static str =
        Box::leak(format!("{}/", target.trim_start_matches('/')).into_boxed_str());
    let l = layer(
        &[
            Entry::Dir(inner),
            Entry::Symlink("evil", target),
            Entry::File("evil/pwned", b"!"),
        ],
        Compression::None,
    );
    f.layout.image(None, std::slice::from_ref(&l), json!({}));
    f.store.import(&f.layout.dir, None).unwrap();
    assert!(
        !outside.path().join("pwned").exists(),
        "a layer wrote outside its directory"
    );
    let dir = f.store.layer_path(&l.diff_id).unwrap();
    assert!(dir.join(inner).join("pwned").exists());

    // ".." is refused outright.
    let mut f = Fixture::new();
    f.layout.image(
        None,
        &[layer(
            &[Entry::RawFile(b"../escape", b"!")],
            Compression::None,
        )],
        json!({}),
    );
    let err = f.store.import(&f.layout.dir, None).unwrap_err();
    assert!(err.to_string().contains("\"..\""), "{err}");
    f.assert_store_empty();
}

#[test]
fn oci_archives_import_like_layouts() {
    let mut f = Fixture::new();
    f.layout
        .image(Some("arch:1"), &[base_layer()], json!({"Cmd": ["true"]}));
    for gzip in [false, true] {
        let archive = f.path(if gzip { "a.tar.gz" } else { "a.tar" });
        f.layout.archive(&archive, gzip);
        let imported = f.store.import(&archive, None).unwrap();
        assert_eq!(imported.image.names, ["arch:1"]);
        assert_eq!(imported.image.config.cmd, ["true"]);
    }
    let tmp = f.store.root().join("tmp");
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "extracted archive left behind"
    );
}

#[test]
fn a_source_with_several_images_needs_a_reference() {
    let mut f = Fixture::new();
    f.layout.image(Some("x:1"), &[base_layer()], json!({}));
    f.layout.image(Some("y:1"), &[whiteout_layer()], json!({}));
    let err = f.store.import(&f.layout.dir, None).unwrap_err();
    assert!(err.to_string().contains("x:1, y:1"), "{err}");
    let err = f.store.import(&f.layout.dir, Some("z:1")).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    let y = f.store.import(&f.layout.dir, Some("y:1")).unwrap().image;
    assert_eq!(f.store.image("y:1").unwrap().id, y.id);
    assert_eq!(
        f.store
            .image(&y.id["sha256:".len().."sha256:".len() + 12])
            .unwrap()
            .id,
        y.id
    );
    let missing = f.store.import(&f.path("nowhere"), None).unwrap_err();
    assert!(matches!(missing, Error::NotFound(_)), "{missing}");
    let not_layout = f.store.import(f.tmp.path(), None).unwrap_err();
    assert!(
        not_layout.to_string().contains("not an OCI image layout"),
        "{not_layout}"
    );
}
