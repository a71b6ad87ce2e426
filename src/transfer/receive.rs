//! The receiver's side of the protocol, sans-IO: it reads the sender's messages in order,
//! checks that they make sense together, and says what to do ([`Action`]) and what to answer
//! ([`Message`]). The store (the driver) does the file work: it opens `NAME.part`, writes,
//! hashes, and on [`Action::Close`] compares the SHA-256 and renames or removes, then tells the
//! receiver how it went ([`Receiver::saved`], [`Receiver::failed`]).
//!
//! What it refuses, and how:
//! - a file larger than `max_size`: ERROR "too large", and its chunks are skipped;
//! - a chunk for a file that was never begun, or a second FILE_BEGIN with the same id, or
//!   anything before HELLO: a protocol error, and the connection ends;
//! - more bytes than the file's declared size, or FILE_END before all of them: ERROR
//!   "mismatch", and the `.part` is removed (nothing is renamed into place).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::name::safe_name;
use super::proto::{ErrorCode, MAX_FILES_IN_FLIGHT, Message, contradicts};

/// The receiver's limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest file accepted.
    pub max_size: u64,
}

/// What the store must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show a text.
    Text {
        /// Its id.
        id: u32,
        /// The text.
        text: String,
    },
    /// Start writing a file: `name` is already safe; the store picks a free variant of it,
    /// checks the free space for `size - offset` bytes, and opens `NAME.part` (kept up to
    /// `offset` when resuming, and hashed from its start).
    Open {
        /// The file's id.
        id: u32,
        /// Its safe name.
        name: String,
        /// Its whole size.
        size: u64,
        /// Where the bytes to come start.
        offset: u64,
        /// Its declared media type.
        media: String,
    },
    /// Append to the file.
    Write {
        /// The file's id.
        id: u32,
        /// The bytes.
        data: Bytes,
    },
    /// The declared media type is contradicted by the file's first bytes (reported, not
    /// fatal: the bytes are what they are).
    MediaMismatch {
        /// The file's id.
        id: u32,
        /// What the sender said.
        declared: String,
        /// What the magic bytes say, if anything known.
        found: Option<&'static str>,
    },
    /// All bytes are in: compare the SHA-256 with `sha256`, rename `.part` to its name if it
    /// matches (then call [`Receiver::saved`]), remove it if not (then [`Receiver::failed`]).
    Close {
        /// The file's id.
        id: u32,
        /// The sender's SHA-256.
        sha256: [u8; 32],
    },
    /// Remove the file's `.part`: it will not be completed.
    Discard {
        /// The file's id.
        id: u32,
    },
    /// How much of a file named `name` (safe) of `size` bytes is held? Answer with
    /// [`Receiver::have`].
    Query {
        /// The query's id.
        id: u32,
        /// The safe name.
        name: String,
        /// The file's size.
        size: u64,
    },
    /// The sender said BYE: end the connection once the answers are out.
    Finished,
}

/// Why the connection must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("protocol error: {0}")]
pub struct Fatal(pub String);

#[derive(Debug)]
struct Incoming {
    size: u64,
    /// Bytes the file holds so far (from 0, the resumed part included).
    at: u64,
    media: String,
    /// Refused (too large): its chunks are skipped.
    refused: bool,
    /// The first bytes were checked against the media type.
    sniffed: bool,
    /// The file's first bytes, gathered across chunks until there are enough to check.
    head: Vec<u8>,
}

/// Bytes enough for every magic [`super::proto::sniff`] knows.
const HEAD: usize = 16;

/// Files begun and not ended (refused ones included) a connection may have; more is a
/// protocol error.
pub const MAX_TRACKED: usize = 1024;

impl Incoming {
    /// Gathers the first bytes; once there are enough (or the file is over, `done`), checks
    /// them against the declared type, once.
    fn check(&mut self, id: u32, data: &[u8], done: bool) -> Option<Action> {
        if self.sniffed {
            return None;
        }
        let room = HEAD - self.head.len();
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        if self.head.len() < HEAD && !done {
            return None;
        }
        self.sniffed = true;
        contradicts(&self.media, &self.head).map(|found| Action::MediaMismatch {
            id,
            declared: self.media.clone(),
            found,
        })
    }
}

/// The receiver's state.
#[derive(Debug)]
pub struct Receiver {
    cfg: Config,
    hello: bool,
    files: HashMap<u32, Incoming>,
    actions: VecDeque<Action>,
    answers: VecDeque<Message>,
}

impl Receiver {
    /// A receiver waiting for HELLO.
    pub fn new(cfg: Config) -> Self {
        Receiver {
            cfg,
            hello: false,
            files: HashMap::new(),
            actions: VecDeque::new(),
            answers: VecDeque::new(),
        }
    }

    /// One message from the sender. `Err`: answer with the ERROR in [`Receiver::poll_answer`]
    /// and close.
    pub fn handle(&mut self, m: Message) -> Result<(), Fatal> {
        let fatal = |s: String, me: &mut Receiver| {
            me.answers.push_back(Message::Error {
                id: 0,
                code: ErrorCode::Protocol,
                reason: s.clone(),
            });
            Err(Fatal(s))
        };
        if !self.hello {
            if m == Message::Hello {
                self.hello = true;
                self.answers.push_back(Message::Hello);
                return Ok(());
            }
            return fatal("the first frame must be HELLO".into(), self);
        }
        match m {
            Message::Hello => return fatal("a second HELLO".into(), self),
            Message::Text { id, text } => {
                self.actions.push_back(Action::Text { id, text });
                self.answers.push_back(Message::TextOk { id });
            }
            Message::FileBegin {
                id,
                size,
                offset,
                name,
                media,
            } => {
                if self.files.contains_key(&id) {
                    return fatal(format!("file {id} begun twice"), self);
                }
                // Every file begun and not ended is remembered (its chunks are recognised even
                // after a refusal): bounded, like every other thing a peer can make us keep.
                if self.files.len() >= MAX_TRACKED {
                    return fatal(
                        format!("more than {MAX_TRACKED} files begun and not ended"),
                        self,
                    );
                }
                let open = self.files.values().filter(|f| !f.refused).count();
                let refusal = if size > self.cfg.max_size {
                    Some((
                        ErrorCode::TooLarge,
                        format!(
                            "{size} bytes is more than this receiver takes ({} bytes, --max-size)",
                            self.cfg.max_size
                        ),
                    ))
                } else if open >= MAX_FILES_IN_FLIGHT {
                    Some((
                        ErrorCode::Other,
                        format!("more than {MAX_FILES_IN_FLIGHT} files at once"),
                    ))
                } else {
                    None
                };
                let refused = refusal.is_some();
                if let Some((code, reason)) = refusal {
                    self.answers.push_back(Message::Error { id, code, reason });
                } else {
                    self.actions.push_back(Action::Open {
                        id,
                        name: safe_name(&name),
                        size,
                        offset,
                        media: media.clone(),
                    });
                }
                self.files.insert(
                    id,
                    Incoming {
                        size,
                        at: offset,
                        media,
                        refused,
                        // A resumed file's head was checked the first time.
                        sniffed: offset > 0,
                        head: Vec::new(),
                    },
                );
            }
            Message::FileChunk { id, data } => {
                let Some(f) = self.files.get_mut(&id) else {
                    return fatal(format!("a chunk of file {id}, which was never begun"), self);
                };
                if f.refused {
                    return Ok(());
                }
                let len = data.len() as u64;
                if f.at + len > f.size {
                    let reason = format!(
                        "more bytes than the {} declared (at least {})",
                        f.size,
                        f.at + len
                    );
                    f.refused = true;
                    self.actions.push_back(Action::Discard { id });
                    self.answers.push_back(Message::Error {
                        id,
                        code: ErrorCode::Mismatch,
                        reason,
                    });
                    return Ok(());
                }
                f.at += len;
                if let Some(a) = f.check(id, &data, f.at == f.size) {
                    self.actions.push_back(a);
                }
                self.actions.push_back(Action::Write { id, data });
            }
            Message::FileEnd { id, sha256 } => {
                let Some(mut f) = self.files.remove(&id) else {
                    return fatal(format!("the end of file {id}, which was never begun"), self);
                };
                if f.refused {
                    return Ok(());
                }
                // A file shorter than the magic it claims (or empty) is checked now.
                if let Some(a) = f.check(id, &[], true) {
                    self.actions.push_back(a);
                }
                if f.at != f.size {
                    self.actions.push_back(Action::Discard { id });
                    self.answers.push_back(Message::Error {
                        id,
                        code: ErrorCode::Mismatch,
                        reason: format!("{} bytes came of the {} declared", f.at, f.size),
                    });
                    return Ok(());
                }
                self.actions.push_back(Action::Close { id, sha256 });
            }
            Message::FileQuery { id, size, name } => {
                self.actions.push_back(Action::Query {
                    id,
                    name: safe_name(&name),
                    size,
                });
            }
            Message::Bye => {
                // Files begun and never ended will not be: their `.part` files go.
                let mut open: Vec<u32> = self.files.drain().map(|(id, _)| id).collect();
                open.sort_unstable();
                for id in open {
                    self.actions.push_back(Action::Discard { id });
                }
                self.actions.push_back(Action::Finished);
            }
            other => {
                return fatal(
                    format!("a {:#04x} frame, which only a receiver sends", other.kind()),
                    self,
                );
            }
        }
        Ok(())
    }

    /// The store saved file `id` as `saved_as` with this SHA-256 (which matched).
    pub fn saved(&mut self, id: u32, sha256: [u8; 32], saved_as: String) {
        self.answers.push_back(Message::FileOk {
            id,
            sha256,
            saved_as,
        });
    }

    /// The store could not complete file `id` (a hash mismatch, a write error, no space).
    pub fn failed(&mut self, id: u32, code: ErrorCode, reason: String) {
        if let Some(f) = self.files.get_mut(&id) {
            f.refused = true;
        }
        self.answers.push_back(Message::Error { id, code, reason });
    }

    /// The store's answer to a query: it holds `bytes` of that file.
    pub fn have(&mut self, id: u32, bytes: u64) {
        self.answers.push_back(Message::Have { id, bytes });
    }

    /// The next thing for the store to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next message to send back.
    pub fn poll_answer(&mut self) -> Option<Message> {
        self.answers.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx() -> Receiver {
        let mut r = Receiver::new(Config { max_size: 1000 });
        r.handle(Message::Hello).unwrap();
        assert_eq!(r.poll_answer(), Some(Message::Hello));
        r
    }

    fn begin(id: u32, size: u64, name: &str, media: &str) -> Message {
        Message::FileBegin {
            id,
            size,
            offset: 0,
            name: name.into(),
            media: media.into(),
        }
    }

    fn chunk(id: u32, b: &'static [u8]) -> Message {
        Message::FileChunk {
            id,
            data: Bytes::from_static(b),
        }
    }

    fn actions(r: &mut Receiver) -> Vec<Action> {
        std::iter::from_fn(|| r.poll_action()).collect()
    }

    fn answers(r: &mut Receiver) -> Vec<Message> {
        std::iter::from_fn(|| r.poll_answer()).collect()
    }

    #[test]
    fn files_at_once_and_files_remembered_are_bounded() {
        let mut r = rx();
        for id in 1..=MAX_FILES_IN_FLIGHT as u32 {
            r.handle(begin(id, 10, "f", "")).unwrap();
        }
        assert_eq!(answers(&mut r), []);
        // One more at once is refused, not fatal; its END is then forgotten silently.
        r.handle(begin(1000, 10, "f", "")).unwrap();
        assert!(matches!(
            answers(&mut r)[..],
            [Message::Error {
                id: 1000,
                code: ErrorCode::Other,
                ..
            }]
        ));
        r.handle(Message::FileEnd {
            id: 1000,
            sha256: [0; 32],
        })
        .unwrap();
        assert_eq!(answers(&mut r), []);
        // Refused files count towards what a connection may leave begun: 1,024 at most.
        let mut big = Receiver::new(Config { max_size: 0 });
        big.handle(Message::Hello).unwrap();
        for id in 1..=MAX_TRACKED as u32 {
            big.handle(begin(id, 10, "f", "")).unwrap();
        }
        assert!(big.handle(begin(5000, 10, "f", "")).is_err());
    }

    #[test]
    fn texts_and_a_file_interleaved() {
        let mut r = rx();
        r.handle(begin(2, 8, "../../x.png", "image/png")).unwrap();
        r.handle(chunk(2, b"\x89PN")).unwrap();
        r.handle(Message::Text {
            id: 3,
            text: "between".into(),
        })
        .unwrap();
        r.handle(chunk(2, b"G\r\n\x1a\n")).unwrap();
        r.handle(Message::FileEnd {
            id: 2,
            sha256: [7; 32],
        })
        .unwrap();
        assert_eq!(
            actions(&mut r),
            vec![
                Action::Open {
                    id: 2,
                    name: "x.png".into(),
                    size: 8,
                    offset: 0,
                    media: "image/png".into()
                },
                Action::Write {
                    id: 2,
                    data: Bytes::from_static(b"\x89PN")
                },
                Action::Text {
                    id: 3,
                    text: "between".into()
                },
                Action::Write {
                    id: 2,
                    data: Bytes::from_static(b"G\r\n\x1a\n")
                },
                Action::Close {
                    id: 2,
                    sha256: [7; 32]
                },
            ]
        );
        r.saved(2, [7; 32], "x.png".into());
        assert_eq!(
            answers(&mut r),
            vec![
                Message::TextOk { id: 3 },
                Message::FileOk {
                    id: 2,
                    sha256: [7; 32],
                    saved_as: "x.png".into()
                }
            ]
        );
    }

    #[test]
    fn lying_sizes_are_caught_both_ways() {
        let mut r = rx();
        // More than declared: discarded at the chunk that overflows.
        r.handle(begin(1, 3, "a", "")).unwrap();
        r.handle(chunk(1, b"abcd")).unwrap();
        r.handle(chunk(1, b"more")).unwrap();
        r.handle(Message::FileEnd {
            id: 1,
            sha256: [0; 32],
        })
        .unwrap();
        // Fewer than declared (4 GiB declared, 1 byte sent): discarded at FILE_END.
        let mut big = Receiver::new(Config { max_size: u64::MAX });
        big.handle(Message::Hello).unwrap();
        big.handle(begin(9, 4 << 30, "big", "")).unwrap();
        big.handle(chunk(9, b"x")).unwrap();
        big.handle(Message::FileEnd {
            id: 9,
            sha256: [0; 32],
        })
        .unwrap();
        let a = actions(&mut r);
        assert!(a.contains(&Action::Discard { id: 1 }), "{a:?}");
        assert!(!a.iter().any(|x| matches!(x, Action::Close { .. })));
        assert!(matches!(
            answers(&mut r).as_slice(),
            [Message::Error {
                id: 1,
                code: ErrorCode::Mismatch,
                ..
            }]
        ));
        let a = actions(&mut big);
        assert_eq!(a.last(), Some(&Action::Discard { id: 9 }));
        assert!(matches!(
            answers(&mut big).last(),
            Some(Message::Error {
                id: 9,
                code: ErrorCode::Mismatch,
                ..
            })
        ));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_its_chunks_skipped() {
        let mut r = rx();
        r.handle(begin(1, 5000, "huge", "")).unwrap();
        r.handle(chunk(1, b"abc")).unwrap();
        r.handle(Message::FileEnd {
            id: 1,
            sha256: [0; 32],
        })
        .unwrap();
        assert_eq!(actions(&mut r), vec![]);
        assert!(matches!(
            answers(&mut r).as_slice(),
            [Message::Error {
                id: 1,
                code: ErrorCode::TooLarge,
                ..
            }]
        ));
    }

    #[test]
    fn a_declared_png_that_is_not_one_is_reported() {
        let mut r = rx();
        r.handle(begin(1, 20, "fake.png", "image/png")).unwrap();
        // The head gathered across small chunks: a GIF, not a PNG.
        for piece in [
            &b"GIF"[..],
            b"89a",
            b"\x01\x00\x01\x00",
            b"\x80\x00\x00\xff\xff\xff",
            b"more",
        ] {
            r.handle(Message::FileChunk {
                id: 1,
                data: Bytes::copy_from_slice(piece),
            })
            .unwrap();
        }
        let a = actions(&mut r);
        let found: Vec<&Action> = a
            .iter()
            .filter(|x| matches!(x, Action::MediaMismatch { .. }))
            .collect();
        assert_eq!(
            found,
            [&Action::MediaMismatch {
                id: 1,
                declared: "image/png".into(),
                found: Some("image/gif"),
            }]
        );
        // A file shorter than the PNG magic it claims is checked at its end.
        r.handle(begin(2, 2, "tiny.png", "image/png")).unwrap();
        r.handle(chunk(2, b"hi")).unwrap();
        r.handle(Message::FileEnd {
            id: 2,
            sha256: [0; 32],
        })
        .unwrap();
        assert!(actions(&mut r).contains(&Action::MediaMismatch {
            id: 2,
            declared: "image/png".into(),
            found: None,
        }));
    }

    #[test]
    fn protocol_errors_end_the_connection() {
        let mut r = Receiver::new(Config { max_size: 10 });
        assert!(r.handle(Message::Bye).is_err());
        assert!(matches!(
            r.poll_answer(),
            Some(Message::Error {
                id: 0,
                code: ErrorCode::Protocol,
                ..
            })
        ));
        let mut r = rx();
        assert!(r.handle(chunk(4, b"x")).is_err());
        let mut r = rx();
        r.handle(begin(1, 3, "a", "")).unwrap();
        assert!(r.handle(begin(1, 3, "b", "")).is_err());
        let mut r = rx();
        assert!(r.handle(Message::TextOk { id: 1 }).is_err());
    }

    #[test]
    fn bye_discards_files_left_open() {
        let mut r = rx();
        r.handle(begin(5, 10, "a", "")).unwrap();
        r.handle(begin(3, 10, "b", "")).unwrap();
        actions(&mut r);
        r.handle(Message::Bye).unwrap();
        assert_eq!(
            actions(&mut r),
            vec![
                Action::Discard { id: 3 },
                Action::Discard { id: 5 },
                Action::Finished
            ]
        );
    }
}
