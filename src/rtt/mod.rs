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
//! The probe format, the reflector, the measuring client and the calibration come next.

pub mod schedule;
pub mod stats;
