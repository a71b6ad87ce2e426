//! The open-file cache (`--file-cache N`, `--file-cache-valid DUR`), after nginx's
//! `open_file_cache`: what a request path resolved to, kept so the next request for it costs
//! no `openat2`, `fstat`, `pread` or `close`.
//!
//! An entry, keyed by the request's path as sent (before `?`), holds one version of one
//! regular file ([`CachedFile`]): its identity (device, inode, size, mtime, ctime, mode), its
//! ETag, Last-Modified and Content-Type already formatted, and either
//!
//! - the file's **bytes**, when it is small ([`SMALL`] or less), its mtime lies more than
//!   [`SETTLE`] in the past when it is read, and the cache's byte budget ([`MAX_BYTES`]) has
//!   room; no descriptor is kept then; or
//! - its open **descriptor**, shared by the responses in flight, which `sendfile` (or `pread`
//!   over TLS) reads.
//!
//! Decisions:
//!
//! - **Revalidation.** An entry is trusted for `--file-cache-valid` (1 s) after it was last
//!   checked. The first request after that resolves the path again exactly as an uncached
//!   request does (every path-safety rule of [`super::files`] runs again) and compares the
//!   identity of what it opened with the entry's: the same file keeps the entry (and its
//!   bytes) for another period; anything else (changed in place, replaced by `rename`,
//!   `chmod`, deleted, a symlink swapped) replaces or removes it. So no change is served stale
//!   for longer than the period, and an unchanged file costs one `openat2` + `fstat` + `close`
//!   a second, whatever the request rate.
//! - **Errors are not cached**: a 404 or 403 is decided afresh each time, so a file that
//!   appears is served at once.
//! - **Why the mtime must have settled before the bytes are kept.** Linux updates a file's
//!   mtime when a `write` begins. A file written right now could be read half old and half
//!   new while its identity already shows the new mtime, and the next check would find
//!   nothing changed. A file whose mtime is over a second old was not being written when we
//!   read it, or a write began after our `fstat` and its new mtime will be seen at the next
//!   check. (A file changed through a shared mapping updates its mtime later; such a writer
//!   should rename a finished file into place, as every deploy tool does.)
//! - **Bounds.** At most `--file-cache` entries (10,000; 0 turns the cache off) and
//!   [`MAX_BYTES`] of file bytes. A full cache first forgets entries unused for [`INACTIVE`],
//!   then the least recently used eighth. Descriptors kept: one per entry without bytes, and
//!   at most a quarter of the process's open-file limit (the rest is for connections).
//! - **Stored variants** (`--precompressed`): `FILE.br`/`.zst`/`.gz` have entries of their
//!   own (the key of the plain file, a NUL, the coding), checked on the same period; a missing
//!   variant is remembered too (the only negative entries), so it costs no system call between
//!   checks either.
//!
//! The bookkeeping ([`Identity`], [`is_fresh`], [`keeps_bytes`], [`victims`]) is pure: time is
//! an argument. One mutex guards the map; it is held for a hash lookup and an `Arc` clone,
//! never during a system call.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

use super::encoding::Coding;
use super::files::Opened;
use super::range;

/// Default most entries.
pub const DEFAULT_ENTRIES: usize = 10_000;
/// Default time an entry is trusted after a check.
pub const DEFAULT_VALID: Duration = Duration::from_secs(1);
/// Largest file whose bytes are kept.
pub const SMALL: u64 = 64 * 1024;
/// A file's bytes are kept only if its mtime is at least this far in the past.
pub const SETTLE: Duration = Duration::from_secs(1);
/// Most file bytes kept in all.
pub const MAX_BYTES: usize = 64 << 20;
/// A full cache first forgets entries unused for this long.
pub const INACTIVE: Duration = Duration::from_secs(20);

/// What identifies one version of a file: if none of it changed, neither did the file
/// (short of a write through a mapping that has not updated the mtime yet; see the module
/// docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    mode: u32,
}

impl Identity {
    /// The identity `fstat` gave.
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mode: meta.mode(),
        }
    }
}

/// Whether an entry checked at `checked` may be used at `now` without a new check.
pub fn is_fresh(checked: Instant, now: Instant, valid: Duration) -> bool {
    now.saturating_duration_since(checked) < valid
}

/// Whether the bytes of a `len`-byte file modified at `mtime` may be kept, read at wall-clock
/// time `wall`, with `room` bytes left in the budget.
pub fn keeps_bytes(len: u64, mtime: SystemTime, wall: SystemTime, room: usize) -> bool {
    len <= SMALL
        && len as usize <= room
        && wall
            .duration_since(mtime)
            .is_ok_and(|settled| settled >= SETTLE)
}

/// Which of `used` (an entry's key and when it was last used) a full cache forgets at `now`:
/// every entry unused for [`INACTIVE`], or if there is none, the least recently used eighth
/// (at least one).
pub fn victims<K: Clone>(used: &[(K, Instant)], now: Instant) -> Vec<K> {
    let inactive: Vec<K> = used
        .iter()
        .filter(|(_, u)| now.saturating_duration_since(*u) >= INACTIVE)
        .map(|(k, _)| k.clone())
        .collect();
    if !inactive.is_empty() || used.is_empty() {
        return inactive;
    }
    let n = (used.len() / 8).max(1);
    let mut order: Vec<&(K, Instant)> = used.iter().collect();
    order.select_nth_unstable_by_key(n - 1, |(_, u)| *u);
    order[..n].iter().map(|(k, _)| k.clone()).collect()
}

/// Where a cached file's body comes from.
#[derive(Debug)]
pub enum Content {
    /// The whole file, read once.
    Bytes(Bytes),
    /// The open file, read per response (`sendfile`, or `pread` over TLS).
    File(Arc<File>),
}

/// One version of one regular file, ready to answer from.
#[derive(Debug)]
pub struct CachedFile {
    /// The file's real path under the root (variants are found beside it).
    pub path: PathBuf,
    /// Its identity when opened.
    pub id: Identity,
    /// Its size.
    pub len: u64,
    /// Its modification time.
    pub mtime: SystemTime,
    /// Its weak ETag (with the coding, for a stored variant).
    pub etag: String,
    /// The same, as a header value (cloning it copies no bytes).
    pub etag_value: HeaderValue,
    /// `Last-Modified`.
    pub last_modified: HeaderValue,
    /// The plain file's `Content-Type` (a variant keeps the original's).
    pub content_type: HeaderValue,
    /// The stored variant's coding, or None for the plain file.
    pub coding: Option<Coding>,
    /// The body.
    pub content: Content,
}

impl CachedFile {
    /// Builds the entry for a freshly opened file. The bytes are read now when
    /// [`keeps_bytes`] allows (a failed or short read just keeps the descriptor).
    pub fn new(
        opened: Opened,
        content_type: HeaderValue,
        coding: Option<Coding>,
        wall: SystemTime,
        room: usize,
    ) -> Self {
        let Opened { path, file, meta } = opened;
        let len = meta.len();
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let content = if keeps_bytes(len, mtime, wall, room) {
            read_whole(&file, len).map_or_else(|| Content::File(Arc::new(file)), Content::Bytes)
        } else {
            Content::File(Arc::new(file))
        };
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(mtime))
            .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
        let etag = range::etag(len, mtime, coding.map(Coding::token));
        Self {
            // The tag is hex digits, quotes and a coding token: always a valid value.
            etag_value: HeaderValue::from_str(&etag)
                .unwrap_or_else(|_| HeaderValue::from_static("W/\"0\"")),
            etag,
            id: Identity::of(&meta),
            path,
            len,
            mtime,
            last_modified,
            content_type,
            coding,
            content,
        }
    }

    /// Bytes of file content and descriptors this entry holds.
    fn held(&self) -> (usize, usize) {
        match &self.content {
            Content::Bytes(b) => (b.len(), 0),
            Content::File(_) => (0, 1),
        }
    }
}

/// The whole of a `len`-byte file, or None if it is not exactly that long now.
fn read_whole(file: &File, len: u64) -> Option<Bytes> {
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    file.read_exact_at(&mut buf, 0).ok()?;
    // One byte more would mean it grew since the fstat: keep the descriptor instead.
    let mut extra = [0u8; 1];
    match file.read_at(&mut extra, len) {
        Ok(0) => Some(Bytes::from(buf)),
        _ => None,
    }
}

/// What the cache knows of a key.
#[derive(Debug)]
pub enum Lookup {
    /// Checked less than the period ago: use it (None: a stored variant known not to exist).
    Fresh(Option<Arc<CachedFile>>),
    /// Known, but due for a check: resolve again and pass it to [`FileCache::put`].
    Stale(Option<Arc<CachedFile>>),
    /// Not known.
    Miss,
}

struct Slot {
    /// None: a stored variant that does not exist (only variant keys hold None).
    file: Option<Arc<CachedFile>>,
    checked: Instant,
    used: Instant,
}

impl Slot {
    fn held(&self) -> (usize, usize) {
        self.file.as_ref().map_or((0, 0), |f| f.held())
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<Box<str>, Slot>,
    /// File bytes held by the entries in `map`.
    bytes: usize,
    /// Descriptors held by the entries in `map`.
    fds: usize,
}

impl Inner {
    fn add(&mut self, (bytes, fds): (usize, usize)) {
        self.bytes += bytes;
        self.fds += fds;
    }

    fn sub(&mut self, (bytes, fds): (usize, usize)) {
        self.bytes -= bytes;
        self.fds -= fds;
    }
}

/// The cache, shared by every worker.
pub struct FileCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_fds: usize,
    valid: Duration,
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("max_entries", &self.max_entries)
            .field("max_fds", &self.max_fds)
            .field("valid", &self.valid)
            .finish_non_exhaustive()
    }
}

impl FileCache {
    /// A cache of at most `max_entries` entries holding at most `max_fds` descriptors, each
    /// entry trusted `valid` after a check.
    pub fn new(max_entries: usize, max_fds: usize, valid: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            max_entries,
            max_fds,
            valid,
        }
    }

    /// How long an entry is trusted after a check.
    pub fn valid(&self) -> Duration {
        self.valid
    }

    /// What is known of `key` at `now`.
    pub fn get(&self, key: &str, now: Instant) -> Lookup {
        let Ok(mut inner) = self.inner.lock() else {
            return Lookup::Miss;
        };
        match inner.map.get_mut(key) {
            None => Lookup::Miss,
            Some(slot) => {
                slot.used = now;
                if is_fresh(slot.checked, now, self.valid) {
                    Lookup::Fresh(slot.file.clone())
                } else {
                    Lookup::Stale(slot.file.clone())
                }
            }
        }
    }

    /// Bytes the cache may still take.
    pub fn room(&self) -> usize {
        self.inner
            .lock()
            .map_or(0, |inner| MAX_BYTES.saturating_sub(inner.bytes))
    }

    /// Records what `key` resolved to at `now` (checked then). When it is the same version as
    /// `prev` (the stale entry), that entry is kept, bytes and all, and returned; otherwise
    /// `fresh` is built (only then: reading the bytes is its cost) and stored.
    pub fn put(
        &self,
        key: &str,
        now: Instant,
        id: Identity,
        prev: Option<&Arc<CachedFile>>,
        fresh: impl FnOnce(usize) -> CachedFile,
    ) -> Arc<CachedFile> {
        if let Some(prev) = prev.filter(|p| p.id == id) {
            if let Ok(mut inner) = self.inner.lock()
                && let Some(slot) = inner.map.get_mut(key)
                && slot.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, prev))
            {
                slot.checked = now;
            }
            return prev.clone();
        }
        let file = Arc::new(fresh(self.room()));
        self.insert(key, now, Some(file.clone()));
        file
    }

    /// Records that the stored variant `key` does not exist, as of `now`.
    pub fn put_missing(&self, key: &str, now: Instant) {
        self.insert(key, now, None);
    }

    fn insert(&self, key: &str, now: Instant, file: Option<Arc<CachedFile>>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let slot = Slot {
            file,
            checked: now,
            used: now,
        };
        if let Some(old) = inner.map.remove(key) {
            inner.sub(old.held());
        }
        let needs_fd = slot.held().1;
        if inner.map.len() >= self.max_entries || inner.fds + needs_fd > self.max_fds {
            let used: Vec<(Box<str>, Instant)> =
                inner.map.iter().map(|(k, s)| (k.clone(), s.used)).collect();
            for k in victims(&used, now) {
                if let Some(gone) = inner.map.remove(&k) {
                    inner.sub(gone.held());
                }
            }
        }
        if inner.map.len() < self.max_entries && inner.fds + needs_fd <= self.max_fds {
            inner.add(slot.held());
            inner.map.insert(key.into(), slot);
        }
    }

    /// Forgets `key` and its stored variants (a file that shrank while it was sent: which of
    /// them it was is not known here).
    pub fn forget(&self, key: &str) {
        self.remove(key);
        for coding in Coding::ALL {
            self.remove(&variant_key(key, coding));
        }
    }

    /// Forgets `key` (it no longer resolves to a regular file).
    pub fn remove(&self, key: &str) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(gone) = inner.map.remove(key)
        {
            inner.sub(gone.held());
        }
    }

    /// Entries, file bytes and descriptors held.
    pub fn size(&self) -> (usize, usize, usize) {
        self.inner
            .lock()
            .map_or((0, 0, 0), |inner| (inner.map.len(), inner.bytes, inner.fds))
    }
}

/// The path part of a request target (before `?`): the cache's key.
pub fn key(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// The key of `key`'s stored variant in `coding` (`--precompressed`): the plain key, a NUL
/// (no request path holds one), the coding's token.
pub fn variant_key(key: &str, coding: Coding) -> String {
    format!("{key}\0{}", coding.token())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::net::clock;

    #[test]
    fn freshness_is_the_period_after_a_check() {
        let t0 = clock::now();
        let valid = Duration::from_secs(1);
        assert!(is_fresh(t0, t0, valid));
        assert!(is_fresh(t0, t0 + Duration::from_millis(999), valid));
        assert!(!is_fresh(t0, t0 + valid, valid));
        // A clock reading from before the check (another worker's) is still fresh.
        assert!(is_fresh(t0 + valid, t0, valid));
        assert!(!is_fresh(t0, t0, Duration::ZERO));
    }

    #[test]
    fn bytes_are_kept_only_for_small_settled_files_within_budget() {
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let old = wall - Duration::from_secs(5);
        assert!(keeps_bytes(1024, old, wall, MAX_BYTES));
        assert!(keeps_bytes(SMALL, old, wall, MAX_BYTES));
        assert!(!keeps_bytes(SMALL + 1, old, wall, MAX_BYTES));
        // Modified less than SETTLE ago, or in the future (a clock step): may be mid-write.
        assert!(!keeps_bytes(
            1024,
            wall - Duration::from_millis(500),
            wall,
            MAX_BYTES
        ));
        assert!(keeps_bytes(1024, wall - SETTLE, wall, MAX_BYTES));
        assert!(!keeps_bytes(
            1024,
            wall + Duration::from_secs(1),
            wall,
            MAX_BYTES
        ));
        // The budget.
        assert!(!keeps_bytes(1024, old, wall, 1023));
        assert!(keeps_bytes(1024, old, wall, 1024));
    }

    #[test]
    fn a_full_cache_forgets_the_inactive_then_the_least_recently_used() {
        let t0 = clock::now();
        let now = t0 + Duration::from_secs(60);
        let used: Vec<(u32, Instant)> = (0..16)
            .map(|i| (i, now - Duration::from_secs(u64::from(i))))
            .collect();
        // 16 entries used 0..15 s ago: none inactive, so the oldest eighth: 15 and 14.
        let mut v = victims(&used, now);
        v.sort_unstable();
        assert_eq!(v, [14, 15]);
        // Two unused for INACTIVE or longer: just those.
        let mut used = used;
        used[3].1 = now - INACTIVE;
        used[7].1 = now - Duration::from_secs(59);
        let mut v = victims(&used, now);
        v.sort_unstable();
        assert_eq!(v, [3, 7]);
        // Always at least one, never from nothing.
        assert_eq!(victims(&[(1, now)], now), [1]);
        assert!(victims::<u32>(&[], now).is_empty());
    }

    #[test]
    fn the_key_is_the_path_without_the_query() {
        assert_eq!(key("/a.txt?x=1"), "/a.txt");
        assert_eq!(key("/a.txt"), "/a.txt");
        assert_eq!(key("/?"), "/");
        assert_eq!(variant_key("/a.js", Coding::Br), "/a.js\0br");
    }

    fn opened(dir: &Path, name: &str) -> Opened {
        let path = dir.join(name);
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        Opened { path, file, meta }
    }

    #[test]
    fn an_unchanged_file_keeps_its_entry_and_a_changed_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "one").unwrap();
        let cache = FileCache::new(10, 10, Duration::from_secs(1));
        let t0 = clock::now();
        // Read "later", so the file counts as settled and its bytes are kept.
        let wall = clock::wall() + Duration::from_secs(5);
        let ct = HeaderValue::from_static("text/plain");
        assert!(matches!(cache.get("/a", t0), Lookup::Miss));
        let o = opened(dir.path(), "a");
        let id = Identity::of(&o.meta);
        let first = cache.put("/a", t0, id, None, |room| {
            CachedFile::new(o, ct.clone(), None, wall, room)
        });
        assert!(matches!(&first.content, Content::Bytes(b) if b == "one"));
        assert_eq!(cache.size(), (1, 3, 0));
        assert!(
            matches!(cache.get("/a", t0 + Duration::from_millis(10)), Lookup::Fresh(Some(f)) if Arc::ptr_eq(&f, &first))
        );
        // Due for a check; the same file: the same entry, checked again.
        let t1 = t0 + Duration::from_secs(2);
        let Lookup::Stale(Some(prev)) = cache.get("/a", t1) else {
            panic!("not stale")
        };
        let o = opened(dir.path(), "a");
        let id = Identity::of(&o.meta);
        let again = cache.put("/a", t1, id, Some(&prev), |_| panic!("rebuilt"));
        assert!(Arc::ptr_eq(&again, &first));
        assert!(matches!(cache.get("/a", t1), Lookup::Fresh(_)));
        // Replaced by rename: another inode, a new entry.
        std::fs::write(dir.path().join("tmp"), "two!").unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("a")).unwrap();
        let t2 = t1 + Duration::from_secs(2);
        let Lookup::Stale(Some(prev)) = cache.get("/a", t2) else {
            panic!("not stale")
        };
        let o = opened(dir.path(), "a");
        let id = Identity::of(&o.meta);
        let new = cache.put("/a", t2, id, Some(&prev), |room| {
            CachedFile::new(o, ct.clone(), None, wall, room)
        });
        assert!(matches!(&new.content, Content::Bytes(b) if b == "two!"));
        assert_eq!(cache.size(), (1, 4, 0));
        cache.remove("/a");
        assert_eq!(cache.size(), (0, 0, 0));
    }

    #[test]
    fn a_file_just_written_is_served_from_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "fresh").unwrap();
        let o = opened(dir.path(), "a");
        let f = CachedFile::new(
            o,
            HeaderValue::from_static("text/plain"),
            None,
            clock::wall(),
            MAX_BYTES,
        );
        assert!(matches!(f.content, Content::File(_)));
        assert_eq!(f.len, 5);
    }

    #[test]
    fn the_cache_stays_within_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(8, 8, Duration::from_secs(1));
        let t0 = clock::now();
        let wall = clock::wall() + Duration::from_secs(5);
        for i in 0..100u64 {
            let name = format!("f{i}");
            std::fs::write(dir.path().join(&name), "x").unwrap();
            let o = opened(dir.path(), &name);
            let id = Identity::of(&o.meta);
            cache.put(
                &format!("/{name}"),
                t0 + Duration::from_millis(i),
                id,
                None,
                |room| CachedFile::new(o, HeaderValue::from_static("text/plain"), None, wall, room),
            );
            let (n, bytes, _) = cache.size();
            assert!(n <= 8, "{n} entries");
            assert_eq!(bytes, n);
        }
        // The most recent is still there.
        assert!(matches!(
            cache.get("/f99", t0 + Duration::from_millis(100)),
            Lookup::Fresh(_)
        ));
    }

    #[test]
    fn missing_variants_are_remembered_for_the_period_and_descriptors_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(100, 2, Duration::from_secs(1));
        let t0 = clock::now();
        cache.put_missing("/a\0gzip", t0);
        assert!(matches!(cache.get("/a\0gzip", t0), Lookup::Fresh(None)));
        assert!(matches!(
            cache.get("/a\0gzip", t0 + Duration::from_secs(1)),
            Lookup::Stale(None)
        ));
        // Files just written keep their descriptors: at most two held.
        for i in 0..5u64 {
            let name = format!("f{i}");
            std::fs::write(dir.path().join(&name), "x").unwrap();
            let o = opened(dir.path(), &name);
            let id = Identity::of(&o.meta);
            let f = cache.put(&format!("/{name}"), t0, id, None, |room| {
                CachedFile::new(
                    o,
                    HeaderValue::from_static("text/plain"),
                    None,
                    clock::wall(),
                    room,
                )
            });
            assert!(matches!(f.content, Content::File(_)));
            let (_, _, fds) = cache.size();
            assert!(fds <= 2, "{fds} descriptors");
        }
    }
}
