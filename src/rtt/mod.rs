//! Round-trip time after RFC 2681 ("A Round-trip Delay Metric for IPPM"): `socklab rtt serve`
//! (the reflector) and `socklab rtt measure` (the source).
//!
//! Sans-IO, each checked against the RFC's definitions:
//!
//! - [`stats`]: the RFC's four statistics of a sample (§4): percentile, median, minimum and
//!   inverse-percentile, with undefined round trips (lost probes) counted as +∞.
//! - [`schedule`]: when to send (§3.6, §2.6 of RFC 2330): a Poisson process of rate λ from a
//!   seeded generator, or a periodic one, with the rate bounds §5 asks for.
//! - [`probe`]: the probe and its reply byte by byte (docs/PROTOCOLS.md §10): T1 from the
//!   source, T2 and T3 from the reflector (its processing time), a CRC-32.
//! - [`meter`]: replies matched to probes (dT, late, duplicate, reordered, corrupt, stray).
//! - [`report`] and [`plot`]: the summary, the JSON and the SVG, from a finished measurement.
//!
//! The drivers: [`server`] (the reflector: a blocking UDP thread, a TCP service on the host),
//! [`client`] (the measuring loop on a thread of its own, kernel timestamps, the calibration),
//! [`cli`] (flags and exit codes) and [`lab`] (the reflector in `socklab lab`).

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
