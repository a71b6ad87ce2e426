//! A text message and a file over the same TCP socket: `socklab transfer` (issue 14, in
//! progress).
//!
//! So far the sans-IO parts: [`name`], the sender's file name made safe to save, and the wire
//! format: [`proto`], typed frames on the TLV framing of
//! [`crate::frame::tlv`] (docs/PROTOCOLS.md §11), each length checked before it is used, and
//! the magic-byte check of declared media types; [`schedule`], what the sender puts on the
//! connection next (texts before the next chunk of any file, files taking turns); [`receive`],
//! the receiver's checks (order, sizes that lie, limits, declared media types) as actions for
//! the store; [`store`], the receiving directory (`NAME.part` hashed with SHA-256 as it is
//! written, renamed only once verified, numbered names, resume, the free-space check). The
//! drivers and the CLI come next.

pub mod name;
pub mod proto;
pub mod receive;
pub mod schedule;
pub mod store;
