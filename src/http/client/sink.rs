//! Where a download goes: stdout, or `NAME.part`, renamed to `NAME` only once it is complete
//! and of the announced size (so a cut download never looks like a finished one).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::output::part_path;
use super::{Error, Output};

/// Where the body's bytes go.
pub(super) enum Sink {
    /// `-O -`.
    Stdout,
    /// `NAME.part`, and its path.
    File(File, PathBuf),
}

impl Sink {
    /// Stdout, or `NAME.part` (appended to when resuming, else created), with its directory.
    pub(super) fn open(output: &Output, append: bool) -> Result<Sink, Error> {
        let Output::File(path) = output else {
            return Ok(Sink::Stdout);
        };
        let part = part_path(path);
        if let Some(dir) = part.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::file("creating", dir))?;
        }
        let file = if append {
            std::fs::OpenOptions::new().append(true).open(&part)
        } else {
            File::create(&part)
        }
        .map_err(Error::file("opening", &part))?;
        Ok(Sink::File(file, part))
    }

    /// Writes `data` (nothing to do when it is empty).
    pub(super) fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Stdout => write_stdout(data),
            Sink::File(f, path) => f.write_all(data).map_err(Error::file("writing", path)),
        }
    }
}

/// Writes to stdout (a HEAD response's head, or the body with `-O -`).
pub(super) fn write_stdout(data: &[u8]) -> Result<(), Error> {
    io::stdout()
        .lock()
        .write_all(data)
        .map_err(Error::file("writing", Path::new("stdout")))
}

/// Checks `NAME.part` has `want` bytes (when known) and renames it to NAME, replacing any
/// old NAME atomically.
pub(super) fn finish_file(path: &Path, want: Option<u64>) -> Result<(), Error> {
    let part = part_path(path);
    let got = std::fs::metadata(&part)
        .map_err(Error::file("checking", &part))?
        .len();
    if let Some(want) = want
        && got != want
    {
        return Err(Error::SizeMismatch {
            path: path.display().to_string(),
            got,
            want,
        });
    }
    std::fs::rename(&part, path).map_err(Error::file("renaming the .part file to", path))
}
