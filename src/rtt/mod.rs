//! Round-trip time after RFC 2681 ("A Round-trip Delay Metric for IPPM"): `socklab rtt`
//! (issue 13, in progress).
//!
//! So far the two sans-IO parts every later piece builds on, each checked against the RFC's
//! definitions:
//!
//! - [`stats`]: the RFC's four statistics of a sample (§4): percentile, median, minimum and
//!   inverse-percentile, with undefined round trips (lost probes) counted as +∞.
//! - [`schedule`]: when to send (§3.6, §2.6 of RFC 2330): a Poisson process of rate λ from a
//!   seeded generator, or a periodic one, with the rate ceiling §5 asks for.
//!
//! - [`probe`]: the probe and its reply byte by byte (docs/PROTOCOLS.md §10): T1 from the
//!   source, T2 and T3 from the reflector (its processing time), a CRC-32.
//!
//! The reflector, the measuring client and the calibration come next.

pub mod cli;
pub mod client;
pub mod lab;
pub mod meter;
pub mod plot;
pub mod probe;
pub mod report;
pub mod schedule;
pub mod server;
pub mod stats;
