//! Directory listings: an HTML page of links, directories first, then files, each group
//! sorted by name. Names are percent-encoded in `href`s and HTML-escaped in text; dotfiles
//! are left out unless `--hidden`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use percent_encoding::{AsciiSet, CONTROLS, percent_encode};

use super::error_page::{STYLE, escape};

/// Bytes escaped in a path segment: everything but unreserved characters and a few
/// sub-delimiters that are safe in a relative reference.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'\'')
    .add(b'&');

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name as bytes (Unix names need not be UTF-8).
    pub name: Vec<u8>,
    /// Whether it is a directory.
    pub dir: bool,
    /// Size in bytes (files).
    pub len: u64,
}

/// Reads the entries of `dir`.
pub async fn entries(dir: &Path, hidden: bool) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut rd = tokio::fs::read_dir(dir).await?;
    while let Some(e) = rd.next_entry().await? {
        let name = e.file_name().as_bytes().to_vec();
        if !hidden && name.starts_with(b".") {
            continue;
        }
        // Follow symlinks for the kind; a broken one is listed as a file.
        let meta = tokio::fs::metadata(e.path()).await.ok();
        out.push(Entry {
            name,
            dir: meta.as_ref().is_some_and(|m| m.is_dir()),
            len: meta.map_or(0, |m| m.len()),
        });
    }
    Ok(out)
}

/// Renders the listing of `entries` for the directory at URL path `url_path` (as sent).
pub fn render(url_path: &str, mut entries: Vec<Entry>) -> String {
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    let shown = percent_encoding::percent_decode_str(url_path).decode_utf8_lossy();
    let title = format!("Index of {}", escape(&shown));
    let mut rows = String::new();
    if url_path != "/" {
        rows.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for e in &entries {
        let slash = if e.dir { "/" } else { "" };
        let href = percent_encode(&e.name, SEGMENT).to_string();
        let text = escape(&String::from_utf8_lossy(&e.name));
        let size = if e.dir {
            String::new()
        } else {
            format!(" <small>({} bytes)</small>", e.len)
        };
        rows.push_str(&format!(
            "<li><a href=\"{href}{slash}\">{text}{slash}</a>{size}</li>\n"
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n\
         <ul>\n{rows}</ul>\n<footer>socklab</footer>\n</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_in_links_and_escaped_in_text() {
        let html = render(
            "/a%20dir/",
            vec![
                Entry {
                    name: b"z<b>&.txt".to_vec(),
                    dir: false,
                    len: 3,
                },
                Entry {
                    name: b"sub dir#1".to_vec(),
                    dir: true,
                    len: 0,
                },
            ],
        );
        assert!(html.contains("<title>Index of /a dir/</title>"));
        assert!(html.contains("<a href=\"z%3Cb%3E%26.txt\">z&lt;b&gt;&amp;.txt</a>"));
        assert!(html.contains("<a href=\"sub%20dir%231/\">sub dir#1/</a>"));
        // Directories come first.
        assert!(html.find("sub%20dir").unwrap() < html.find("z%3Cb").unwrap());
        assert!(html.contains("href=\"../\""));
    }
}
