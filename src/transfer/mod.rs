//! A text message and a file over the same TCP socket: `socklab transfer` (docs/PROTOCOLS.md
//! §11, docs/TRANSFER.md for the alternatives measured).
//!
//! The sans-IO parts: [`proto`], typed frames on the TLV framing of [`crate::frame::tlv`],
//! each length checked before it is used, and the magic-byte check of declared media types;
//! [`name`], the sender's file name made safe to save; [`schedule`], what the sender puts on
//! the connection next (texts before the next chunk of any file, files taking turns);
//! [`receive`], the receiver's checks (order, sizes that lie, limits, declared media types) as
//! actions for the store. Then [`store`], the receiving directory (`NAME.part` hashed with
//! SHA-256 as it is written, renamed only once verified, numbered names, resume, the
//! free-space check), and the drivers: [`server`] (`transfer serve`) and [`client`]
//! (`transfer send`, `transfer chat`), with their arguments in [`cli`].

pub mod cli;
pub mod client;
pub mod lab;
pub mod name;
pub mod proto;
pub mod receive;
pub mod schedule;
pub mod server;
pub mod store;
