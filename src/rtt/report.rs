//! What `rtt measure` prints: the RFC's statistics in words, the parameters, the whole sample
//! as JSON. Pure functions of a [`Measurement`].

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::client::{Config, Measurement, Transport};
use super::meter::Singleton;
use super::schedule;
use super::stats::{self, Dt};

/// What the user asked to see.
#[derive(Debug, Clone)]
pub struct Asked {
    /// Percentiles (0–100).
    pub percentiles: Vec<f64>,
    /// The inverse-percentile's threshold.
    pub threshold: Duration,
}

/// The statistics of one sample (RFC 2681 §4). `None`: the sample is empty; `Some(None)`:
/// undefined (+∞).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// §4.3.
    pub minimum: Option<Dt>,
    /// §4.2.
    pub median: Option<Dt>,
    /// §4.1, for each percentile asked.
    pub percentiles: Vec<(f64, Option<Dt>)>,
    /// §4.4: the fraction of dT ≤ the threshold.
    pub inverse: Option<f64>,
    /// The replies that have both kernel stamps, on kernel timestamps: minimum.
    pub kernel_minimum: Option<Dt>,
    /// Their median.
    pub kernel_median: Option<Dt>,
    /// The same replies' dT (host time): median, so the two medians compare like with like.
    pub kernel_host_median: Option<Dt>,
    /// Replies with both kernel stamps.
    pub kernel_count: usize,
    /// The reflector's processing time: median (§4.2's, over the replies that carry one).
    pub processing_median: Option<Duration>,
    /// And maximum.
    pub processing_max: Option<Duration>,
    /// The host round trip before the processing time is subtracted: median.
    pub host_median: Option<Dt>,
}

/// Computes the statistics.
pub fn summarize(m: &Measurement, asked: &Asked) -> Summary {
    let dts: Vec<Dt> = m.singletons.iter().map(Singleton::dt).collect();
    let host: Vec<Dt> = m
        .singletons
        .iter()
        .map(|s| s.host.map(Duration::from_nanos))
        .collect();
    let stamped: Vec<&Singleton> = m
        .singletons
        .iter()
        .filter(|s| s.kernel_dt().is_some())
        .collect();
    let kernel: Vec<Dt> = stamped.iter().map(|s| s.kernel_dt()).collect();
    let kernel_host: Vec<Dt> = stamped.iter().map(|s| s.dt()).collect();
    let processing: Vec<Dt> = m
        .singletons
        .iter()
        .filter_map(|s| s.processing.map(|n| Some(Duration::from_nanos(n))))
        .collect();
    Summary {
        minimum: stats::minimum(&dts),
        median: stats::median(&dts),
        percentiles: asked
            .percentiles
            .iter()
            .map(|&x| (x, stats::percentile(&dts, x)))
            .collect(),
        inverse: stats::inverse_percentile(&dts, asked.threshold),
        kernel_minimum: stats::minimum(&kernel),
        kernel_median: stats::median(&kernel),
        kernel_host_median: stats::median(&kernel_host),
        kernel_count: kernel.len(),
        processing_median: stats::median(&processing).flatten(),
        processing_max: processing.iter().flatten().max().copied(),
        host_median: stats::median(&host),
    }
}

/// Microseconds with a tenth.
fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_nanos() as f64 / 1e3)
}

fn us_f(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1e3 * 1e3).round() / 1e3
}

/// A statistic in words: a time, +∞, or "no sample".
fn shown(v: Option<Dt>) -> String {
    match v {
        None => "none (no probes)".into(),
        Some(None) => "+∞ (undefined: too many probes had no reply)".into(),
        Some(Some(d)) => us(d),
    }
}

fn stat_json(v: Option<Dt>) -> Value {
    match v {
        Some(Some(d)) => json!(us_f(d)),
        _ => Value::Null,
    }
}

/// "50th", "99.9th".
fn ordinal(x: f64) -> String {
    let n = format!("{x}");
    let suffix = if n.contains('.') {
        "th"
    } else {
        match (x as u64 % 100, x as u64 % 10) {
            (11..=13, _) => "th",
            (_, 1) => "st",
            (_, 2) => "nd",
            (_, 3) => "rd",
            _ => "th",
        }
    };
    format!("{n}{suffix}")
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t).map_or_else(|_| "?".into(), |t| t.to_string())
}

fn schedule_name(k: schedule::Kind) -> &'static str {
    match k {
        schedule::Kind::Poisson => "poisson",
        schedule::Kind::Periodic => "periodic",
    }
}

fn protocol(cfg: &Config) -> &'static str {
    match cfg.transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    }
}

/// The text summary.
pub fn text(cfg: &Config, m: &Measurement, asked: &Asked, s: &Summary) -> String {
    let mut o = String::new();
    let c = &m.counts;
    let _ = writeln!(
        o,
        "rtt to {} from {}: {} probes, {} λ = {}/s (seed {}), T0 {}, Tf = T0 + {:.3} s{}",
        m.dst,
        m.src,
        c.sent,
        match cfg.schedule {
            schedule::Kind::Poisson => "Poisson",
            schedule::Kind::Periodic => "periodic",
        },
        cfg.rate,
        cfg.seed,
        rfc3339(m.t0),
        m.tf.as_secs_f64(),
        if m.interrupted { " (interrupted)" } else { "" },
    );
    let _ = writeln!(
        o,
        "Type-P: {}, port {} → {}, {} bytes, DSCP {}{}",
        protocol(cfg),
        m.src.port(),
        m.dst.port(),
        cfg.size,
        cfg.dscp,
        if cfg.echo {
            ", to an RFC 862 echo server"
        } else {
            ""
        }
    );
    if let Some(t) = m.connect {
        let _ = writeln!(o, "connect: {} (not part of the sample)", us(t));
    }
    let _ = writeln!(
        o,
        "sent {}, replied {}, lost {} (dT undefined: no reply within the loss threshold of {}), \
         late {}, duplicates {}, reordered {}, corrupt {}, stray {}",
        c.sent,
        c.replied,
        c.lost(),
        crate::net::fmt_duration(cfg.loss_threshold),
        c.late,
        c.duplicates,
        c.reordered,
        c.corrupt,
        c.stray,
    );
    if m.refused + m.icmp_errors > 0 {
        let _ = writeln!(
            o,
            "refused on the path: {} port unreachable, {} other (ICMP, or a local firewall){}; the probes concerned have no reply",
            m.refused,
            m.icmp_errors,
            m.last_icmp
                .as_ref()
                .map_or(String::new(), |e| format!(", the last: {e}")),
        );
    }
    if m.closed_early {
        let _ = writeln!(
            o,
            "the reflector closed the connection after {} probes: the sample is cut short",
            c.sent
        );
    }
    if c.implausible > 0 {
        let _ = writeln!(
            o,
            "{} replies claimed a processing time (T3 − T2) longer than their whole round trip: \
             not subtracted (the reflector's clock jumped, or it is not telling the truth)",
            c.implausible
        );
    }
    let _ = writeln!(o, "{:<20}{}", "minimum", shown(s.minimum));
    let _ = writeln!(o, "{:<20}{}", "median", shown(s.median));
    for (x, v) in &s.percentiles {
        let _ = writeln!(
            o,
            "{:<20}{}",
            format!("{} percentile", ordinal(*x)),
            shown(*v)
        );
    }
    match s.inverse {
        Some(f) => {
            let _ = writeln!(
                o,
                "{:<20}{:.1} % of dT ≤ {:.1} µs",
                "inverse-percentile",
                f * 100.0,
                asked.threshold.as_nanos() as f64 / 1e3
            );
        }
        None => {
            let _ = writeln!(o, "{:<20}none (no probes)", "inverse-percentile");
        }
    }
    if s.kernel_count > 0 {
        let _ = writeln!(
            o,
            "kernel timestamps (wire side): minimum {}, median {}; host time adds {} at the median of the same {} replies (of {} probes)",
            shown(s.kernel_minimum),
            shown(s.kernel_median),
            match (s.kernel_host_median, s.kernel_median) {
                (Some(Some(h)), Some(Some(k))) => us(h.saturating_sub(k)),
                _ => "?".into(),
            },
            s.kernel_count,
            c.sent,
        );
    } else if cfg.transport == Transport::Udp {
        let _ = writeln!(
            o,
            "kernel timestamps: none ({} transmit, {} receive stamps came): host times only",
            m.kernel.tx, m.kernel.rx
        );
    }
    match (s.processing_median, s.processing_max) {
        (Some(med), Some(max)) => {
            let _ = writeln!(
                o,
                "reflector processing (T3 − T2): median {}, maximum {} (subtracted from each dT; host round trip median {})",
                us(med),
                us(max),
                shown(s.host_median)
            );
        }
        _ if c.replied > 0 => {
            let _ = writeln!(
                o,
                "reflector processing: not reported (an echo server), so it is part of each dT"
            );
        }
        _ => {}
    }
    match &m.calibration {
        Some(Err(why)) => {
            let _ = writeln!(o, "calibration: could not be made: {why}");
        }
        Some(Ok(k)) => {
            let _ = writeln!(
                o,
                "calibration: clock resolution {} ns (smallest step seen {} ns, a read costs {:.0} ns); \
                 loopback (UDP) to a reflector in this thread (no wake-ups): systematic error {}, random error ±{} at {:.0} % confidence ({} probes)",
                k.resolution_ns,
                k.smallest_step_ns,
                k.read_cost_ns,
                us(k.systematic),
                us(k.random),
                k.confidence * 100.0,
                k.probes
            );
        }
        None => {
            let _ = writeln!(o, "calibration: not made (--no-calibration)");
        }
    }
    o
}

/// The whole measurement as one JSON object: the parameters, the statistics, every
/// ⟨T, dT⟩ pair (dT in µs, `null` where undefined).
pub fn json(cfg: &Config, m: &Measurement, asked: &Asked, s: &Summary) -> Value {
    let c = &m.counts;
    let t0 = m.t0;
    let sample: Vec<Value> = m
        .singletons
        .iter()
        .map(|x| {
            let sent = Duration::from_nanos(x.sent);
            json!({
                "T": rfc3339(t0 + sent),
                "dT": x.dt().map(us_f),
                "seq": x.seq,
                "t": sent.as_secs_f64(),
                "host": x.host.map(|n| us_f(Duration::from_nanos(n))),
                "kernel": x.kernel_dt().map(us_f),
                "processing": x.processing.map(|n| us_f(Duration::from_nanos(n))),
                "late": x.late,
            })
        })
        .collect();
    let percentiles: serde_json::Map<String, Value> = s
        .percentiles
        .iter()
        .map(|(x, v)| (format!("{x}"), stat_json(*v)))
        .collect();
    json!({
        "Src": m.src.to_string(),
        "Dst": m.dst.to_string(),
        "T0": rfc3339(t0),
        "Tf": rfc3339(t0 + m.tf),
        "λ": cfg.rate,
        "lambda": cfg.rate,
        "schedule": schedule_name(cfg.schedule),
        "seed": cfg.seed,
        "Type-P": {
            "protocol": protocol(cfg),
            "src_port": m.src.port(),
            "dst_port": m.dst.port(),
            "size": cfg.size,
            "dscp": cfg.dscp,
            "reflector": if cfg.echo { "echo" } else { "socklab rtt" },
        },
        "units": "µs",
        "loss_threshold": us_f(cfg.loss_threshold),
        "calibration": m.calibration.as_ref().map(|k| match k {
            Err(why) => json!({ "error": why }),
            Ok(k) => json!({
            "clock_resolution_ns": k.resolution_ns,
            "smallest_step_ns": k.smallest_step_ns,
            "clock_read_ns": (k.read_cost_ns * 10.0).round() / 10.0,
            "systematic_error": us_f(k.systematic),
            "random_error": us_f(k.random),
            "confidence": k.confidence,
            "probes": k.probes,
        })}),
        "connect": m.connect.map(us_f),
        "counts": {
            "sent": c.sent, "replied": c.replied, "lost": c.lost(), "late": c.late,
            "duplicates": c.duplicates, "reordered": c.reordered, "corrupt": c.corrupt,
            "stray": c.stray, "echoed": c.echoed, "implausible": c.implausible,
            "refused": m.refused, "icmp_errors": m.icmp_errors,
        },
        "statistics": {
            "minimum": stat_json(s.minimum),
            "median": stat_json(s.median),
            "percentiles": percentiles,
            "inverse_percentile": {
                "threshold": us_f(asked.threshold),
                "fraction": s.inverse,
            },
        },
        "kernel": {
            "tx_stamped": m.kernel.tx,
            "rx_stamped": m.kernel.rx,
            "minimum": stat_json(s.kernel_minimum),
            "median": stat_json(s.kernel_median),
            "host_median_of_stamped": stat_json(s.kernel_host_median),
        },
        "processing": {
            "median": s.processing_median.map(us_f),
            "maximum": s.processing_max.map(us_f),
        },
        "host_median": stat_json(s.host_median),
        "interrupted": m.interrupted,
        "closed_early": m.closed_early,
        "sample": sample,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_read_as_english() {
        let got: Vec<String> = [1.0, 2.0, 3.0, 11.0, 50.0, 90.0, 99.0, 99.9, 21.0]
            .iter()
            .map(|&x| ordinal(x))
            .collect();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "11th", "50th", "90th", "99th", "99.9th", "21st"
            ]
        );
    }

    #[test]
    fn statistics_show_in_microseconds_or_as_infinite() {
        assert_eq!(shown(Some(Some(Duration::from_nanos(23_456)))), "23.5 µs");
        assert!(shown(Some(None)).starts_with("+∞"));
        assert_eq!(stat_json(Some(None)), Value::Null);
        assert_eq!(
            stat_json(Some(Some(Duration::from_nanos(1_500)))),
            json!(1.5)
        );
    }
}
