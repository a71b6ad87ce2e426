//! Real browsers against `socklab http serve`: headless Chromium (the page, its image and
//! stylesheet render; the 404 status reaches the browser) and Firefox ESR (screenshots).
//! Screenshots are kept under target/browser/ as CI artifacts (not committed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const INDEX: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>socklab browser test</title>
<link rel="stylesheet" href="style.css"></head>
<body><h1 id="h">It works</h1><img id="img" src="pixel.png" alt="pixel">
<iframe id="frame" src="/missing-page.html"></iframe>
<pre id="result">pending</pre>
<script>
window.addEventListener('load', async () => {
  const img = document.getElementById('img');
  const color = getComputedStyle(document.getElementById('h')).color;
  const frame = document.getElementById('frame');
  const nav = frame.contentWindow.performance.getEntriesByType('navigation')[0];
  const fetched = await fetch('/also-missing');
  const body = await fetched.text();
  document.getElementById('result').textContent =
    'img=' + img.naturalWidth + 'x' + img.naturalHeight +
    ' css=' + color +
    ' iframe_status=' + (nav ? nav.responseStatus : 'none') +
    ' iframe_title=' + frame.contentDocument.title.replace(/ /g, '_') +
    ' fetch_status=' + fetched.status +
    ' fetch_html=' + body.includes('</html>');
});
</script></body></html>
"#;

/// A 2x1 PNG (red, blue), built with zlib and struct as any encoder would.
const PY_PNG: &str = r#"
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
raw = b'\x00' + bytes([255, 0, 0, 0, 0, 255])
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 2, 1, 8, 2, 0, 0, 0)) \
    + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
open(sys.argv[1], 'wb').write(png)
"#;

fn docroot() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), INDEX).unwrap();
    std::fs::write(
        dir.path().join("style.css"),
        "h1 { color: rgb(1, 2, 3); }\n",
    )
    .unwrap();
    let png = dir.path().join("pixel.png");
    ok(&python(PY_PNG, &[png.to_str().unwrap()], b""));
    dir
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path)
        .map(|b| b.len() > 1000 && b.starts_with(b"\x89PNG"))
        .unwrap_or(false)
}

#[test]
fn chromium_renders_the_page_and_sees_the_404() {
    let root = docroot();
    let srv = Server::start(&["http", "serve", root.path().to_str().unwrap(), "-p", "0"]);
    let base = format!("http://{}", srv.addr);
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(
        profile.path(),
        &[
            "--virtual-time-budget=10000",
            "--dump-dom",
            &format!("{base}/"),
        ],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("img=2x1 css=rgb(1, 2, 3) iframe_status=404"),
        "the page, its image and stylesheet must load, and the iframe must get a 404:\n{dom}\n{}",
        err_text(&out)
    );
    assert!(dom.contains("fetch_status=404 fetch_html=true"), "{dom}");
    // The 404 page is a designed page with a title.
    assert!(
        dom.contains("iframe_title=") && !dom.contains("iframe_title= "),
        "{dom}"
    );
    let shots = artifacts();
    for (name, path) in [
        ("chromium-index.png", "/"),
        ("chromium-404.png", "/missing-page.html"),
    ] {
        let file = shots.join(name);
        let _ = std::fs::remove_file(&file);
        chromium(
            profile.path(),
            &[
                &format!("--screenshot={}", file.display()),
                &format!("{base}{path}"),
            ],
        );
        assert!(is_png(&file), "no screenshot {}", file.display());
    }
    let log = srv.stdout_with(&[
        "\"GET /missing-page.html HTTP/1.1\" 404",
        "\"GET /pixel.png HTTP/1.1\" 200",
    ]);
    assert!(
        log.contains("\"GET /missing-page.html HTTP/1.1\" 404"),
        "access log:\n{log}"
    );
    assert!(
        log.contains("\"GET /pixel.png HTTP/1.1\" 200"),
        "access log:\n{log}"
    );
}

#[test]
fn firefox_screenshots_the_page_and_the_404() {
    require("firefox-esr");
    let root = docroot();
    let srv = Server::start(&["http", "serve", root.path().to_str().unwrap(), "-p", "0"]);
    let home = tempfile::tempdir().unwrap();
    let shots = artifacts();
    for (name, path) in [
        ("firefox-index.png", "/"),
        ("firefox-404.png", "/missing-page.html"),
    ] {
        let file = shots.join(name);
        let _ = std::fs::remove_file(&file);
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("firefox-esr");
        cmd.env("HOME", home.path())
            .env("MOZ_HEADLESS", "1")
            .args([
                "--headless",
                "--no-remote",
                "--window-size",
                "800,600",
                "--profile",
            ])
            .arg(profile.path())
            .arg("--screenshot")
            .arg(&file)
            .arg(format!("http://{}{path}", srv.addr));
        let out = run_with(cmd, b"", Duration::from_secs(90));
        assert!(
            is_png(&file),
            "firefox made no screenshot {}: {}",
            file.display(),
            err_text(&out)
        );
    }
    let log = srv.stdout_with(&["\"GET /missing-page.html HTTP/1.1\" 404"]);
    assert!(
        log.contains("\"GET /missing-page.html HTTP/1.1\" 404"),
        "access log:\n{log}"
    );
}
