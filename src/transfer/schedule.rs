//! What the sender puts on the connection next. Sans-IO: the scheduler says "a text", "the
//! start of file 3", "bytes 65,536 to 131,071 of file 3", "the end of file 3" or "bye"; the
//! driver reads the file's bytes and writes the frames.
//!
//! The rule that answers the course's question: a text waiting goes out before the next chunk
//! of any file, so a text typed while a 1 GB image is on its way waits for one chunk at most
//! (64 KiB: well under a millisecond on any link that carries the image in reasonable time).
//! Files in flight take turns chunk by chunk, so a small file is not stuck behind a large one.

use std::collections::VecDeque;

use super::proto::MAX_CHUNK;

/// The next thing to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A text.
    Text {
        /// Its id.
        id: u32,
        /// The text.
        text: String,
    },
    /// FILE_BEGIN of a file (its id; the driver knows its name, size and offset).
    Begin {
        /// The file's id.
        id: u32,
    },
    /// FILE_CHUNK: `len` bytes of file `id` from `offset`.
    Chunk {
        /// The file's id.
        id: u32,
        /// Where in the file.
        offset: u64,
        /// How many bytes (1 to [`MAX_CHUNK`]).
        len: usize,
    },
    /// FILE_END of a file (the driver adds the SHA-256).
    End {
        /// The file's id.
        id: u32,
    },
    /// Everything is sent and nothing more will come.
    Bye,
    /// Nothing to send now (more may be added).
    Idle,
}

#[derive(Debug)]
struct File {
    id: u32,
    size: u64,
    /// The next byte to send.
    at: u64,
    begun: bool,
}

/// The sender's queue.
#[derive(Debug, Default)]
pub struct Scheduler {
    texts: VecDeque<(u32, String)>,
    /// Files in flight, in turn order.
    files: VecDeque<File>,
    next_id: u32,
    finished: bool,
    bye_sent: bool,
}

impl Scheduler {
    /// An empty queue.
    pub fn new() -> Self {
        Scheduler {
            next_id: 1,
            ..Scheduler::default()
        }
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Queues a text; returns its id.
    pub fn add_text(&mut self, text: String) -> u32 {
        let id = self.id();
        self.texts.push_back((id, text));
        id
    }

    /// Queues a file of `size` bytes whose bytes are sent from `offset` (0, or where the
    /// receiver said it holds them); returns its id.
    pub fn add_file(&mut self, size: u64, offset: u64) -> u32 {
        let id = self.id();
        self.files.push_back(File {
            id,
            size,
            at: offset.min(size),
            begun: false,
        });
        id
    }

    /// Nothing more will be added: once the queue is empty, [`Next::Bye`].
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Stops sending file `id` (the receiver refused it): no more chunks, no FILE_END. True
    /// if it was still queued.
    pub fn cancel(&mut self, id: u32) -> bool {
        let before = self.files.len();
        self.files.retain(|f| f.id != id);
        self.files.len() != before
    }

    /// Texts and files not yet wholly sent.
    pub fn pending(&self) -> usize {
        self.texts.len() + self.files.len()
    }

    /// The next thing to send.
    pub fn poll_next(&mut self) -> Next {
        if let Some((id, text)) = self.texts.pop_front() {
            return Next::Text { id, text };
        }
        let Some(mut f) = self.files.pop_front() else {
            if self.finished && !self.bye_sent {
                self.bye_sent = true;
                return Next::Bye;
            }
            return Next::Idle;
        };
        if !f.begun {
            f.begun = true;
            let id = f.id;
            // Its first chunk comes on its next turn; a file begun goes to the back.
            self.files.push_back(f);
            return Next::Begin { id };
        }
        if f.at >= f.size {
            return Next::End { id: f.id };
        }
        let len = usize::try_from(f.size - f.at).map_or(MAX_CHUNK, |left| left.min(MAX_CHUNK));
        let next = Next::Chunk {
            id: f.id,
            offset: f.at,
            len,
        };
        f.at += len as u64;
        self.files.push_back(f);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut Scheduler) -> Vec<Next> {
        let mut out = Vec::new();
        loop {
            match s.poll_next() {
                Next::Idle => return out,
                Next::Bye => {
                    out.push(Next::Bye);
                    return out;
                }
                n => out.push(n),
            }
        }
    }

    #[test]
    fn a_cancelled_file_sends_nothing_more() {
        let mut s = Scheduler::new();
        let a = s.add_file(3 * MAX_CHUNK as u64, 0);
        let b = s.add_file(10, 0);
        assert_eq!(s.poll_next(), Next::Begin { id: a });
        assert!(s.cancel(a));
        assert!(!s.cancel(a));
        s.finish();
        let rest = drain(&mut s);
        assert!(
            rest.iter()
                .all(|n| !matches!(n, Next::Chunk { id, .. } | Next::End { id } if *id == a))
        );
        assert_eq!(rest.last(), Some(&Next::Bye));
        assert!(rest.contains(&Next::End { id: b }));
    }

    #[test]
    fn a_file_goes_out_begin_chunks_end() {
        let mut s = Scheduler::new();
        let id = s.add_file(MAX_CHUNK as u64 * 2 + 10, 0);
        s.finish();
        assert_eq!(
            drain(&mut s),
            vec![
                Next::Begin { id },
                Next::Chunk {
                    id,
                    offset: 0,
                    len: MAX_CHUNK
                },
                Next::Chunk {
                    id,
                    offset: MAX_CHUNK as u64,
                    len: MAX_CHUNK
                },
                Next::Chunk {
                    id,
                    offset: 2 * MAX_CHUNK as u64,
                    len: 10
                },
                Next::End { id },
                Next::Bye,
            ]
        );
        // Bye once.
        assert_eq!(s.poll_next(), Next::Idle);
    }

    #[test]
    fn an_empty_file_and_a_resumed_one() {
        let mut s = Scheduler::new();
        let empty = s.add_file(0, 0);
        assert_eq!(
            drain(&mut s),
            vec![Next::Begin { id: empty }, Next::End { id: empty }]
        );
        let resumed = s.add_file(100, 60);
        assert_eq!(
            drain(&mut s),
            vec![
                Next::Begin { id: resumed },
                Next::Chunk {
                    id: resumed,
                    offset: 60,
                    len: 40
                },
                Next::End { id: resumed }
            ]
        );
    }

    /// A text queued while a 1 GiB file is in flight goes out after at most one chunk.
    #[test]
    fn a_text_never_waits_behind_a_large_file() {
        let mut s = Scheduler::new();
        let big = s.add_file(1 << 30, 0);
        assert_eq!(s.poll_next(), Next::Begin { id: big });
        for _ in 0..100 {
            assert!(matches!(s.poll_next(), Next::Chunk { .. }));
        }
        let t = s.add_text("hello".into());
        assert_eq!(
            s.poll_next(),
            Next::Text {
                id: t,
                text: "hello".into()
            }
        );
        assert!(
            matches!(s.poll_next(), Next::Chunk { id, offset, .. } if id == big && offset == 100 * MAX_CHUNK as u64)
        );
    }

    /// Two files take turns chunk by chunk: the small one is done long before the large one.
    #[test]
    fn files_in_flight_take_turns() {
        let mut s = Scheduler::new();
        let big = s.add_file(10 * MAX_CHUNK as u64, 0);
        let small = s.add_file(MAX_CHUNK as u64 + 1, 0);
        s.finish();
        let order = drain(&mut s);
        let end_small = order
            .iter()
            .position(|n| *n == Next::End { id: small })
            .unwrap();
        let end_big = order
            .iter()
            .position(|n| *n == Next::End { id: big })
            .unwrap();
        assert!(end_small < 8, "{order:?}");
        assert!(end_small < end_big);
        // Every byte of each file exactly once, in order.
        for (id, size) in [(big, 10 * MAX_CHUNK as u64), (small, MAX_CHUNK as u64 + 1)] {
            let mut at = 0;
            for n in &order {
                if let Next::Chunk { id: i, offset, len } = n
                    && *i == id
                {
                    assert_eq!(*offset, at);
                    at += *len as u64;
                }
            }
            assert_eq!(at, size);
        }
        assert_eq!(order.last(), Some(&Next::Bye));
    }
}
