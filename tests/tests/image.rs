//! mini-image with real podman-saved images, built offline from the busybox fixture: an
//! oci-archive of the fixture, and a second image built on it whose layer deletes files
//! (whiteouts) and sets Env/WorkingDir/User/Entrypoint/Cmd. Imported into a private store, run
//! with mini-run on an overlay rootfs, corrupted, cleaned up.

use mini_image::{resolve_user, Error, Store};
use mini_tests::{mounts_mentioning, unique, Bundle, Runtime, TempDir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A private podman store holding the fixture image and one built from it.
struct Images {
    dir: TempDir,
    base: String,
    derived: String,
}

impl Images {
    fn new() -> Images {
        let dir = TempDir::new("image-podman");
        let images = Images {
            dir,
            base: format!("localhost/{}:latest", unique("mini-bb")),
            derived: format!("localhost/{}:latest", unique("mini-wh")),
        };
        mini_tests::import_fixture(images.podman(), &images.base);
        let ctx = images.dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Containerfile"),
            format!(
                "FROM {}\n\
                 RUN rm /etc/group && rm -rf /home && rm -rf /var && mkdir -p /var/new && echo hi > /var/new/file\n\
                 ENV GREETING=hello PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
                 WORKDIR /srv\n\
                 USER tester\n\
                 ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                 CMD [\"echo $GREETING\"]\n",
                images.base
            ),
        )
        .unwrap();
        // chroot isolation: buildah runs the RUN step itself, no OCI runtime or network.
        images.ok(&[
            "build",
            "--pull=never",
            "--isolation",
            "chroot",
            "-t",
            &images.derived,
            ctx.to_str().unwrap(),
        ]);
        images
    }

    fn podman(&self) -> Command {
        let mut c = mini_tests::private_podman(self.dir.path());
        c.stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) {
        let out = self.podman().args(args).output().expect("podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `podman save --format FORMAT -o <file> IMAGE`; returns the path.
    fn save(&self, image: &str, format: &str, name: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        self.ok(&[
            "save",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
            image,
        ]);
        out
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        let _ = self.podman().args(["rmi", "--all", "--force"]).output();
    }
}

/// Unmounts and removes a rootfs when dropped, so a failing test leaves no mount behind.
struct RootfsGuard<'a>(&'a Store, PathBuf);

impl Drop for RootfsGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.remove_rootfs(&self.1);
    }
}

fn store_in(dir: &TempDir) -> Store {
    Store::open(dir.path().join("store")).unwrap()
}

#[test]
fn podman_saved_images_import_and_share_their_base_layer() {
    let images = Images::new();
    let tmp = TempDir::new("image-store");
    let store = store_in(&tmp);
    let base = store
        .import(&images.save(&images.base, "oci-archive", "base.tar"), None)
        .unwrap();
    assert_eq!((base.layers_unpacked, base.layers_reused), (1, 0));
    assert_eq!(base.image.names, std::slice::from_ref(&images.base));
    let derived = store
        .import(
            &images.save(&images.derived, "oci-archive", "derived.tar"),
            None,
        )
        .unwrap();
    assert_eq!(derived.image.layers.len(), 2);
    assert_eq!(
        derived.image.layers[0].diff_id,
        base.image.layers[0].diff_id
    );
    assert_eq!((derived.layers_unpacked, derived.layers_reused), (1, 1));
    // The same image as an OCI layout directory: nothing new to unpack.
    let dir = images.save(&images.derived, "oci-dir", "derived-dir");
    let again = store.import(&dir, None).unwrap();
    assert_eq!(again.image.id, derived.image.id);
    assert_eq!((again.layers_unpacked, again.layers_reused), (0, 2));
    assert_eq!(store.layers().unwrap().len(), 2);

    let c = &derived.image.config;
    assert_eq!(c.entrypoint, ["/bin/sh", "-c"]);
    assert_eq!(c.cmd, ["echo $GREETING"]);
    assert_eq!(c.cwd(), "/srv");
    assert_eq!(c.user, "tester");
    assert!(c.env.contains(&"GREETING=hello".to_string()), "{:?}", c.env);
    assert_eq!((c.os.as_str(), c.architecture.as_str()), ("linux", "amd64"));

    store.remove_image(&images.base).unwrap();
    store.remove_image(&derived.image.id).unwrap();
    assert!(store.layers().unwrap().is_empty());
}

/// A bundle running `args` on `rootfs` with the image's env, cwd and user.
fn bundle_for(image: &mini_image::Image, rootfs: &Path, args: &[String]) -> Bundle {
    let user = resolve_user(rootfs, &image.config.user).unwrap();
    let env = image.config.env(&[]);
    let cwd = image.config.cwd().to_string();
    Bundle::new(&[]).edit(|c| {
        c["root"]["path"] = Value::from(rootfs.to_str().unwrap());
        c["root"]["readonly"] = Value::from(false);
        c["process"]["args"] = Value::from(args.to_vec());
        c["process"]["env"] = Value::from(env);
        c["process"]["cwd"] = Value::from(cwd);
        c["process"]["user"] = serde_json::json!({
            "uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids,
        });
    })
}

#[test]
fn a_container_runs_on_an_image_rootfs_with_whiteouts_applied() {
    let images = Images::new();
    let tmp = TempDir::new("image-run");
    let store = store_in(&tmp);
    let archive = images.save(&images.derived, "oci-archive", "derived.tar");
    let image = store.import(&archive, None).unwrap().image;
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    let _guards = (
        RootfsGuard(&store, a_dir.clone()),
        RootfsGuard(&store, b_dir.clone()),
    );
    let a = store.create_rootfs(&image, &a_dir).unwrap();
    let b = store.create_rootfs(&image, &b_dir).unwrap();

    // The image's own command: entrypoint + cmd with its env, in its working directory
    // (which no layer holds: podman's WORKDIR alone creates nothing).
    assert!(!a.path().join("srv").exists());
    mini_image::ensure_working_dir(&a.path(), image.config.cwd()).unwrap();
    let rt = Runtime::new();
    let bundle = bundle_for(&image, &a.path(), &image.config.args(None, None));
    let out = rt.run(&bundle, &unique("img"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");

    // What the container sees: whiteouts applied, config honoured; then it writes a file.
    let script = "test ! -e /etc/group && echo no-group; test ! -e /home && echo no-home; \
                  test ! -e /var/tmp && echo no-var-tmp; cat /var/new/file; pwd; id -u; \
                  test -e /etc/passwd && echo passwd; \
                  dd if=/dev/zero of=/tmp/blob bs=1024 count=256 2>/dev/null && echo wrote";
    let args = image.config.args(None, Some(&[script.to_string()]));
    let bundle = bundle_for(&image, &a.path(), &args);
    let out = rt.run(&bundle, &unique("img"));
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "no-group",
            "no-home",
            "no-var-tmp",
            "hi",
            "/srv",
            "1000",
            "passwd",
            "wrote"
        ]
    );
    // The write is in a's upper layer only.
    assert!(a.upper().join("tmp/blob").exists());
    assert!(a.disk_usage().unwrap().bytes >= 256 * 1024);
    assert!(!b.path().join("tmp/blob").exists());
    assert!(b.disk_usage().unwrap().bytes < 256 * 1024);
    for l in &image.layers {
        assert!(!store
            .layer_path(&l.diff_id)
            .unwrap()
            .join("tmp/blob")
            .exists());
    }

    store.remove_rootfs(&a_dir).unwrap();
    store.remove_rootfs(&b_dir).unwrap();
    assert!(!a_dir.exists() && !b_dir.exists());
    assert_eq!(
        mounts_mentioning(tmp.path().to_str().unwrap()),
        0,
        "mounts left"
    );
    store.remove_image(&image.id).unwrap();
    assert!(store.images().unwrap().is_empty());
    assert!(store.layers().unwrap().is_empty());
}

#[test]
fn a_corrupted_podman_layer_is_refused_and_nothing_is_left() {
    let images = Images::new();
    let tmp = TempDir::new("image-corrupt");
    let store = store_in(&tmp);
    let layout = images.save(&images.derived, "oci-dir", "layout");
    // Corrupt the largest blob (the fixture's layer) in place.
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut data = std::fs::read(&biggest).unwrap();
    let mid = data.len() / 2;
    data[mid] = data[mid].wrapping_add(1);
    std::fs::write(&biggest, &data).unwrap();

    let err = store.import(&layout, None).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("layer 1 of 2"), "{err}");
    assert!(store.images().unwrap().is_empty());
    assert!(store.layers().unwrap().is_empty());
    let staging = store.root().join("tmp");
    assert_eq!(std::fs::read_dir(staging).unwrap().count(), 0);
}
