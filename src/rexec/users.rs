//! The users file of `socklab rexec serve --users FILE`: one `USER:PHC` line per user, the
//! password kept only as an Argon2id hash in the PHC string format (the same string
//! `argon2` tools and libraries read):
//!
//! ```text
//! # socklab rexec users (socklab rexec passwd FILE add USER)
//! ana:$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG
//! ```
//!
//! Lines starting with `#` and blank lines are kept as they are. The file is written to a
//! temporary name (mode 0600) and renamed over the old one, so a reader never sees half of
//! it. Users are not system accounts: every command runs as the server's own user.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use zeroize::Zeroize;

use super::proto::valid_user;

/// The largest users file read.
pub const MAX_FILE: u64 = 1 << 20;

/// A users file problem.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A line that is not `USER:PHC`.
    #[error("{path} line {line}: {why}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The file is larger than [`MAX_FILE`], not a regular file, or writable by others.
    #[error("{path}: {why}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A user name the file cannot hold.
    #[error("{0:?} is not a user name: use 1 to 32 of A-Z a-z 0-9 . _ - (not first . or -)")]
    BadName(String),
    /// `remove` of a user not in the file.
    #[error("no user {0:?} in the file")]
    NoSuchUser(String),
    /// Hashing failed.
    #[error("hashing the password: {0}")]
    Hash(String),
}

impl crate::exit::ExitCoded for UsersError {
    fn exit_code(&self) -> u8 {
        match self {
            UsersError::BadName(_) | UsersError::NoSuchUser(_) | UsersError::Unusable { .. } => {
                crate::exit::USAGE
            }
            _ => crate::exit::LOCAL_IO,
        }
    }
}

/// A line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    User { name: String, phc: String },
    Other(String),
}

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    lines: Vec<Line>,
}

impl Users {
    /// Parses the file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Users, UsersError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                lines.push(Line::Other(raw.to_string()));
                continue;
            }
            let syntax = |why: &str| UsersError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                why: why.into(),
            };
            let (name, phc) = t
                .split_once(':')
                .ok_or_else(|| syntax("expected USER:HASH"))?;
            if !valid_user(name) {
                return Err(syntax("not a valid user name"));
            }
            PasswordHash::new(phc).map_err(|e| syntax(&format!("not a PHC hash string: {e}")))?;
            if !phc.starts_with("$argon2") {
                return Err(syntax("not an Argon2 hash"));
            }
            lines.push(Line::User {
                name: name.into(),
                phc: phc.into(),
            });
        }
        Ok(Users { lines })
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            match l {
                Line::User { name, phc } => {
                    s.push_str(name);
                    s.push(':');
                    s.push_str(phc);
                }
                Line::Other(t) => s.push_str(t),
            }
            s.push('\n');
        }
        s
    }

    /// The user names, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                Line::User { name, .. } => Some(name.as_str()),
                Line::Other(_) => None,
            })
            .collect()
    }

    /// The hash of a user (the first line naming it).
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::User { name, phc } if name == user => Some(phc.as_str()),
            _ => None,
        })
    }

    /// Sets a user's hash; `true` when the user was already there.
    pub fn set(&mut self, user: &str, phc: String) -> bool {
        for l in &mut self.lines {
            if let Line::User { name, phc: old } = l
                && name == user
            {
                *old = phc;
                return true;
            }
        }
        self.lines.push(Line::User {
            name: user.into(),
            phc,
        });
        false
    }

    /// Removes a user; `false` when it was not there.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::User { name, .. } if name == user));
        before != self.lines.len()
    }

    /// Reads a users file for a server: it must also be writable by its owner only (a file
    /// others can write lets them add themselves, and run commands as the server's user).
    pub fn load_for_server(path: &Path) -> Result<Users, UsersError> {
        let meta = fs::metadata(path).map_err(|source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(UsersError::Unusable {
                path: path.into(),
                why: format!(
                    "writable by group or others (mode {mode:03o}); run `chmod 600 {}`",
                    path.display()
                ),
            });
        }
        Users::load(path, false)
    }

    /// Reads a users file; a missing file is an empty one when `missing_ok`.
    pub fn load(path: &Path, missing_ok: bool) -> Result<Users, UsersError> {
        let io = |source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound && missing_ok => {
                return Ok(Users::default());
            }
            Err(e) => return Err(io(e)),
        };
        if !meta.is_file() {
            return Err(UsersError::Unusable {
                path: path.into(),
                why: "not a regular file".into(),
            });
        }
        if meta.len() > MAX_FILE {
            return Err(UsersError::Unusable {
                path: path.into(),
                why: format!("larger than {MAX_FILE} bytes"),
            });
        }
        let text = fs::read_to_string(path).map_err(io)?;
        Users::parse(&text, path)
    }

    /// Writes the file: a temporary file of mode 0600 next to it, renamed over it.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let io = |source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().ok_or_else(|| UsersError::Unusable {
            path: path.into(),
            why: "not a file name".into(),
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        let result = f
            .write_all(self.render().as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)))
            .and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(())
    }
}

/// Hashes a password with Argon2id and the crate's defaults (19 MiB, 2 passes, 1 lane: the
/// OWASP recommendation), a fresh random salt. The password is wiped afterwards.
pub fn hash(mut password: Vec<u8>) -> Result<String, UsersError> {
    let r = Argon2::default()
        .hash_password(&password)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()));
    password.zeroize();
    r
}

/// Checks a password against a PHC string (its own parameters). An unparsable string
/// fails like a wrong password.
pub fn verify(password: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password with the default parameters: what an unknown user's
/// password is checked against, so that "no such user" costs the same work as "wrong
/// password".
pub fn decoy() -> Result<String, UsersError> {
    let mut pw = [0u8; 32];
    rand::fill(&mut pw);
    hash(pw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(pw: &[u8]) -> String {
        // Light parameters: the tests check the plumbing, not the cost.
        use argon2::password_hash::CustomizedPasswordHasher;
        let params = argon2::Params::new(64, 1, 1, None).unwrap();
        Argon2::default()
            .hash_password_with_params(pw, b"saltsaltsaltsalt", params)
            .unwrap()
            .to_string()
    }

    #[test]
    fn parse_render_roundtrip_keeps_comments() {
        let h = cheap(b"pw");
        let text = format!("# users\nana:{h}\n\nbob:{h}\n");
        let u = Users::parse(&text, Path::new("f")).unwrap();
        assert_eq!(u.names(), ["ana", "bob"]);
        assert_eq!(u.render(), text);
    }

    #[test]
    fn bad_lines_are_named() {
        let h = cheap(b"pw");
        for (text, line) in [
            (format!("ana:{h}\nbob\n"), 2),
            (format!("a/b:{h}\n"), 1),
            ("ana:$2y$10$notargon\n".to_string(), 1),
            ("ana:plaintext\n".to_string(), 1),
        ] {
            match Users::parse(&text, Path::new("f")) {
                Err(UsersError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn set_remove_and_verify() {
        let mut u = Users::default();
        assert!(!u.set("ana", cheap(b"one")));
        assert!(u.set("ana", cheap(b"two")));
        assert_eq!(u.names(), ["ana"]);
        assert!(verify(b"two", u.hash_of("ana").unwrap()));
        assert!(!verify(b"one", u.hash_of("ana").unwrap()));
        assert!(!verify(b"two", "garbage"));
        assert!(u.remove("ana"));
        assert!(!u.remove("ana"));
    }

    #[test]
    fn save_is_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let mut u = Users::default();
        u.set("ana", cheap(b"pw"));
        u.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Users::load(&path, false).unwrap(), u);
        assert!(
            Users::load(&dir.path().join("none"), true)
                .unwrap()
                .names()
                .is_empty()
        );
        assert!(Users::load(&dir.path().join("none"), false).is_err());
        assert!(matches!(
            Users::load(dir.path(), false),
            Err(UsersError::Unusable { .. })
        ));
    }
}
