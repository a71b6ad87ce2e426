//! `socklab rtt serve` and `socklab rtt measure`: arguments and their conversion to a
//! [`client::Config`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use ipnet::IpNet;

use super::client::{self, Config, MeasureError, Transport, Until};
use super::probe::{MAX_SIZE, MIN_SIZE};
use super::report::{self, Asked};
use super::{plot, schedule, server};
use crate::args::{GuardArgs, JsonArg, OutputArgs, UsageError, parse_duration};
use crate::exit::{Coded, CodedResult};
use crate::net::addr::Endpoint;
use crate::net::{self, AllowList, BindOptions, NetError, ServeOptions};

/// The most probes one run sends (each is kept, about 100 bytes, for the statistics).
const MAX_PROBES: u32 = 5_000_000;

/// rtt roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// The reflector: answers each probe with its arrival and departure times (UDP and TCP,
    /// port 8620).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Measure round trips to a reflector after RFC 2681: a Poisson stream of probes, the
    /// RFC's statistics (minimum, median, percentiles, inverse-percentile), calibration.
    #[command(after_help = MEASURE_EXAMPLES)]
    Measure(MeasureArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  socklab rtt serve                      UDP and TCP on 127.0.0.1:8620
  socklab rtt serve -b :: -p 8620        every interface, IPv4 and IPv6
The reflector answers only valid probes, each with a reply of the same size (nothing is
amplified), stamped with T2 (arrival, the kernel's timestamp) and T3 (departure).";

const MEASURE_EXAMPLES: &str = "\
Examples:
  socklab rtt measure 127.0.0.1 -c 100                100 probes, Poisson, 20/s
  socklab rtt measure host:8620 -d 60s --rate 5 --plot rtt.svg
  socklab rtt measure 127.0.0.1:7 --echo -c 50        any RFC 862 echo server (UDP)
  socklab rtt measure 127.0.0.1 --tcp -c 100          round trips on one TCP connection
  socklab rtt measure 127.0.0.1 --json | jq .statistics
Times are in µs. dT is undefined (+∞ in the statistics) for a probe whose reply did not come
within --loss-threshold. Exit 0 when at least one reply came, 4 when none did, 3 when nothing
listens there.";

/// `socklab rtt serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port for both UDP and TCP (0 picks a free one; the first stdout line says which).
    #[arg(short, long, default_value_t = server::DEFAULT_PORT)]
    port: u16,
    /// Address to bind: 127.0.0.1 (the default), ::1, 0.0.0.0, or ::.
    #[arg(short, long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: String,
    /// Answer only these sources (an address or CIDR network; repeatable).
    #[arg(long, value_name = "ADDR|CIDR", value_parser = net::allow::parse_net)]
    allow: Vec<IpNet>,
    /// TCP: serve at most N connections at once.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_conns: usize,
    /// TCP: close a connection that sends nothing for this long.
    #[arg(short, long, default_value = "300s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    guard: GuardArgs,
}

/// The schedule's kind on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScheduleArg {
    /// Exponential gaps of mean 1/λ (RFC 2681 §3.6, the default).
    Poisson,
    /// Equal gaps of 1/λ (as ping and irtt send).
    Periodic,
}

/// `socklab rtt measure`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The reflector: HOST[:PORT], [IPV6]:PORT, or PORT (127.0.0.1). The port defaults to
    /// 8620, or 7 with --echo.
    #[arg(value_name = "ADDR")]
    addr: String,
    /// Send this many probes (default 100 unless -d is given).
    #[arg(short, long, value_name = "COUNT", conflicts_with = "duration")]
    count: Option<u32>,
    /// Send for this long instead (T0 to Tf), e.g. 30s, 5m.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// λ: probes per second on average (at most 1000 without --force).
    #[arg(long, default_value_t = 20.0, value_name = "λ")]
    rate: f64,
    /// How send times are drawn.
    #[arg(long, value_enum, default_value = "poisson")]
    schedule: ScheduleArg,
    /// Probe size in bytes (the UDP payload; 40 to 65507).
    #[arg(short, long, default_value_t = 64, value_name = "SIZE")]
    size: usize,
    /// A probe whose reply has not come after this long has an undefined dT (+∞); a reply
    /// after it is counted as late.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    loss_threshold: Duration,
    /// Write a picture: dT over time with losses marked, and the CDF with the percentiles.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// The peer is an RFC 862 echo server (socklab echo serve -u, inetd's, a Python one):
    /// the reply is the probe itself, so there is no processing time to subtract.
    #[arg(long)]
    echo: bool,
    /// The percentiles to report, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "50,90,99",
        value_name = "LIST"
    )]
    percentile: Vec<f64>,
    /// The inverse-percentile's threshold: the fraction of dT at or below it is reported.
    #[arg(long, default_value = "1ms", value_name = "DURATION", value_parser = parse_duration)]
    threshold: Duration,
    /// The schedule's random seed (default: a fresh one, printed so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Allow a rate above 1000 probes/s.
    #[arg(long)]
    force: bool,
    /// The DSCP to send with (0-63), part of the Type-P.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=63))]
    dscp: u8,
    /// Measure request/response round trips on one TCP connection (the connect time is
    /// reported apart).
    #[arg(long)]
    tcp: bool,
    /// Spin on the socket instead of sleeping (the tightest figures; uses a whole core).
    #[arg(long)]
    busy_poll: bool,
    /// Skip the calibration (the clock's resolution and this host's own overhead, measured
    /// against a reflector in this process before the run).
    #[arg(long)]
    no_calibration: bool,
    #[command(flatten)]
    json: JsonArg,
}

impl Role {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => serve(args).await,
            Role::Measure(args) => measure(args, out).await,
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ip = crate::args::bind_ip(&args.bind)?;
    // Checked before binding; the port it got is blocked as a source too (another reflector).
    args.guard.config(None, &[])?;
    let shutdown = net::shutdown::on_signals();
    let (tcp, udp) =
        net::host::bind_pair(SocketAddr::new(ip, args.port), BindOptions::default()).await?;
    let port = udp.local_addr().map_or(args.port, |a| a.port());
    let guard = args.guard.config(None, &[port])?;
    udp.announce()?;
    let opts = ServeOptions {
        allow: AllowList::new(args.allow),
        max_conns: args.max_conns,
        ..ServeOptions::default()
    };
    server::run(tcp, udp, opts, guard, args.timeout, shutdown)
        .await
        .coded()?;
    Ok(ExitCode::SUCCESS)
}

/// The address as given, with the default port when it has none.
fn endpoint(addr: &str, default_port: u16) -> Result<Endpoint, UsageError> {
    crate::args::inet_endpoint(
        addr,
        default_port,
        "rtt measures over UDP or TCP, not a Unix socket",
    )
}

impl MeasureArgs {
    fn config(&self, target: SocketAddr) -> Result<Config, UsageError> {
        schedule::check_rate(self.rate, self.force).map_err(|e| UsageError(e.to_string()))?;
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(UsageError(format!(
                "-s {}: a probe is {MIN_SIZE} to {MAX_SIZE} bytes",
                self.size
            )));
        }
        if self.tcp && self.size > usize::from(u16::MAX) {
            return Err(UsageError("over TCP a probe is at most 65535 bytes".into()));
        }
        if let Some(bad) = self.percentile.iter().find(|x| !(0.0..=100.0).contains(*x)) {
            return Err(UsageError(format!(
                "--percentile {bad}: a percentile is from 0 to 100"
            )));
        }
        if self.loss_threshold.is_zero() {
            return Err(UsageError("--loss-threshold must be more than 0".into()));
        }
        let until = match (self.count, self.duration) {
            (Some(0), _) => return Err(UsageError("-c 0: send at least one probe".into())),
            (Some(n), _) => Until::Count(n),
            (None, Some(d)) if d.is_zero() => {
                return Err(UsageError("-d 0: measure for some time".into()));
            }
            (None, Some(d)) => Until::Duration(d),
            (None, None) => Until::Count(100),
        };
        let expected = match until {
            Until::Count(n) => f64::from(n),
            Until::Duration(d) => d.as_secs_f64() * self.rate,
        };
        if expected > MAX_PROBES as f64 {
            return Err(UsageError(format!(
                "that is {expected:.0} probes; one run keeps at most {MAX_PROBES} (each is held \
                 until the summary, about 100 bytes): lower --rate, or measure in several runs"
            )));
        }
        Ok(Config {
            target,
            transport: if self.tcp {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            echo: self.echo,
            until,
            rate: self.rate,
            schedule: match self.schedule {
                ScheduleArg::Poisson => schedule::Kind::Poisson,
                ScheduleArg::Periodic => schedule::Kind::Periodic,
            },
            seed: self.seed.unwrap_or_else(rand::random),
            size: self.size,
            loss_threshold: self.loss_threshold,
            dscp: self.dscp,
            busy_poll: self.busy_poll,
            calibrate: !self.no_calibration,
        })
    }
}

async fn measure(args: MeasureArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let json = out.json || args.json.json;
    let ep = endpoint(&args.addr, if args.echo { 7 } else { server::DEFAULT_PORT })?;
    // Check every flag before resolving a name.
    args.config(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let target = ep.resolve().await.coded()?[0];
    let cfg = args.config(target)?;
    let asked = Asked {
        percentiles: args.percentile.clone(),
        threshold: args.threshold,
    };
    // The plot's file is checked before the run, not found unwritable after it.
    if let Some(p) = &args.plot {
        check_writable(p)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let shutdown = net::shutdown::on_signals();
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let run_cfg = cfg.clone();
    let m = tokio::task::spawn_blocking(move || client::measure(&run_cfg, &stop))
        .await
        .map_err(|e| anyhow::anyhow!("the measuring thread failed: {e}"))?;
    stopper.abort();
    let m = m.map_err(Coded::from)?;
    let summary = report::summarize(&m, &asked);
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut stdout, &report::json(&cfg, &m, &asked, &summary))?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report::text(&cfg, &m, &asked, &summary))?;
    }
    stdout.flush()?;
    drop(stdout);
    if let Some(path) = &args.plot {
        let title = format!(
            "RFC 2681 round trips to {} ({}, {} bytes)",
            m.dst,
            if args.tcp { "TCP" } else { "UDP" },
            cfg.size
        );
        let svg = plot::svg(&title, &m.singletons, &summary)
            .map_err(|e| Coded::from(LocalIo(e.to_string())))?;
        write_atomically(path, svg.as_bytes())?;
    }
    if m.closed_early {
        return Err(Coded::from(MeasureError::Closed {
            addr: m.dst,
            sent: m.counts.sent,
        })
        .into());
    }
    if m.counts.replied == 0 {
        let err = if m.refused > 0 {
            MeasureError::Net(NetError::PortUnreachable {
                service: "rtt reflector",
                addr: m.dst.to_string(),
            })
        } else if let Some(last) = m.last_icmp.clone() {
            MeasureError::PathRefused { addr: m.dst, last }
        } else {
            MeasureError::NoReply {
                sent: m.counts.sent,
                threshold: cfg.loss_threshold,
            }
        };
        return Err(Coded::from(err).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// A local file problem (exit 6).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LocalIo(String);

impl crate::exit::ExitCoded for LocalIo {
    fn exit_code(&self) -> u8 {
        crate::exit::LOCAL_IO
    }
}

fn check_writable(path: &std::path::Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Coded::from(LocalIo(format!(
            "cannot write the plot to {}: {} is not a directory",
            path.display(),
            dir.display()
        )))
        .into());
    }
    Ok(())
}

/// Writes `FILE.tmp-PID`, then renames it to `FILE`.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let r = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(Coded::from(LocalIo(format!(
            "cannot write the plot to {}: {e}",
            path.display()
        )))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_default_port_when_they_have_none() {
        let inet = |h: &str, p| Endpoint::Inet {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            endpoint("127.0.0.1", 8620).unwrap(),
            inet("127.0.0.1", 8620)
        );
        assert_eq!(endpoint("localhost", 7).unwrap(), inet("localhost", 7));
        assert_eq!(endpoint("::1", 8620).unwrap(), inet("::1", 8620));
        assert_eq!(endpoint("[::1]", 8620).unwrap(), inet("::1", 8620));
        assert_eq!(endpoint("[::1]:9", 8620).unwrap(), inet("::1", 9));
        assert_eq!(endpoint("9000", 8620).unwrap(), inet("127.0.0.1", 9000));
        assert!(endpoint("unix:/tmp/x", 8620).is_err());
        assert!(endpoint("", 8620).is_err());
        assert!(endpoint("a:b:c", 8620).is_err());
    }
}
