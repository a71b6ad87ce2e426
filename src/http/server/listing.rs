//! Directory listings: an HTML page of links, directories first, then files, each group
//! sorted by name. Names are percent-encoded in `href`s and HTML-escaped in text; dotfiles
//! are left out unless `--hidden`.
//!
//! With `--precompressed`, a stored variant (`app.js.br`, `app.js.zst`, `app.js.gz`) is not
//! listed when its plain file (`app.js`) is in the same directory: it is another encoding of
//! that file, not a file of its own, and its row says `also br, gzip` instead. A `.gz` with no
//! plain file beside it (`backup.tar.gz`) is an ordinary file and is listed. The variants stay
//! reachable by their own URLs.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use percent_encoding::{AsciiSet, CONTROLS, percent_encode};

use super::encoding::Coding;
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
    /// The stored variants folded into this entry (`--precompressed`), in server order.
    pub codings: Vec<Coding>,
}

/// Reads the entries of `dir`; with `precompressed`, folds each stored variant into its plain
/// file's entry ([`fold_variants`]).
pub async fn entries(dir: &Path, hidden: bool, precompressed: bool) -> std::io::Result<Vec<Entry>> {
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
            codings: Vec::new(),
        });
    }
    if precompressed {
        out = fold_variants(out);
    }
    Ok(out)
}

/// Drops each file named `BASE.br`, `BASE.zst` or `BASE.gz` whose `BASE` is a file in the same
/// list, and notes its coding on `BASE`'s entry.
pub fn fold_variants(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let plain = |name: &[u8], entries: &[Entry]| {
        entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .filter(|&i| !entries[i].dir)
    };
    let mut folded: Vec<(usize, Coding)> = Vec::new();
    let mut keep = vec![true; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if e.dir {
            continue;
        }
        if let Some((coding, base)) = Coding::of_variant(&e.name)
            && let Some(j) = plain(base, &entries)
        {
            folded.push((j, coding));
            keep[i] = false;
        }
    }
    for (j, coding) in folded {
        entries[j].codings.push(coding);
    }
    let mut keep = keep.into_iter();
    entries.retain(|_| keep.next().unwrap_or(true));
    for e in &mut entries {
        e.codings
            .sort_by_key(|c| Coding::ALL.iter().position(|x| x == c));
    }
    entries
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
        } else if e.codings.is_empty() {
            format!(" <small>({} bytes)</small>", e.len)
        } else {
            let also: Vec<&str> = e.codings.iter().map(|c| c.token()).collect();
            format!(
                " <small>({} bytes; also {})</small>",
                e.len,
                also.join(", ")
            )
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
                    codings: Vec::new(),
                },
                Entry {
                    name: b"sub dir#1".to_vec(),
                    dir: true,
                    len: 0,
                    codings: Vec::new(),
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

    /// Issue 15, `--precompressed`: variants fold into their plain file's row; a lone `.gz`
    /// and a directory called `x.gz` stay.
    #[test]
    fn variants_fold_into_their_plain_file() {
        let e = |name: &str, dir: bool| Entry {
            name: name.as_bytes().to_vec(),
            dir,
            len: 1,
            codings: Vec::new(),
        };
        let list = fold_variants(vec![
            e("app.js.gz", false),
            e("app.js", false),
            e("app.js.br", false),
            e("app.js.zst", false),
            e("backup.tar.gz", false),
            e("site", true),
            e("site.gz", false),
            e("x.gz", true),
            e("x", false),
        ]);
        let shown: Vec<(String, Vec<Coding>)> = list
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.name).into_owned(),
                    e.codings.clone(),
                )
            })
            .collect();
        let s = |n: &str, c: &[Coding]| (n.to_string(), c.to_vec());
        assert_eq!(
            shown,
            [
                s("app.js", &[Coding::Br, Coding::Zstd, Coding::Gzip]),
                s("backup.tar.gz", &[]),
                s("site", &[]),
                s("site.gz", &[]),
                s("x", &[]),
                s("x.gz", &[]),
            ]
        );
        let html = render("/", list);
        assert!(html.contains("app.js</a> <small>(1 bytes; also br, zstd, gzip)</small>"));
        assert!(!html.contains("app.js.gz"));
    }
}
