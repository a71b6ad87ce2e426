//! The receiver's files: what [`super::receive::Action`]s become on disk.
//!
//! A file is written to `NAME.part` and hashed (SHA-256) as it is written; only when all of
//! it is in and its hash is the sender's does it get its name (a `rename`, so the name never
//! shows a half-written file). A mismatch, a discard or an error removes the `.part`. Names are
//! never reused unless `--overwrite`: `photo.png` taken gives `photo (1).png`. A resumed file
//! continues its `.part`, whose existing bytes are hashed first so the hash covers the whole
//! file. Before a file is opened, the free space must hold what is still to come.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

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
    /// Another connection is writing a file of that name right now.
    #[error("{0} is being received on another connection")]
    Busy(String),
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

/// The names being written in one directory, shared by the stores of every connection to it,
/// so two senders of `photo.png` at once get `photo.png` and `photo (1).png`, and no `.part` is
/// written by two connections.
#[derive(Debug, Clone, Default)]
pub struct Claims(Arc<Mutex<HashSet<String>>>);

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `name` (a final name or a `.part` name) would collide with a name claimed.
    fn collides(set: &HashSet<String>, name: &str) -> bool {
        set.contains(name)
            || set
                .iter()
                .any(|c| part_name(c) == name || part_name(name) == *c)
    }
}

/// The receiving directory, as one connection sees it.
pub struct Store {
    dir: PathBuf,
    overwrite: bool,
    open: HashMap<u32, Open>,
    claims: Claims,
}

impl Drop for Store {
    /// The connection is gone: files still open keep their `.part` (a sender can resume them
    /// with `--continue`), and their names are free again.
    fn drop(&mut self) {
        let mut set = self.claims.lock();
        for o in self.open.values() {
            set.remove(&o.name);
        }
    }
}

impl Store {
    /// A store in `dir` (which must be a directory), alone in it.
    pub fn new(dir: &Path, overwrite: bool) -> Result<Self, StoreError> {
        Self::shared(dir, overwrite, Claims::default())
    }

    /// A store in `dir` that shares `claims` with the other connections' stores.
    pub fn shared(dir: &Path, overwrite: bool, claims: Claims) -> Result<Self, StoreError> {
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
            claims,
        })
    }

    /// Claims a name for a new file: `name` itself if free (or `--overwrite`), else
    /// `name (1)`, …; a name another file is being written under (on any connection) is taken.
    fn claim_free_name(&self, name: &str) -> String {
        let mut set = self.claims.lock();
        let taken = |n: &str, set: &HashSet<String>| {
            Claims::collides(set, n) || (!self.overwrite && self.dir.join(n).exists())
        };
        let free = if taken(name, &set) {
            (1..)
                .map(|i| numbered(name, i))
                .find(|n| !taken(n, &set))
                .expect("some number is free")
        } else {
            name.to_string()
        };
        set.insert(free.clone());
        free
    }

    /// Claims `name` itself (to resume its `.part`), unless another connection holds it.
    fn claim_exact(&self, name: &str) -> Result<(), StoreError> {
        let mut set = self.claims.lock();
        if Claims::collides(&set, name) {
            return Err(StoreError::Busy(name.to_string()));
        }
        set.insert(name.to_string());
        Ok(())
    }

    fn unclaim(&self, name: &str) {
        self.claims.lock().remove(name);
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
        let name = if offset > 0 {
            self.claim_exact(name)?;
            name.to_string()
        } else {
            self.claim_free_name(name)
        };
        match self.open_claimed(&name, offset) {
            Ok((file, part, hash)) => {
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
            Err(e) => {
                self.unclaim(&name);
                Err(e)
            }
        }
    }

    fn open_claimed(
        &mut self,
        name: &str,
        offset: u64,
    ) -> Result<(File, PathBuf, Sha256), StoreError> {
        let mut hash = Sha256::new();
        if offset > 0 {
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
            Ok((file, part, hash))
        } else {
            let part = self.dir.join(part_name(name));
            // A stale `.part` of the same name (an interrupted transfer not resumed) is
            // replaced. `create_new` (O_EXCL) does not follow a symbolic link planted there.
            match std::fs::remove_file(&part) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("removing {}", part.display()))(e)),
            }
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&part)
                .map_err(io_err(format!("creating {}", part.display())))?;
            Ok((file, part, hash))
        }
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
        let claimed = o.name.clone();
        let result = self.finish(o, sha256);
        self.unclaim(&claimed);
        result
    }

    fn finish(&mut self, o: Open, sha256: &[u8; 32]) -> Result<(String, [u8; 32]), StoreError> {
        let got: [u8; 32] = o.hash.finalize().into();
        if &got != sha256 {
            drop(o.file);
            let _ = std::fs::remove_file(&o.part);
            return Err(StoreError::Mismatch {
                want: hex(sha256),
                got: hex(&got),
            });
        }
        if let Err(e) = o.file.sync_all() {
            let _ = std::fs::remove_file(&o.part);
            return Err(io_err(format!("writing {}", o.part.display()))(e));
        }
        drop(o.file);
        if self.overwrite {
            let dest = self.dir.join(&o.name);
            return match std::fs::rename(&o.part, &dest) {
                Ok(()) => Ok((o.name, got)),
                Err(e) => {
                    let _ = std::fs::remove_file(&o.part);
                    Err(io_err(format!(
                        "renaming {} to {}",
                        o.part.display(),
                        dest.display()
                    ))(e))
                }
            };
        }
        // Never over a file that appeared meanwhile (another program): RENAME_NOREPLACE, and
        // the next free number if the name was taken.
        let mut name = o.name.clone();
        for _ in 0..1000 {
            let dest = self.dir.join(&name);
            match nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &o.part,
                nix::fcntl::AT_FDCWD,
                &dest,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => return Ok((name, got)),
                Err(nix::errno::Errno::EEXIST) => {
                    name = self.claim_free_name(&o.name);
                    self.unclaim(&name);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&o.part);
                    return Err(io_err(format!(
                        "renaming {} to {}",
                        o.part.display(),
                        dest.display()
                    ))(e.into()));
                }
            }
        }
        let _ = std::fs::remove_file(&o.part);
        Err(StoreError::Busy(o.name))
    }

    /// Gives up file `id`: its `.part` is removed.
    pub fn discard(&mut self, id: u32) {
        if let Some(o) = self.open.remove(&id) {
            drop(o.file);
            let _ = std::fs::remove_file(&o.part);
            self.unclaim(&o.name);
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
    fn two_connections_never_share_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::default();
        let mut a = Store::shared(dir.path(), false, claims.clone()).unwrap();
        let mut b = Store::shared(dir.path(), false, claims.clone()).unwrap();
        a.open(1, "p.png", 1, 0).unwrap();
        b.open(1, "p.png", 1, 0).unwrap();
        // Resuming a name another connection is writing is refused.
        let mut c = Store::shared(dir.path(), false, claims.clone()).unwrap();
        assert!(matches!(c.open(1, "p.png", 2, 1), Err(StoreError::Busy(_))));
        a.write(1, b"a").unwrap();
        b.write(1, b"b").unwrap();
        assert_eq!(b.close(1, &sha(b"b")).unwrap().0, "p (1).png");
        assert_eq!(a.close(1, &sha(b"a")).unwrap().0, "p.png");
        assert_eq!(std::fs::read(dir.path().join("p.png")).unwrap(), b"a");
        assert_eq!(std::fs::read(dir.path().join("p (1).png")).unwrap(), b"b");
        // A connection that ends with a file open keeps its `.part` and frees the name.
        c.open(2, "q.bin", 10, 0).unwrap();
        c.write(2, b"12345").unwrap();
        drop(c);
        assert!(claims.lock().is_empty());
        assert_eq!(a.held("q.bin", 10), 5);
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
