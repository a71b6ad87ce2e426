//! `socklab http serve --precompressed` (issue 15): stored `FILE.br`, `FILE.zst` and `FILE.gz`
//! made by the real tools (`brotli`, `zstd`, `gzip -k`), chosen by `Accept-Encoding`, decoded
//! by curl `--compressed` and by headless Chromium back to the plain file's bytes; ETags,
//! 304, ranges and 416 per encoding; `Vary` everywhere it matters; listings.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::support::*;

/// A compressible text of about 40 KB (JavaScript, so Content-Type is text/javascript).
fn script() -> Vec<u8> {
    let mut s = String::from("// socklab precompressed test\nconst rows = [\n");
    for (i, b) in noise(2000, 15).iter().enumerate() {
        s.push_str(&format!(
            "  {{ id: {i}, value: {b}, label: \"row {}\" }},\n",
            b % 7
        ));
    }
    s.push_str("];\n");
    s.into_bytes()
}

/// Runs a compressor the way a site's build step would: `TOOL ARGS FILE`, keeping FILE.
fn compress(tool: &str, args: &[&str], file: &Path) {
    require(tool);
    let mut cmd = Command::new(tool);
    cmd.args(args).arg(file);
    ok(&run_with(cmd, b"", Duration::from_secs(30)));
}

/// A site with `app.js` and its three variants, `plain.txt` with none, and `lone.txt.gz`
/// without its plain file.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.js");
    std::fs::write(&app, script()).unwrap();
    compress("gzip", &["-k"], &app);
    compress("brotli", &["-k"], &app);
    compress("zstd", &["-q", "-k"], &app);
    std::fs::write(dir.path().join("plain.txt"), "no variants here\n").unwrap();
    let lone = dir.path().join("lone.txt");
    std::fs::write(&lone, "only stored compressed\n").unwrap();
    compress("gzip", &[], &lone);
    dir
}

fn serve(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["http", "serve", dir.to_str().unwrap(), "-p", "0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// One response, framed by Content-Length (none after HEAD or 304).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `METHOD PATH` with `headers` (and `Connection: close`) from a plain socket.
fn request(addr: &str, method: &str, path: &str, headers: &[&str]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut wire = Vec::new();
    s.read_to_end(&mut wire).unwrap();
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut fields);
    let httparse::Status::Complete(n) = r.parse(&wire).expect("a response head") else {
        panic!("partial response: {:?}", String::from_utf8_lossy(&wire));
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Reply {
        status: r.code.unwrap(),
        headers,
        body: wire[n..].to_vec(),
    }
}

fn get(addr: &str, path: &str, headers: &[&str]) -> Reply {
    request(addr, "GET", path, headers)
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

#[test]
fn each_coding_is_served_from_its_file_and_curl_decodes_it() {
    let dir = site();
    let srv = serve(dir.path(), &["--precompressed"]);
    let plain = read(dir.path(), "app.js");
    for (coding, file) in [
        ("br", "app.js.br"),
        ("zstd", "app.js.zst"),
        ("gzip", "app.js.gz"),
    ] {
        let stored = read(dir.path(), file);
        assert!(stored.len() * 3 < plain.len(), "{file} is compressed");
        let r = get(
            &srv.addr,
            "/app.js",
            &[&format!("Accept-Encoding: {coding}")],
        );
        assert_eq!(r.status, 200, "{coding}");
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "the original's type, not the variant's"
        );
        assert_eq!(
            r.header("content-length"),
            Some(stored.len().to_string().as_str())
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert!(
            r.body == stored,
            "{coding}: the stored file's bytes, as they are"
        );
        // curl asks for the coding and decodes it back to the plain file.
        let url = format!("http://{}/app.js", srv.addr);
        let out = curl(&[
            "--compressed",
            "-H",
            &format!("Accept-Encoding: {coding}"),
            &url,
        ]);
        assert!(ok(&out) == plain, "curl --compressed with {coding}");
    }
    // curl's own `--compressed` offers every coding it knows: equal weights, so br wins.
    let url = format!("http://{}/app.js", srv.addr);
    let out = curl(&["--compressed", "-D", "-", "-o", "/dev/null", &url]);
    let head = String::from_utf8_lossy(&ok(&out)).to_ascii_lowercase();
    assert!(head.contains("content-encoding: br"), "{head}");
    let out = curl(&["--compressed", &url]);
    assert!(ok(&out) == plain);
}

#[test]
fn the_client_preference_chooses_and_ties_follow_the_server_order() {
    let dir = site();
    let srv = serve(dir.path(), &["--precompressed"]);
    let coding = |ae: &str| {
        get(&srv.addr, "/app.js", &[&format!("Accept-Encoding: {ae}")])
            .header("content-encoding")
            .map(str::to_string)
    };
    assert_eq!(coding("gzip, zstd, br").as_deref(), Some("br"));
    assert_eq!(coding("gzip, zstd").as_deref(), Some("zstd"));
    assert_eq!(coding("br;q=0.5, gzip").as_deref(), Some("gzip"));
    assert_eq!(coding("*").as_deref(), Some("br"));
    assert_eq!(coding("*, br;q=0").as_deref(), Some("zstd"));
    assert_eq!(coding("x-gzip").as_deref(), Some("gzip"));
    // The client prefers the plain bytes, refuses the one coding offered, or names none we
    // have: the plain file.
    assert_eq!(coding("gzip;q=0.5, identity"), None);
    assert_eq!(coding("gzip;q=0"), None);
    assert_eq!(coding("deflate"), None);
    assert_eq!(coding(""), None);
    // No coding acceptable and identity refused too: still the plain file, not 406.
    let r = get(
        &srv.addr,
        "/app.js",
        &["Accept-Encoding: identity;q=0, gzip;q=0"],
    );
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    // A file with no variants, asked with every coding: plain.
    let r = get(
        &srv.addr,
        "/plain.txt",
        &["Accept-Encoding: gzip, br, zstd"],
    );
    assert_eq!(r.body, b"no variants here\n");
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn plain_answers_say_vary_too_and_only_with_the_flag() {
    let dir = site();
    let plain = read(dir.path(), "app.js");
    let srv = serve(dir.path(), &["--precompressed"]);
    for ae in [None, Some("Accept-Encoding: gzip;q=0")] {
        let r = get(&srv.addr, "/app.js", ae.as_slice());
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), None, "{ae:?}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{ae:?}");
        assert!(r.body == plain, "{ae:?}");
    }
    let r = get(&srv.addr, "/plain.txt", &[]);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // Pages that do not depend on Accept-Encoding do not say it.
    let r = get(&srv.addr, "/missing", &["Accept-Encoding: gzip"]);
    assert_eq!((r.status, r.header("vary")), (404, None));

    // Without --precompressed the variants are ordinary files and nothing varies.
    let srv = serve(dir.path(), &[]);
    let r = get(&srv.addr, "/app.js", &["Accept-Encoding: gzip, br"]);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    assert!(r.body == plain);
}

#[test]
fn each_encoding_has_its_own_etag_and_304() {
    let dir = site();
    let srv = serve(dir.path(), &["--precompressed"]);
    let tag = |ae: &[&str]| {
        get(&srv.addr, "/app.js", ae)
            .header("etag")
            .unwrap()
            .to_string()
    };
    let plain = tag(&[]);
    let gzip = tag(&["Accept-Encoding: gzip"]);
    let br = tag(&["Accept-Encoding: br"]);
    let zstd = tag(&["Accept-Encoding: zstd"]);
    assert!(gzip.ends_with("-gzip\"") && br.ends_with("-br\"") && zstd.ends_with("-zstd\""));
    let all: std::collections::HashSet<_> = [&plain, &gzip, &br, &zstd].into_iter().collect();
    assert_eq!(all.len(), 4, "four different tags: {all:?}");

    // The gzip tag revalidates the gzip answer...
    let r = get(
        &srv.addr,
        "/app.js",
        &["Accept-Encoding: gzip", &format!("If-None-Match: {gzip}")],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(gzip.as_str()));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    // ... but not the br one or the plain one: they are other bytes.
    let r = get(
        &srv.addr,
        "/app.js",
        &["Accept-Encoding: br", &format!("If-None-Match: {gzip}")],
    );
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("br")));
    let r = get(&srv.addr, "/app.js", &[&format!("If-None-Match: {gzip}")]);
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    // A cache holding two encodings sends both tags; the one that applies matches.
    let both = format!("If-None-Match: {plain}, {br}");
    let r = get(&srv.addr, "/app.js", &["Accept-Encoding: br", &both]);
    assert_eq!(r.status, 304);
    let r = get(&srv.addr, "/app.js", &[&both]);
    assert_eq!(r.status, 304);
    let r = get(&srv.addr, "/app.js", &["Accept-Encoding: gzip", &both]);
    assert_eq!(
        (r.status, r.header("content-encoding")),
        (200, Some("gzip"))
    );

    // HEAD: the same head as GET, no body.
    let stored = read(dir.path(), "app.js.zst");
    let r = request(&srv.addr, "HEAD", "/app.js", &["Accept-Encoding: zstd"]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert_eq!(r.header("etag"), Some(zstd.as_str()));
    assert_eq!(
        r.header("content-length"),
        Some(stored.len().to_string().as_str())
    );
}

#[test]
fn a_range_counts_the_encoded_bytes() {
    let dir = site();
    let srv = serve(dir.path(), &["--precompressed"]);
    let gz = read(dir.path(), "app.js.gz");
    let plain_len = read(dir.path(), "app.js").len();
    let r = get(
        &srv.addr,
        "/app.js",
        &["Accept-Encoding: gzip", "Range: bytes=0-9"],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-9/{}", gz.len()).as_str())
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        r.body,
        gz[..10],
        "the first ten bytes of the .gz: its magic number first"
    );
    assert_eq!(r.body[..2], [0x1f, 0x8b]);
    // The rest, as curl -C would resume it, completes the .gz exactly.
    let url = format!("http://{}/app.js", srv.addr);
    let out = curl(&["-H", "Accept-Encoding: gzip", "-r", "10-", &url]);
    let mut whole = r.body.clone();
    whole.extend(ok(&out));
    assert!(whole == gz);
    // Past the end of the .gz (though not of the plain file): 416 with the .gz's length.
    let past = format!("Range: bytes={}-", gz.len());
    assert!(gz.len() < plain_len);
    let r = get(&srv.addr, "/app.js", &["Accept-Encoding: gzip", &past]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", gz.len()).as_str())
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // The same range without the coding is inside the plain file.
    let r = get(&srv.addr, "/app.js", &[&past]);
    assert_eq!(r.status, 206);
    // If-Range with the gzip answer's date keeps the range; our tags are weak, so a tag never
    // does (RFC 9110 §13.1.5), for any encoding.
    let first = get(&srv.addr, "/app.js", &["Accept-Encoding: gzip"]);
    let date = first.header("last-modified").unwrap().to_string();
    let tag = first.header("etag").unwrap().to_string();
    let ranged = |if_range: &str| {
        get(
            &srv.addr,
            "/app.js",
            &[
                "Accept-Encoding: gzip",
                "Range: bytes=0-9",
                &format!("If-Range: {if_range}"),
            ],
        )
        .status
    };
    assert_eq!(ranged(&date), 206);
    assert_eq!(ranged(&tag), 200);
}

#[test]
fn a_gz_asked_by_name_is_a_plain_gzip_file_and_the_plain_file_must_exist() {
    let dir = site();
    let srv = serve(dir.path(), &["--precompressed"]);
    let r = get(&srv.addr, "/app.js.gz", &["Accept-Encoding: gzip"]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-type"), Some("application/gzip"));
    assert!(r.body == read(dir.path(), "app.js.gz"));
    // lone.txt exists only as lone.txt.gz: the name itself is 404 for every client, the .gz
    // is an ordinary file.
    let r = get(&srv.addr, "/lone.txt", &["Accept-Encoding: gzip"]);
    assert_eq!(r.status, 404);
    let r = get(&srv.addr, "/lone.txt.gz", &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn listings_fold_the_variants_into_their_file() {
    let dir = site();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let with = serve(dir.path(), &["--precompressed"]);
    let page = String::from_utf8(get(&with.addr, "/", &[]).body).unwrap();
    assert!(
        page.contains("also br, zstd, gzip)"),
        "app.js says which variants it has:\n{page}"
    );
    for hidden in ["app.js.gz", "app.js.br", "app.js.zst"] {
        assert!(!page.contains(hidden), "{hidden} is listed:\n{page}");
    }
    assert!(page.contains("href=\"lone.txt.gz\""), "{page}");
    assert!(page.contains("href=\"plain.txt\""), "{page}");
    let without = serve(dir.path(), &[]);
    let page = String::from_utf8(get(&without.addr, "/", &[]).body).unwrap();
    assert!(page.contains("href=\"app.js.gz\""), "{page}");
}

/// Chromium offers `gzip, deflate, br, zstd`: it gets the `.br` of the page and of what the
/// page fetches, and decodes both; the page reports the fetched file's SHA-256 and the sizes
/// the Resource Timing API saw on the wire and after decoding.
#[test]
fn chromium_decodes_the_precompressed_page_and_file() {
    let dir = site();
    let page = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>precompressed</title></head>
<body><h1 id="h">decoded page</h1><pre id="result">pending</pre>
<script>
window.addEventListener('load', async () => {
  const res = await fetch('/app.js');
  const bytes = new Uint8Array(await res.arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const hex = Array.from(digest, b => b.toString(16).padStart(2, '0')).join('');
  const t = performance.getEntriesByName(new URL('/app.js', location).href)[0];
  document.getElementById('result').textContent =
    'len=' + bytes.length + ' sha256=' + hex +
    ' encoded=' + t.encodedBodySize + ' decoded=' + t.decodedBodySize;
});
</script></body></html>
"#;
    let index = dir.path().join("index.html");
    std::fs::write(&index, page).unwrap();
    compress("brotli", &["-k"], &index);
    let srv = serve(dir.path(), &["--precompressed"]);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", srv.addr);
    let out = chromium(
        profile.path(),
        &["--virtual-time-budget=10000", "--dump-dom", &url],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let plain = read(dir.path(), "app.js");
    let br = read(dir.path(), "app.js.br");
    let want = format!(
        "len={} sha256={} encoded={} decoded={}",
        plain.len(),
        Sha256::digest(&plain)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        br.len(),
        plain.len()
    );
    assert!(
        dom.contains("decoded page") && dom.contains(&want),
        "want {want:?} in the DOM:\n{dom}\n{}",
        err_text(&out)
    );
    // The page and the file both went out as br (the access log has the byte counts).
    let index_br = read(dir.path(), "index.html.br").len();
    let want = [
        format!("\"GET / HTTP/1.1\" 200 {index_br} "),
        format!("\"GET /app.js HTTP/1.1\" 200 {} ", br.len()),
    ];
    let log = srv.stdout_with(&[&want[0], &want[1]]);
    for line in &want {
        assert!(log.contains(line), "{line} not in:\n{log}");
    }
}
