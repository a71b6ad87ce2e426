//! The channel of `socklab rexec`: TLS 1.3 (rustls, ring) with a host key instead of a
//! certificate authority, trusted the way ssh trusts host keys.
//!
//! - The server's **host key** is an Ed25519 key in a PKCS#8 PEM file (mode 0600, made on
//!   first start). At each start the server makes a self-signed certificate for it (rcgen);
//!   the certificate changes, the key does not.
//! - Its **fingerprint** is `SHA256:` and the unpadded base64 of the SHA-256 of the key's
//!   SubjectPublicKeyInfo (DER), which anyone can recompute from what the server shows:
//!   `openssl s_client -connect HOST:PORT -alpn socklab-rexec/1 </dev/null | openssl x509
//!   -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64`.
//! - The client's [`PinVerifier`] ignores names, dates and issuers, and checks two things: the
//!   handshake signature was made by the certificate's key (so the server holds the private
//!   key), and that key's fingerprint is the expected one (`--fingerprint`, or the
//!   known-hosts line). A host not yet known is let through the handshake with its
//!   fingerprint recorded, and the client decides before anything is sent (ask, or
//!   `--accept-new`).
//! - The **known-hosts** file has one `[HOST]:PORT SHA256:…` line per server.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::proto::ALPN;

/// A host key or known-hosts problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The host key file is readable by others.
    #[error("{path}: the host key is readable by others (mode {mode:03o}); run `chmod 600 {path}`")]
    Unprotected {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// The key file does not hold a key rcgen can use.
    #[error("{path}: not a host key ({why})")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Making the certificate or the TLS configuration failed.
    #[error("setting up TLS: {0}")]
    Setup(String),
    /// No data directory for the default files.
    #[error("no HOME or XDG_DATA_HOME to keep {0} in; give its path")]
    NoDataDir(&'static str),
}

impl crate::exit::ExitCoded for KeyError {
    fn exit_code(&self) -> u8 {
        match self {
            KeyError::Unprotected { .. } | KeyError::NoDataDir(_) => crate::exit::USAGE,
            KeyError::Setup(_) => crate::exit::TLS,
            _ => crate::exit::LOCAL_IO,
        }
    }
}

/// socklab's data directory: `$XDG_DATA_HOME/socklab`, or `~/.local/share/socklab`.
pub fn data_dir(what: &'static str) -> Result<PathBuf, KeyError> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("socklab"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/socklab")),
        None => Err(KeyError::NoDataDir(what)),
    }
}

/// The fingerprint of a SubjectPublicKeyInfo: `SHA256:` and unpadded base64.
pub fn fingerprint_spki(spki: &[u8]) -> String {
    let digest = Sha256::digest(spki);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The fingerprint of the key in a certificate.
pub fn fingerprint_cert(cert: &CertificateDer<'_>) -> Result<String, rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    Ok(fingerprint_spki(parsed.subject_public_key_info().as_ref()))
}

/// Whether a string looks like a fingerprint we print (for `--fingerprint`).
pub fn valid_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|b| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b.trim_end_matches('='))
            .is_ok_and(|d| d.len() == 32)
    })
}

/// Compares two fingerprints, ignoring base64 padding.
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    a.trim_end_matches('=') == b.trim_end_matches('=')
}

/// The server's identity: its key, a certificate for it, and the fingerprint.
pub struct HostKey {
    /// The certificate made at this start.
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// Whether the key was made now (first start).
    pub created: bool,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey")
            .field("fingerprint", &self.fingerprint)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl HostKey {
    /// Loads the key at `path`, or makes one there (mode 0600) when there is none. A key file
    /// that group or others can read is refused, as ssh refuses one.
    pub fn load_or_create(path: &Path) -> Result<HostKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (pair, created) = match fs::symlink_metadata(path) {
            Ok(meta) => {
                if !meta.is_file() {
                    return Err(KeyError::BadKey {
                        path: path.into(),
                        why: "not a regular file".into(),
                    });
                }
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Unprotected {
                        path: path.display().to_string(),
                        mode,
                    });
                }
                if meta.len() > 64 * 1024 {
                    return Err(KeyError::BadKey {
                        path: path.into(),
                        why: "larger than 64 KiB".into(),
                    });
                }
                let pem = fs::read_to_string(path).map_err(io)?;
                let pair = rcgen::KeyPair::from_pem(&pem).map_err(|e| KeyError::BadKey {
                    path: path.into(),
                    why: e.to_string(),
                })?;
                (pair, false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
                    .map_err(|e| KeyError::Setup(e.to_string()))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir).map_err(io)?;
                }
                match write_new(path, pair.serialize_pem().as_bytes()) {
                    Ok(()) => (pair, true),
                    // Another server made it at the same moment: use that one.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return HostKey::load_or_create(path);
                    }
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        };
        let mut params = rcgen::CertificateParams::new(vec!["socklab-rexec".to_string()])
            .map_err(|e| KeyError::Setup(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "socklab rexec host key");
        let cert = params
            .self_signed(&pair)
            .map_err(|e| KeyError::Setup(e.to_string()))?;
        let cert = cert.der().clone();
        let fingerprint = fingerprint_cert(&cert).map_err(|e| KeyError::Setup(e.to_string()))?;
        Ok(HostKey {
            cert,
            key: PrivatePkcs8KeyDer::from(pair.serialize_der()),
            fingerprint,
            created,
        })
    }

    /// The server's TLS configuration: TLS 1.3 only, ALPN `socklab-rexec/1`.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, KeyError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| KeyError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(|e| KeyError::Setup(e.to_string()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Arc::new(config))
    }
}

/// Creates `path` with `data`, mode 0600, failing if it exists (written to a temporary name
/// and linked into place, so no reader sees half a key).
fn write_new(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let r = f
        .write_all(data)
        .and_then(|()| f.sync_all())
        .and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    r
}

/// What the client expects of the server's key.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Exactly this fingerprint (`--fingerprint`, or a known-hosts line).
    Pinned {
        /// The fingerprint.
        fingerprint: String,
        /// Where it comes from, for the warning (`--fingerprint`, or `FILE line N`).
        source: String,
    },
    /// Nothing known yet: let the handshake through and decide after it.
    Unknown,
}

/// What the verifier saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// The server key's fingerprint, once the certificate came.
    pub fingerprint: Option<String>,
    /// The handshake failed because the fingerprint differs from the pinned one.
    pub mismatch: bool,
}

/// The client's certificate check: the handshake signature, and the key's fingerprint.
#[derive(Debug)]
pub struct PinVerifier {
    provider: Arc<CryptoProvider>,
    expect: Expect,
    seen: Arc<Mutex<Seen>>,
}

impl PinVerifier {
    fn record(&self, fp: &str, mismatch: bool) {
        let mut s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        s.fingerprint = Some(fp.to_string());
        s.mismatch = mismatch;
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint_cert(end_entity)?;
        match &self.expect {
            Expect::Pinned { fingerprint, .. } if !same_fingerprint(fingerprint, &fp) => {
                self.record(&fp, true);
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
            _ => {
                self.record(&fp, false);
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The client offers TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client's TLS configuration: TLS 1.3 only, ALPN `socklab-rexec/1`, the pin verifier,
/// and `SSLKEYLOGFILE` honoured (the session keys appended to that file, so a capture can be
/// decrypted by Wireshark or tshark).
pub fn client_config(
    expect: Expect,
) -> Result<(Arc<rustls::ClientConfig>, Arc<Mutex<Seen>>), KeyError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = PinVerifier {
        provider: provider.clone(),
        expect,
        seen: seen.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| KeyError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok((Arc::new(config), seen))
}

/// The known-hosts file: `[HOST]:PORT SHA256:…` lines; `#` comments.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    text: String,
}

/// A known-hosts entry found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The fingerprint remembered.
    pub fingerprint: String,
    /// Its line (from 1).
    pub line: usize,
}

/// How a host is written in the file.
pub fn host_key_name(host: &str, port: u16) -> String {
    format!(
        "[{}]:{port}",
        host.trim_start_matches('[').trim_end_matches(']')
    )
}

impl KnownHosts {
    /// Reads the file (missing: empty).
    pub fn load(path: &Path) -> Result<KnownHosts, KeyError> {
        let text = match fs::metadata(path) {
            Ok(m) if m.len() > 4 << 20 => {
                return Err(KeyError::BadKey {
                    path: path.into(),
                    why: "a known-hosts file larger than 4 MiB".into(),
                });
            }
            Ok(_) => fs::read_to_string(path).map_err(|source| KeyError::Io {
                path: path.into(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KeyError::Io {
                    path: path.into(),
                    source,
                });
            }
        };
        Ok(KnownHosts {
            path: path.into(),
            text,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry for `name` (`[HOST]:PORT`).
    pub fn find(&self, name: &str) -> Option<Known> {
        self.text.lines().enumerate().find_map(|(i, l)| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| Known {
                fingerprint: w.next().unwrap_or("").to_string(),
                line: i + 1,
            })
        })
    }

    /// Appends an entry (the directory and the file are created as needed).
    pub fn add(&mut self, name: &str, fingerprint: &str) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let line = format!("{name} {fingerprint}\n");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io)?;
        let mut out = String::new();
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
        f.write_all(out.as_bytes()).map_err(io)?;
        self.text.push_str(&out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key.pem");
        let a = HostKey::load_or_create(&path).unwrap();
        assert!(a.created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = HostKey::load_or_create(&path).unwrap();
        assert!(!b.created);
        assert_eq!(a.fingerprint, b.fingerprint, "same key, same fingerprint");
        assert!(valid_fingerprint(&a.fingerprint), "{}", a.fingerprint);
        assert_eq!(a.fingerprint.len(), "SHA256:".len() + 43);
        a.server_config().unwrap();
    }

    #[test]
    fn an_unprotected_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        HostKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            HostKey::load_or_create(&path),
            Err(KeyError::Unprotected { mode: 0o644, .. })
        ));
    }

    #[test]
    fn garbage_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        fs::write(&path, "hello").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            HostKey::load_or_create(&path),
            Err(KeyError::BadKey { .. })
        ));
    }

    #[test]
    fn known_hosts_find_and_add() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/known_hosts");
        let mut k = KnownHosts::load(&path).unwrap();
        let name = host_key_name("127.0.0.1", 2222);
        assert_eq!(name, "[127.0.0.1]:2222");
        assert_eq!(k.find(&name), None);
        k.add("[other]:1", "SHA256:x").unwrap();
        k.add(&name, "SHA256:abc").unwrap();
        let k = KnownHosts::load(&path).unwrap();
        assert_eq!(
            k.find(&name),
            Some(Known {
                fingerprint: "SHA256:abc".into(),
                line: 2
            })
        );
        assert_eq!(host_key_name("[::1]", 22), "[::1]:22");
    }

    #[test]
    fn fingerprints_compare_without_padding() {
        assert!(same_fingerprint("SHA256:abc=", "SHA256:abc"));
        assert!(!same_fingerprint("SHA256:abd", "SHA256:abc"));
        assert!(!valid_fingerprint("MD5:aa"));
        assert!(!valid_fingerprint("SHA256:short"));
    }
}
