//! The receiver's files: what [`super::receive::Action`]s become on disk.
//!
//! A file is written to `NAME.part` and hashed (SHA-256) as it is written; only when all of
//! it is in and its hash is the sender's does it get its name (a `rename`, so the name never
//! shows a half-written file). A mismatch, a discard or an error removes the `.part`. Names are
//! never reused unless `--overwrite`: `photo.png` taken gives `photo (1).png`. A resumed file
//! continues its `.part`, whose existing bytes are hashed first so the hash covers the whole
//! file. Before a file is opened, the free space must hold what is still to come.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::name::{numbered, part_name};

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not enough room for the file.
    #[error("{need} bytes do not fit: {free} bytes free in {dir}")]
    NoSpace {
        /// Bytes still to come.
        need: u64,
        /// Bytes free.
        free: u64,
        /// The directory.
        dir: String,
    },
    /// The bytes' hash is not the sender's.
    #[error("SHA-256 mismatch: the sender says {want}, the bytes give {got}; nothing was saved")]
    Mismatch {
        /// The sender's, in hex.
        want: String,
        /// Ours, in hex.
        got: String,
    },
    /// A resumed file whose `.part` holds fewer bytes than the sender resumes from.
    #[error("cannot resume {name} at byte {offset}: {held} bytes are held")]
    Resume {
        /// The name.
        name: String,
        /// Where the sender resumes.
        offset: u64,
        /// What the `.part` holds.
        held: u64,
    },
    /// No such file is open.
    #[error("file {0} is not open")]
    NotOpen(u32),
    /// A file-system error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::Io {
        what: what.into(),
        source,
    }
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Open {
    name: String,
    part: PathBuf,
    file: File,
    hash: Sha256,
}

/// The receiving directory.
pub struct Store {
    dir: PathBuf,
    overwrite: bool,
    open: HashMap<u32, Open>,
}

impl Store {
    /// A store in `dir` (which must be a directory).
    pub fn new(dir: &Path, overwrite: bool) -> Result<Self, StoreError> {
        let meta = std::fs::metadata(dir).map_err(io_err(format!("reading {}", dir.display())))?;
        if !meta.is_dir() {
            return Err(StoreError::Io {
                what: format!("{} is not a directory", dir.display()),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            overwrite,
            open: HashMap::new(),
        })
    }

    /// A name for a new file: `name` itself if free (or `--overwrite`), else `name (1)`, …;
    /// a name another open file is being written under is taken too.
    fn free_name(&self, name: &str) -> String {
        let taken = |n: &str| {
            self.open.values().any(|o| o.name == n)
                || (!self.overwrite && self.dir.join(n).exists())
        };
        if !taken(name) {
            return name.to_string();
        }
        (1..)
            .map(|i| numbered(name, i))
            .find(|n| !taken(n))
            .expect("some number is free")
    }

    /// Bytes free for an unprivileged writer in the directory.
    pub fn free_space(&self) -> Result<u64, StoreError> {
        let st = nix::sys::statvfs::statvfs(&self.dir).map_err(|e| StoreError::Io {
            what: format!("reading the free space of {}", self.dir.display()),
            source: e.into(),
        })?;
        Ok(st.blocks_available().saturating_mul(st.fragment_size()))
    }

    /// Starts file `id` (its name already safe), `size` bytes of which the sender sends from
    /// `offset`.
    pub fn open(&mut self, id: u32, name: &str, size: u64, offset: u64) -> Result<(), StoreError> {
        let need = size - offset.min(size);
        let free = self.free_space()?;
        if need > free {
            return Err(StoreError::NoSpace {
                need,
                free,
                dir: self.dir.display().to_string(),
            });
        }
        let mut hash = Sha256::new();
        let (name, file, part) = if offset > 0 {
            // Resuming: the `.part` of this very name, kept up to `offset` and hashed.
            let part = self.dir.join(part_name(name));
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&part)
                .map_err(io_err(format!("opening {}", part.display())))?;
            let held = file.metadata().map(|m| m.len()).unwrap_or(0);
            if held < offset {
                return Err(StoreError::Resume {
                    name: name.to_string(),
                    offset,
                    held,
                });
            }
            file.set_len(offset)
                .map_err(io_err(format!("cutting {}", part.display())))?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut left = offset;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = file
                    .read(&mut buf[..want])
                    .map_err(io_err(format!("reading {}", part.display())))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                left -= n as u64;
            }
            file.seek(SeekFrom::Start(offset))
                .map_err(io_err(format!("seeking in {}", part.display())))?;
            (name.to_string(), file, part)
        } else {
            let name = self.free_name(name);
            let part = self.dir.join(part_name(&name));
            // A stale `.part` of the same name (an interrupted transfer not resumed) is
            // replaced.
            let file =
                File::create(&part).map_err(io_err(format!("creating {}", part.display())))?;
            (name, file, part)
        };
        self.open.insert(
            id,
            Open {
                name,
                part,
                file,
                hash,
            },
        );
        Ok(())
    }

    /// Appends to file `id`.
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<(), StoreError> {
        let o = self.open.get_mut(&id).ok_or(StoreError::NotOpen(id))?;
        o.file
            .write_all(data)
            .map_err(io_err(format!("writing {}", o.part.display())))?;
        o.hash.update(data);
        Ok(())
    }

    /// Ends file `id`: if its hash is `sha256`, it gets its name (returned with the hash);
    /// otherwise its `.part` is removed.
    pub fn close(&mut self, id: u32, sha256: &[u8; 32]) -> Result<(String, [u8; 32]), StoreError> {
        let o = self.open.remove(&id).ok_or(StoreError::NotOpen(id))?;
        let got: [u8; 32] = o.hash.finalize().into();
        if &got != sha256 {
            drop(o.file);
            let _ = std::fs::remove_file(&o.part);
            return Err(StoreError::Mismatch {
                want: hex(sha256),
                got: hex(&got),
            });
        }
        o.file
            .sync_all()
            .map_err(io_err(format!("writing {}", o.part.display())))?;
        drop(o.file);
        // The name may have been taken meanwhile (another program): a free one, then.
        let name = if self.overwrite || !self.dir.join(&o.name).exists() {
            o.name
        } else {
            self.free_name(&o.name)
        };
        let dest = self.dir.join(&name);
        std::fs::rename(&o.part, &dest).map_err(io_err(format!(
            "renaming {} to {}",
            o.part.display(),
            dest.display()
        )))?;
        Ok((name, got))
    }

    /// Gives up file `id`: its `.part` is removed.
    pub fn discard(&mut self, id: u32) {
        if let Some(o) = self.open.remove(&id) {
            drop(o.file);
            let _ = std::fs::remove_file(&o.part);
        }
    }

    /// How many bytes of a file named `name` (safe) of `size` bytes a `.part` holds, for
    /// resuming (0 if none, or if it holds more than the file has).
    pub fn held(&self, name: &str, size: u64) -> u64 {
        match std::fs::metadata(self.dir.join(part_name(name))) {
            Ok(m) if m.is_file() && m.len() <= size => m.len(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn a_file_is_named_only_once_verified() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::new(dir.path(), false).unwrap();
        s.open(1, "a.txt", 10, 0).unwrap();
        s.write(1, b"hello").unwrap();
        assert!(dir.path().join("a.txt.part").exists());
        assert!(!dir.path().join("a.txt").exists());
        s.write(1, b"world").unwrap();
        let (name, got) = s.close(1, &sha(b"helloworld")).unwrap();
        assert_eq!(name, "a.txt");
        assert_eq!(got, sha(b"helloworld"));
        assert_eq!(
            std::fs::read(dir.path().join("a.txt")).unwrap(),
            b"helloworld"
        );
        assert!(!dir.path().join("a.txt.part").exists());
        // The same name again: numbered, the first untouched.
        s.open(2, "a.txt", 1, 0).unwrap();
        s.write(2, b"x").unwrap();
        assert_eq!(s.close(2, &sha(b"x")).unwrap().0, "a (1).txt");
        assert_eq!(
            std::fs::read(dir.path().join("a.txt")).unwrap(),
            b"helloworld"
        );
    }

    #[test]
    fn a_wrong_hash_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::new(dir.path(), false).unwrap();
        s.open(1, "b.bin", 3, 0).unwrap();
        s.write(1, b"abc").unwrap();
        assert!(matches!(
            s.close(1, &sha(b"abd")),
            Err(StoreError::Mismatch { .. })
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        s.open(2, "c.bin", 3, 0).unwrap();
        s.discard(2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_resumed_file_is_hashed_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.iso.part"), b"01234567XX").unwrap();
        let mut s = Store::new(dir.path(), false).unwrap();
        assert_eq!(s.held("big.iso", 16), 10);
        assert_eq!(s.held("big.iso", 5), 0);
        assert_eq!(s.held("other", 16), 0);
        // The sender resumes at 8 (what it trusts), the rest follows.
        s.open(1, "big.iso", 16, 8).unwrap();
        s.write(1, b"89abcdef").unwrap();
        let (name, _) = s.close(1, &sha(b"0123456789abcdef")).unwrap();
        assert_eq!(name, "big.iso");
        assert_eq!(
            std::fs::read(dir.path().join("big.iso")).unwrap(),
            b"0123456789abcdef"
        );
        // Resuming past what is held is refused.
        std::fs::write(dir.path().join("x.part"), b"12").unwrap();
        assert!(matches!(
            s.open(2, "x", 10, 5),
            Err(StoreError::Resume { held: 2, .. })
        ));
    }

    #[test]
    fn overwrite_replaces_and_no_space_is_refused_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"old").unwrap();
        let mut s = Store::new(dir.path(), true).unwrap();
        s.open(1, "f", 3, 0).unwrap();
        s.write(1, b"new").unwrap();
        assert_eq!(s.close(1, &sha(b"new")).unwrap().0, "f");
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new");
        assert!(matches!(
            s.open(2, "huge", u64::MAX, 0),
            Err(StoreError::NoSpace { .. })
        ));
        assert!(!dir.path().join("huge.part").exists());
        assert!(Store::new(&dir.path().join("f"), false).is_err());
    }
}
