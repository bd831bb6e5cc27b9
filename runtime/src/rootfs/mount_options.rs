//! Mount options as the spec writes them (fstab words) turned into mount(2) flags, propagation
//! changes, recursive (`r*`) mount attributes and filesystem data.

use nix::mount::MsFlags;

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq)]
pub struct MountOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Propagation changes, applied with separate mount calls.
    pub propagation: Vec<MsFlags>,
    /// Options the kernel does not know as flags, passed as filesystem data.
    pub data: Vec<String>,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// Attributes the `r*` words (`rro`, `rnosuid`, ...) set or clear on the mount and every
    /// mount below it (mount_setattr(2) with `AT_RECURSIVE`).
    pub recursive: RecursiveAttrs,
}

/// `MOUNT_ATTR_*` bits to set and to clear recursively.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecursiveAttrs {
    /// Bits to set.
    pub set: u64,
    /// Bits to clear.
    pub clear: u64,
}

impl RecursiveAttrs {
    /// Whether no recursive attribute was asked for.
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }

    fn add(&mut self, bit: u64) {
        self.set |= bit;
        self.clear &= !bit;
    }

    fn remove(&mut self, bit: u64) {
        self.clear |= bit;
        self.set &= !bit;
    }

    /// The access-time mode is one field: choosing one clears the whole field first.
    fn atime(&mut self, mode: u64) {
        self.clear |= libc::MOUNT_ATTR__ATIME;
        self.set = (self.set & !libc::MOUNT_ATTR__ATIME) | mode;
    }

    /// `ratime`, `rnorelatime`, `rnostrictatime`: undo an earlier request of that mode (as
    /// `atime`, `norelatime`, `nostrictatime` clear their flag), leaving the mounts' own.
    fn not_atime(&mut self, mode: u64) {
        let requested = self.clear & libc::MOUNT_ATTR__ATIME != 0;
        if requested && self.set & libc::MOUNT_ATTR__ATIME == mode {
            self.clear &= !libc::MOUNT_ATTR__ATIME;
            self.set &= !libc::MOUNT_ATTR__ATIME;
        }
    }
}

/// Applies a recursive `r*` option word; returns false if `word` is not one.
fn recursive_word(r: &mut RecursiveAttrs, word: &str) -> bool {
    match word {
        "rro" => r.add(libc::MOUNT_ATTR_RDONLY),
        "rrw" => r.remove(libc::MOUNT_ATTR_RDONLY),
        "rnosuid" => r.add(libc::MOUNT_ATTR_NOSUID),
        "rsuid" => r.remove(libc::MOUNT_ATTR_NOSUID),
        "rnodev" => r.add(libc::MOUNT_ATTR_NODEV),
        "rdev" => r.remove(libc::MOUNT_ATTR_NODEV),
        "rnoexec" => r.add(libc::MOUNT_ATTR_NOEXEC),
        "rexec" => r.remove(libc::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => r.add(libc::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => r.remove(libc::MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => r.add(libc::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => r.remove(libc::MOUNT_ATTR_NOSYMFOLLOW),
        "rnoatime" => r.atime(libc::MOUNT_ATTR_NOATIME),
        "rstrictatime" => r.atime(libc::MOUNT_ATTR_STRICTATIME),
        "rrelatime" => r.atime(libc::MOUNT_ATTR_RELATIME),
        "ratime" => r.not_atime(libc::MOUNT_ATTR_NOATIME),
        "rnorelatime" => r.not_atime(libc::MOUNT_ATTR_RELATIME),
        "rnostrictatime" => r.not_atime(libc::MOUNT_ATTR_STRICTATIME),
        _ => return false,
    }
    true
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            bind: false,
            recursive: RecursiveAttrs::default(),
        }
    }
}

/// Parses the options of one mount.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            // The access-time mode is one choice: a later word replaces an earlier one (the
            // kernel would otherwise let strictatime, then noatime, win whatever the order).
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (
                MsFlags::MS_NOATIME,
                MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME,
            ),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (
                MsFlags::MS_RELATIME,
                MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME,
            ),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (
                MsFlags::MS_STRICTATIME,
                MsFlags::MS_NOATIME | MsFlags::MS_RELATIME,
            ),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "nosymfollow" => (
                MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
                MsFlags::empty(),
            ),
            "symfollow" => (
                MsFlags::empty(),
                MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
            ),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
            "defaults" | "tmpcopyup" => (MsFlags::empty(), MsFlags::empty()),
            p => {
                if let Some(flag) = propagation(p) {
                    o.propagation.push(flag);
                } else if !recursive_word(&mut o.recursive, p) {
                    o.data.push(opt.clone());
                }
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
    }
    o
}

/// The propagation flags a word names, if it names one.
pub fn propagation(word: &str) -> Option<MsFlags> {
    Some(match word {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str]) -> MountOptions {
        parse(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn later_words_override_earlier_ones() {
        let o = opts(&["ro", "nosuid", "rw"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
    }

    #[test]
    fn rbind_is_a_recursive_bind_and_unknown_words_are_data() {
        let o = opts(&["rbind", "rprivate", "mode=755", "size=65536k"]);
        assert!(o.bind);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
    }

    #[test]
    fn recursive_words_set_and_clear_mount_attributes() {
        let o = opts(&["rbind", "rro", "rnosuid", "rnoatime", "rexec"]);
        assert!(o.data.is_empty());
        assert_eq!(
            o.recursive.set,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOATIME
        );
        assert_eq!(
            o.recursive.clear,
            libc::MOUNT_ATTR__ATIME | libc::MOUNT_ATTR_NOEXEC
        );
        // A later word wins, for flags and for the access-time mode.
        let o = opts(&["rro", "rrw", "rnoatime", "rstrictatime"]);
        assert_eq!(o.recursive.set, libc::MOUNT_ATTR_STRICTATIME);
        assert_eq!(
            o.recursive.clear,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR__ATIME
        );
        assert!(opts(&["ro"]).recursive.is_empty());
    }

    #[test]
    fn access_time_words_apply_in_the_order_written() {
        let atime = MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
        for (words, want) in [
            (&["strictatime", "relatime"][..], MsFlags::MS_RELATIME),
            (&["noatime", "relatime"][..], MsFlags::MS_RELATIME),
            (&["relatime", "noatime"][..], MsFlags::MS_NOATIME),
            (&["noatime", "strictatime"][..], MsFlags::MS_STRICTATIME),
            (&["relatime", "norelatime"][..], MsFlags::empty()),
        ] {
            assert_eq!(opts(words).flags & atime, want, "{words:?}");
        }
        // The negative recursive words undo their own mode only.
        assert!(opts(&["rnorelatime"]).recursive.is_empty());
        assert!(opts(&["rrelatime", "rnorelatime"]).recursive.is_empty());
        assert!(opts(&["rnoatime", "ratime"]).recursive.is_empty());
        let o = opts(&["rstrictatime", "rnorelatime"]).recursive;
        assert_eq!(o.set, libc::MOUNT_ATTR_STRICTATIME);
        assert_eq!(o.clear, libc::MOUNT_ATTR__ATIME);
    }
}
