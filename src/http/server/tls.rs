//! HTTPS for `http serve`: the server's TLS identity (a certificate chain and its private key,
//! from PEM files or made at start) and the rustls configuration built from it.
//!
//! - `--tls-cert FILE --tls-key FILE`: a PEM chain (leaf first, then any intermediates) and
//!   its private key (PKCS#8, PKCS#1 or SEC1 PEM). A key file that everyone may read is
//!   refused; group-readable is allowed, as Debian's `ssl-cert` group keeps keys in
//!   `/etc/ssl/private` (mode 0640). The key must belong to the leaf certificate.
//! - `--tls-self-signed`: an ECDSA P-256 key and a self-signed certificate made with rcgen at
//!   each start, valid from yesterday for a year, for `localhost`, `127.0.0.1`, `::1` and the
//!   bind address (the machine's host name when bound to a wildcard). Only the certificate is
//!   written (a PEM for `curl --cacert`); the key never leaves the process.
//!
//! Both ways give TLS 1.3 and 1.2 (rustls on the ring provider) with ALPN `http/1.1`, and
//! `SSLKEYLOGFILE` honoured so a capture can be decrypted (`tshark -o tls.keylog_file:FILE`).
//! The HTTP above is unchanged: the connection loop reads and writes a `TlsStream` instead
//! of the socket, and file bodies go through a buffer, since `sendfile(2)` cannot encrypt.

use std::fs;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ParsedCertificate;
use sha2::{Digest, Sha256};

use crate::net::clock;

/// Largest certificate or key file read (a long chain is a few KiB).
pub const MAX_PEM_FILE: u64 = 1 << 20;
/// The ALPN protocol we speak (RFC 7301; `h2` is not offered, so clients fall back to it).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--tls-cert` and `--tls-key`.
    Files {
        /// The PEM certificate chain.
        cert: PathBuf,
        /// The PEM private key.
        key: PathBuf,
    },
    /// `--tls-self-signed`: made now for these names.
    SelfSigned {
        /// DNS names and IP addresses the certificate covers.
        names: Vec<String>,
        /// `--tls-self-signed-out FILE`: where to write its PEM (else a private temporary
        /// directory, removed when the server stops).
        out: Option<PathBuf>,
    },
}

/// A certificate or key problem, found before the server starts (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file named by a flag cannot be read.
    #[error("{flag} {}: {source}", path.display())]
    Read {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file named by a flag is not a regular file, or too large.
    #[error("{flag} {}: {why}", path.display())]
    NotAFile {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The certificate file holds no PEM certificate, or a broken one.
    #[error("--tls-cert {}: {why}", path.display())]
    BadCert {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The key file holds no usable private key.
    #[error("--tls-key {}: {why}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Everyone may read the key file.
    #[error(
        "--tls-key {}: the private key is readable by everyone (mode {mode:03o}); \
         run `chmod o-rwx {}`",
        path.display(),
        path.display()
    )]
    KeyExposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The key does not belong to the leaf certificate.
    #[error(
        "the private key in {} does not match the certificate in {} (the first certificate \
         of --tls-cert must be the one issued for this key)",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// Writing the self-signed certificate's PEM failed.
    #[error("writing the self-signed certificate to {}: {source}", path.display())]
    WritePem {
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Making the certificate or the TLS configuration failed.
    #[error("setting up TLS: {0}")]
    Setup(String),
}

impl crate::exit::ExitCoded for TlsError {
    fn exit_code(&self) -> u8 {
        match self {
            TlsError::Setup(_) => crate::exit::TLS,
            _ => crate::exit::USAGE,
        }
    }
}

/// The server's TLS identity, ready to serve.
pub struct Identity {
    /// The rustls configuration: TLS 1.3 and 1.2, ALPN `http/1.1`.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), as `openssl x509 -fingerprint -sha256` shows
    /// it: upper-case hex pairs joined by colons.
    pub cert_sha256: String,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo, base64 (what Chromium's
    /// `--ignore-certificate-errors-spki-list` and HPKP pins take).
    pub spki_sha256: String,
    /// For a self-signed certificate: the names it covers and where its PEM was written.
    pub self_signed: Option<SelfSigned>,
}

/// What `--tls-self-signed` made.
pub struct SelfSigned {
    /// DNS names and IP addresses in the certificate.
    pub names: Vec<String>,
    /// The certificate's PEM file.
    pub pem: PathBuf,
    /// The temporary directory holding it, removed when dropped (None with
    /// `--tls-self-signed-out`).
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_sha256", &self.cert_sha256)
            .field("spki_sha256", &self.spki_sha256)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads or makes the identity `source` describes.
    pub fn load(source: &Source) -> Result<Identity, TlsError> {
        match source {
            Source::Files { cert, key } => from_files(cert, key),
            Source::SelfSigned { names, out } => self_signed(names, out.as_deref()),
        }
    }
}

/// The names a self-signed certificate covers when the server binds `host`: `localhost`,
/// `127.0.0.1` and `::1` always; the address or name bound, unless it is a wildcard, in which
/// case the machine's host name (how other machines would reach it).
pub fn self_signed_names(host: &str, hostname: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let extra = match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => hostname.map(str::to_owned),
        Ok(ip) => Some(ip.to_string()),
        Err(_) => Some(host.to_ascii_lowercase()),
    };
    if let Some(extra) = extra.filter(|e| !e.is_empty() && !names.contains(e)) {
        names.push(extra);
    }
    names
}

/// The machine's host name, from the kernel (None when it cannot be read or is unset).
pub fn hostname() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name != "(none)").then(|| name.to_ascii_lowercase())
}

fn from_files(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
    let (cert_pem, _) = read_pem_file("--tls-cert", cert_path)?;
    let bad_cert = |why: String| TlsError::BadCert {
        path: cert_path.into(),
        why,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_cert(format!("not a PEM certificate file ({e})")))?;
    let Some(leaf) = chain.first() else {
        return Err(bad_cert(
            "no certificate in it (looked for -----BEGIN CERTIFICATE-----)".into(),
        ));
    };
    ParsedCertificate::try_from(leaf)
        .map_err(|e| bad_cert(format!("the first certificate cannot be parsed ({e})")))?;
    let (key_pem, mode) = read_pem_file("--tls-key", key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.into(),
        why: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key in it (looked for PKCS#8, PKCS#1 or SEC1 PEM: \
                 -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .into()
            }
            other => format!("not a PEM private key ({other})"),
        },
    })?; // Checked once we know it is a key: a certificate given by mistake is named as such.
    if mode & 0o004 != 0 {
        return Err(TlsError::KeyExposed {
            path: key_path.into(),
            mode,
        });
    }

    let fingerprints = fingerprints(leaf)?;
    let config = server_config(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                cert: cert_path.into(),
                key: key_path.into(),
            }
        }
        other => TlsError::BadKey {
            path: key_path.into(),
            why: format!("not a key this server can use ({other})"),
        },
    })?;
    Ok(Identity {
        config,
        cert_sha256: fingerprints.0,
        spki_sha256: fingerprints.1,
        self_signed: None,
    })
}

/// Reads a PEM file named by `flag`: a regular file of at most [`MAX_PEM_FILE`] bytes.
/// Returns its bytes and its permission bits.
fn read_pem_file(flag: &'static str, path: &Path) -> Result<(Vec<u8>, u32), TlsError> {
    let read = |source| TlsError::Read {
        flag,
        path: path.into(),
        source,
    };
    let not_a_file = |why: String| TlsError::NotAFile {
        flag,
        path: path.into(),
        why,
    };
    // O_NONBLOCK: a FIFO named by mistake must not hang the start.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(not_a_file("not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if meta.len() > MAX_PEM_FILE {
        return Err(not_a_file(format!("larger than {MAX_PEM_FILE} bytes")));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut data)
        .map_err(read)?;
    if data.len() as u64 > MAX_PEM_FILE {
        return Err(not_a_file(format!("larger than {MAX_PEM_FILE} bytes")));
    }
    Ok((data, mode))
}

fn self_signed(names: &[String], out: Option<&Path>) -> Result<Identity, TlsError> {
    let setup = |e: rcgen::Error| TlsError::Setup(format!("making a self-signed certificate: {e}"));
    let pair = rcgen::KeyPair::generate().map_err(setup)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(setup)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "socklab http serve (self-signed)",
    );
    let (first, last) = validity(clock::wall());
    params.not_before = rcgen::date_time_ymd(
        i32::from(first.year()),
        first.month() as u8,
        first.day() as u8,
    );
    params.not_after =
        rcgen::date_time_ymd(i32::from(last.year()), last.month() as u8, last.day() as u8);
    let cert = params.self_signed(&pair).map_err(setup)?;
    let pem = cert.pem();
    let leaf = cert.der().clone();
    let fingerprints = fingerprints(&leaf)?;
    let key = PrivateKeyDer::Pkcs8(pair.serialize_der().into());
    let config = server_config(vec![leaf], key).map_err(|e| TlsError::Setup(e.to_string()))?;
    let (path, dir) = match out {
        Some(path) => (path.to_path_buf(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("socklab-https-")
                .tempdir()
                .map_err(|source| TlsError::WritePem {
                    path: std::env::temp_dir(),
                    source,
                })?;
            (dir.path().join("cert.pem"), Some(dir))
        }
    };
    write_public(&path, pem.as_bytes()).map_err(|source| TlsError::WritePem {
        path: path.clone(),
        source,
    })?;
    Ok(Identity {
        config,
        cert_sha256: fingerprints.0,
        spki_sha256: fingerprints.1,
        self_signed: Some(SelfSigned {
            names: names.to_vec(),
            pem: path,
            _dir: dir,
        }),
    })
}

/// The first and the last day of a self-signed certificate's validity: from yesterday (a
/// client whose clock is a little behind still accepts it) for a year, day 28 at most (29
/// February does not come back next year).
fn validity(now: std::time::SystemTime) -> (jiff::civil::Date, jiff::civil::Date) {
    let today = jiff::Timestamp::try_from(now)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
        .unwrap_or(jiff::civil::date(2025, 1, 2));
    let start = today.yesterday().unwrap_or(today);
    let start = jiff::civil::date(start.year(), start.month(), start.day().min(28));
    let end = jiff::civil::date(start.year().saturating_add(1), start.month(), start.day());
    (start, end)
}

/// Writes a public file (the certificate), replacing what was there: a temporary name in the
/// same directory, then a rename, so a client never reads half a PEM.
fn write_public(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The rustls configuration: ring, TLS 1.3 and 1.2, ALPN `http/1.1`, `SSLKEYLOGFILE`.
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Arc::new(config))
}

/// The certificate's SHA-256 (colon hex) and its public key's SHA-256 (base64).
fn fingerprints(leaf: &CertificateDer<'_>) -> Result<(String, String), TlsError> {
    let parsed = ParsedCertificate::try_from(leaf)
        .map_err(|e| TlsError::Setup(format!("parsing the certificate: {e}")))?;
    let spki = Sha256::digest(parsed.subject_public_key_info().as_ref());
    let cert = Sha256::digest(leaf.as_ref());
    Ok((
        colon_hex(&cert),
        base64::engine::general_purpose::STANDARD.encode(spki),
    ))
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_names_cover_loopback_and_the_bind_address() {
        let base = ["localhost", "127.0.0.1", "::1"];
        assert_eq!(self_signed_names("127.0.0.1", Some("box")), base);
        assert_eq!(self_signed_names("::1", Some("box")), base);
        assert_eq!(self_signed_names("[::1]", None), base);
        let mut with = base.map(String::from).to_vec();
        with.push("192.0.2.7".into());
        assert_eq!(self_signed_names("192.0.2.7", Some("box")), with);
        with.pop();
        with.push("box".into());
        assert_eq!(self_signed_names("0.0.0.0", Some("box")), with);
        assert_eq!(self_signed_names("::", Some("box")), with);
        assert_eq!(self_signed_names("::", None), base);
        with.pop();
        with.push("web.example".into());
        assert_eq!(self_signed_names("Web.Example", None), with);
    }

    #[test]
    fn validity_starts_yesterday_for_a_year() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_709_208_000); // 2024-02-29 12:00 UTC
        let (from, to) = validity(t);
        assert_eq!(from, jiff::civil::date(2024, 2, 28));
        assert_eq!(to, jiff::civil::date(2025, 2, 28));
    }

    #[test]
    fn a_self_signed_identity_has_its_pem_and_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c.pem");
        let names = self_signed_names("127.0.0.1", None);
        let id = Identity::load(&Source::SelfSigned {
            names: names.clone(),
            out: Some(out.clone()),
        })
        .unwrap();
        let pem = fs::read(&out).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(id.cert_sha256, colon_hex(&Sha256::digest(der.as_ref())));
        assert_eq!(id.cert_sha256.len(), 32 * 3 - 1);
        assert_eq!(id.spki_sha256.len(), 44);
        assert_eq!(id.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(id.self_signed.as_ref().unwrap().names, names);
        // Not the key: only the certificate is written.
        assert!(!String::from_utf8_lossy(&pem).contains("PRIVATE KEY"));
    }

    #[test]
    fn a_temporary_pem_goes_with_the_identity() {
        let id = Identity::load(&Source::SelfSigned {
            names: vec!["localhost".into()],
            out: None,
        })
        .unwrap();
        let pem = id.self_signed.as_ref().unwrap().pem.clone();
        assert!(pem.exists());
        drop(id);
        assert!(!pem.exists());
    }

    #[test]
    fn a_world_readable_key_is_refused_a_group_readable_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, params.self_signed(&pair).unwrap().pem()).unwrap();
        fs::write(&key, pair.serialize_pem()).unwrap();
        let load = |key: &Path| {
            Identity::load(&Source::Files {
                cert: cert.clone(),
                key: key.to_path_buf(),
            })
        };
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&key).unwrap_err();
        assert!(
            matches!(err, TlsError::KeyExposed { mode: 0o644, .. }),
            "{err}"
        );
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load(&key).unwrap().self_signed.is_none());
        // A certificate given as the key is named as such, whatever its mode.
        fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&cert).unwrap_err();
        assert!(err.to_string().contains("no private key in it"), "{err}");
    }
}
