//! Where a download goes: the file name from the URL (like wget), and the `.part` file it is
//! written under until it is complete. Sans-IO: names only, no file is touched.

use std::path::{Path, PathBuf};

use url::Url;

/// Longest file name we derive from a URL: the usual file-system limit (255 bytes) less the
/// `.part` suffix the download is written under first.
pub const MAX_NAME: usize = 255 - ".part".len();

/// The file name for `url`, like wget: the last path segment, percent-decoded; `index.html`
/// when it is empty. A name that could leave the output directory is made safe: `/`, `\`,
/// NUL and control characters become `_`, and `.` or `..` become `index.html`.
pub fn default_name(url: &Url) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    let mut name: String = decoded
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.is_empty() || name == "." || name == ".." {
        return "index.html".into();
    }
    if name.len() > MAX_NAME {
        let mut cut = MAX_NAME;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

/// `NAME.part`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn output_names() {
        let n = |u: &str| default_name(&url(u));
        assert_eq!(n("http://h/"), "index.html");
        assert_eq!(n("http://h"), "index.html");
        assert_eq!(n("http://h/dir/"), "index.html");
        assert_eq!(n("http://h/a/b.tar.gz?x=1#y"), "b.tar.gz");
        assert_eq!(n("http://h/caf%C3%A9%20menu.txt"), "café menu.txt");
        assert_eq!(n("http://h/a%2Fb"), "a_b");
        assert_eq!(n("http://h/..%2F..%2Fetc%2Fpasswd"), ".._.._etc_passwd");
        assert_eq!(n("http://h/x/%2e%2e"), "index.html");
        assert_eq!(n("http://h/a%00b%0A"), "a_b_");
        assert_eq!(n("http://h/a%5Cb"), "a_b");
        // Cut on a character boundary, leaving room for `.part` within 255 bytes.
        let long = n(&format!("http://h/{}", "é".repeat(200)));
        assert_eq!(long.len(), MAX_NAME);
        assert_eq!(long.len() + ".part".len(), 255);
    }
}
