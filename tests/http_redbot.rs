//! REDbot (<https://redbot.org>, the PyPI package `redbot`), Mark Nottingham's HTTP resource
//! linter, against `socklab http serve`. For each resource it makes the request, then its own
//! follow-ups (a conditional request with the ETag and with the date, a range of the body, the
//! same request with `Accept-Encoding: gzip`), and files notes at four levels: GOOD, INFO, WARN
//! and BAD. Every answer here must have no BAD and no WARN note.
//!
//! What it found, and what changed (issue 15): every file and listing drew
//! `FRESHNESS_HEURISTIC` (no Cache-Control, so caches guess a lifetime from Last-Modified and
//! may show an edited file stale); files now say `Cache-Control: no-cache` (or `--max-age`),
//! listings `no-store`.

use crate::support::*;

/// A site: a page, a stylesheet, a binary, a directory to list.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("index.html"),
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>socklab</title>\
         <link rel=\"stylesheet\" href=\"style.css\"></head><body><h1>REDbot</h1></body></html>\n",
    )
    .unwrap();
    let mut css = String::new();
    for i in 0..40 {
        css.push_str(&format!(
            ".c{i} {{ color: rgb({i}, 2, 3); margin: {i}px; }}\n"
        ));
    }
    std::fs::write(root.join("style.css"), &css).unwrap();
    std::fs::write(root.join("tiny.css"), "h1 { color: red; }\n").unwrap();
    std::fs::write(root.join("blob.bin"), noise(200_000, 9)).unwrap();
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/a.txt"), "a\n").unwrap();
    dir
}

/// Asserts REDbot's report on `path` (with `headers`) has the status and no WARN or BAD note.
#[track_caller]
fn clean(addr: &str, path: &str, headers: &[&str], status: u16) -> RedbotReport {
    let report = redbot(&format!("http://{addr}{path}"), headers);
    assert_eq!(
        (report.status, &report.error),
        (Some(status), &None),
        "{path} {headers:?}: {report:#?}"
    );
    let problems: Vec<_> = report
        .notes
        .iter()
        .filter(|n| n.level == "BAD" || n.level == "WARN")
        .collect();
    assert!(problems.is_empty(), "{path} {headers:?}: {problems:#?}");
    report
}

fn has(report: &RedbotReport, id: &str) -> bool {
    report.notes.iter().any(|n| n.id == id)
}

#[test]
fn redbot_finds_no_problem_with_files_ranges_listings_and_404() {
    let dir = site();
    let srv = Server::start(&["http", "serve", dir.path().to_str().unwrap(), "-p", "0"]);
    let a = &srv.addr;
    // `/` is index.html. REDbot's follow-ups succeeded: 304 both ways, a correct range.
    for path in ["/", "/style.css", "/blob.bin"] {
        let r = clean(a, path, &[], 200);
        for good in ["INM_304", "IMS_304", "RANGE_CORRECT", "FRESHNESS_NO_CACHE"] {
            assert!(has(&r, good), "{path}: no {good}: {r:#?}");
        }
    }
    clean(a, "/blob.bin", &["Range: bytes=100-199"], 206);
    clean(a, "/blob.bin", &["Range: bytes=-500"], 206);
    clean(a, "/dir/", &[], 200);
    let r = clean(a, "/missing.html", &[], 404);
    assert!(has(&r, "STATUS_NOT_FOUND"), "{r:#?}");
}

/// A file of 96 bytes or fewer draws one warning, RANGE_CL_FULL, that we keep: REDbot asks for
/// `bytes=0-N` where N is the file's length (one byte past its end; its own sample is N+1
/// bytes), so the range covers the whole file and our 206 rightly has the full length. Sending
/// 200 instead (RFC 9110 §14.2 would allow it) would break clients that send `Range: bytes=0-`
/// and expect 206 with Content-Range to learn that ranges work.
#[test]
fn redbot_warns_only_of_its_own_whole_file_range_on_a_tiny_file() {
    let dir = site();
    let srv = Server::start(&["http", "serve", dir.path().to_str().unwrap(), "-p", "0"]);
    let r = redbot(&format!("http://{}/tiny.css", srv.addr), &[]);
    assert_eq!(r.status, Some(200));
    assert!(r.at("BAD").is_empty(), "{r:#?}");
    let warned: Vec<&str> = r.at("WARN").iter().map(|n| n.id.as_str()).collect();
    assert!(
        warned.is_empty() || warned == ["RANGE_CL_FULL"],
        "only REDbot's whole-file range may warn: {r:#?}"
    );
}

/// With `--precompressed`, REDbot's gzip follow-up gets the stored .gz: it checks the decoded
/// body equals the plain one, that Vary names Accept-Encoding on both, that the ETag differs
/// and that Content-Type is the same.
#[test]
fn redbot_finds_no_problem_with_precompressed_variants() {
    let dir = site();
    for name in ["style.css", "index.html"] {
        let path = dir.path().join(name);
        require("gzip");
        let mut cmd = std::process::Command::new("gzip");
        cmd.arg("-k").arg(&path);
        ok(&run_with(cmd, b"", std::time::Duration::from_secs(30)));
    }
    let srv = Server::start(&[
        "http",
        "serve",
        dir.path().to_str().unwrap(),
        "-p",
        "0",
        "--precompressed",
    ]);
    let a = &srv.addr;
    for path in ["/", "/style.css"] {
        let r = clean(a, path, &[], 200);
        assert!(has(&r, "CONNEG_GZIP_GOOD"), "{path}: {r:#?}");
    }
    // A file without variants: plain, with Vary all the same.
    clean(a, "/blob.bin", &[], 200);
    clean(a, "/style.css", &["Accept-Encoding: gzip"], 200);
    // A range of the encoded bytes from the start. One from the middle (`bytes=10-99`) draws
    // BAD_GZIP: REDbot decodes a 206's body as if it were a whole gzip stream, and ninety bytes
    // from the middle of one have no gzip header. The range is right (RFC 9110 §8.4, §14: the
    // content coding is part of the representation, whose bytes a range counts); that note is
    // REDbot's.
    clean(
        a,
        "/style.css",
        &["Accept-Encoding: gzip", "Range: bytes=0-99"],
        206,
    );
    clean(a, "/missing.css", &["Accept-Encoding: gzip"], 404);
}
