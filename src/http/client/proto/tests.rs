use std::io::Write;
use std::time::UNIX_EPOCH;

use proptest::prelude::*;

use super::*;

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn head(wire: &[u8]) -> ResponseHead {
    match parse_response(wire) {
        Ok(Status::Complete((h, _))) => h,
        other => panic!("{other:?}"),
    }
}

fn spec<'a>(method: &'a Method, u: &'a Url, extra: &'a [(String, String)]) -> RequestSpec<'a> {
    RequestSpec {
        method,
        url: u,
        absolute_form: false,
        user_agent: "socklab/test",
        compressed: false,
        range_from: None,
        authorization: None,
        proxy_authorization: None,
        body: None,
        extra,
    }
}

#[test]
fn test_emit_origin_form_request() {
    let u = url("http://user:pw@127.0.0.1:8080/a%20b/c.txt?x=1#frag");
    let got = spec(&Method::GET, &u, &[]).head().encode();
    assert_eq!(
        got,
        b"GET /a%20b/c.txt?x=1 HTTP/1.1\r\n\
          Host: 127.0.0.1:8080\r\n\
          User-Agent: socklab/test\r\n\
          Accept: */*\r\n\
          Connection: close\r\n\r\n"
    );
}

#[test]
fn test_emit_absolute_form_with_everything() {
    let u = url("http://user:pw@example.test/x?q#f");
    let extra = vec![
        ("X-Test".to_string(), "1".to_string()),
        ("accept".to_string(), "text/plain".to_string()),
        ("User-Agent".to_string(), String::new()),
    ];
    let mut s = spec(&Method::POST, &u, &extra);
    s.absolute_form = true;
    s.compressed = true;
    s.range_from = Some(100);
    s.authorization = Some("Basic dTpw");
    s.proxy_authorization = Some("Basic cDpx");
    s.body = Some(BodyInfo {
        len: 3,
        content_type: "application/x-www-form-urlencoded",
    });
    assert_eq!(
        String::from_utf8(s.head().encode()).unwrap(),
        "POST http://example.test/x?q HTTP/1.1\r\n\
         Host: example.test\r\n\
         accept: text/plain\r\n\
         Accept-Encoding: gzip, deflate\r\n\
         Range: bytes=100-\r\n\
         Authorization: Basic dTpw\r\n\
         Proxy-Authorization: Basic cDpx\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 3\r\n\
         Connection: close\r\n\
         X-Test: 1\r\n\r\n"
    );
}

#[test]
fn proxy_authorization_is_not_sent_to_the_origin() {
    let u = url("https://example.test/");
    let mut s = spec(&Method::GET, &u, &[]);
    s.proxy_authorization = Some("Basic x");
    assert_eq!(s.head().get("proxy-authorization"), None);
}

#[test]
fn test_emit_connect() {
    let got = connect_head(&url("https://[::1]:8443/x"), "ua", Some("Basic eA==")).encode();
    assert_eq!(
        got,
        b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\nUser-Agent: ua\r\n\
          Proxy-Authorization: Basic eA==\r\n\r\n"
    );
    assert_eq!(authority(&url("https://example.test/")), "example.test:443");
    assert_eq!(host_header(&url("http://[::1]/")), "[::1]");
    assert_eq!(host_header(&url("http://h:80/")), "h");
}

#[test]
fn header_args() {
    assert_eq!(
        parse_header_arg("X-A:  b c "),
        Ok(("X-A".to_string(), "b c".to_string()))
    );
    assert!(parse_header_arg("no colon").is_err());
    assert!(parse_header_arg("Bad Name: x").is_err());
    assert!(parse_header_arg("Content-Length: 5").is_err());
    assert!(parse_header_arg("transfer-encoding: chunked").is_err());
    assert_eq!(
        parse_header_arg("Accept:"),
        Ok(("Accept".to_string(), String::new()))
    );
}

#[test]
fn basic_credentials() {
    // RFC 7617 §2's example.
    assert_eq!(
        basic_auth("Aladdin", "open sesame"),
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    assert_eq!(
        url_credentials(&url("http://a%40b:p%3Aw@h/")),
        Some(("a@b".to_string(), "p:w".to_string()))
    );
    assert_eq!(url_credentials(&url("http://h/")), None);
}

#[test]
fn test_parse_response_head() {
    let wire = b"HTTP/1.0 404 Not Here\r\nContent-Length: 3\r\nX: a\r\nX: b\r\n\r\nabc";
    let Ok(Status::Complete((h, used))) = parse_response(wire) else {
        panic!()
    };
    assert_eq!(used, wire.len() - 3);
    assert_eq!(h.minor, 0);
    assert_eq!(h.status, StatusCode::NOT_FOUND);
    assert_eq!(h.reason, "Not Here");
    assert_eq!(h.status_line(), "404 Not Here");
    assert_eq!(h.headers.get_all("x").iter().count(), 2);
    for cut in 0..used {
        assert_eq!(parse_response(&wire[..cut]), Ok(Status::Partial), "{cut}");
    }
}

#[test]
fn response_head_limits() {
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    while big.len() < MAX_RESPONSE_HEAD {
        big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    // Too many fields is found first here; a head of few long fields hits the size limit.
    assert!(parse_response(&big).is_err());
    let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    long.resize(MAX_RESPONSE_HEAD + 10, b'a');
    assert_eq!(
        parse_response(&long),
        Err(HeadError::TooLarge {
            max: MAX_RESPONSE_HEAD
        })
    );
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..=MAX_HEADERS {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(
        parse_response(many.as_bytes()),
        Err(HeadError::TooManyHeaders { max: MAX_HEADERS })
    );
    assert!(matches!(
        parse_response(b"HTTP/1.1 2000 OK\r\n\r\n"),
        Err(HeadError::Malformed(_))
    ));
    assert!(matches!(
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"),
        Err(HeadError::Malformed(_))
    ));
}

#[test]
fn framing_follows_rfc_9112_6_3() {
    let get = Method::GET;
    let f = |wire: &str| framing(&get, &head(wire.as_bytes()));
    assert_eq!(
        f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        Ok(Framing::Length(5))
    );
    assert_eq!(
        f("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
        Ok(Framing::Length(5))
    );
    assert_eq!(
        f("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 5\r\n\r\n"),
        Ok(Framing::Chunked)
    );
    assert_eq!(f("HTTP/1.0 200 OK\r\n\r\n"), Ok(Framing::UntilClose));
    assert_eq!(f("HTTP/1.1 204 No Content\r\n\r\n"), Ok(Framing::None));
    assert_eq!(
        f("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
        Ok(Framing::None)
    );
    assert_eq!(
        framing(
            &Method::HEAD,
            &head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
        ),
        Ok(Framing::None)
    );
    assert!(f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").is_err());
    assert!(f("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
    assert!(f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").is_err());
}

/// Decodes `wire` fed in reads of `read` bytes, as the driver does (unconsumed bytes stay
/// buffered), then ends the stream. Returns the payload and the outcome.
fn decode_all(framing: Framing, wire: &[u8], read: usize) -> (Vec<u8>, Result<usize, BodyError>) {
    let mut dec = BodyDecoder::new(framing);
    let mut buf: Vec<u8> = Vec::new();
    let mut body = Vec::new();
    let mut consumed = 0;
    for piece in wire.chunks(read.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&buf) {
                Ok((0, _)) => break,
                Ok((used, data)) => {
                    body.extend_from_slice(data);
                    buf.drain(..used);
                    consumed += used;
                }
                Err(e) => return (body, Err(e)),
            }
        }
        if dec.is_done() {
            return (body, Ok(consumed));
        }
    }
    match dec.finish() {
        Ok(()) => (body, Ok(consumed)),
        Err(e) => (body, Err(e)),
    }
}

#[test]
fn test_parse_chunked_with_trailers_in_any_reads() {
    let wire = b"5;ext=1\r\nhello\r\n0A\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT";
    for read in 1..=wire.len() {
        let (body, res) = decode_all(Framing::Chunked, wire, read);
        assert_eq!(body, b"hello0123456789", "read {read}");
        assert_eq!(res, Ok(wire.len() - 4), "read {read}");
    }
    let mut dec = BodyDecoder::new(Framing::Chunked);
    let mut rest = &wire[..];
    while !dec.is_done() {
        let (used, _) = dec.decode(rest).unwrap();
        rest = &rest[used..];
    }
    assert_eq!(dec.trailers(), b"X-Sum: 1\r\nX-B: 2\r\n");
    assert_eq!(dec.received(), 15);
}

#[test]
fn chunked_errors() {
    let bad = |wire: &[u8]| decode_all(Framing::Chunked, wire, 1000).1;
    assert_eq!(
        bad(b"2\r\nabc\r\n0\r\n\r\n"),
        Err(BodyError::BadChunk("chunk data longer than its size"))
    );
    assert_eq!(
        bad(b"zz\r\n"),
        Err(BodyError::BadChunk("bad chunk-size line"))
    );
    assert_eq!(
        bad(b"3\r\nabc\r\n"),
        Err(BodyError::ChunkedEnded { got: 3 })
    );
    let long = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
    assert_eq!(
        bad(long.as_bytes()),
        Err(BodyError::BadChunk("chunk-size line too long"))
    );
    let huge_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILERS));
    assert_eq!(
        bad(huge_trailer.as_bytes()),
        Err(BodyError::BadChunk("trailer section too long"))
    );
    // A size that does not fit in 64 bits.
    assert!(bad(b"1ffffffffffffffff\r\n").is_err());
}

#[test]
fn fixed_and_until_close() {
    assert_eq!(
        decode_all(Framing::Length(3), b"abcdef", 2),
        (b"abc".to_vec(), Ok(3))
    );
    assert_eq!(
        decode_all(Framing::Length(10), b"abcd", 3),
        (b"abcd".to_vec(), Err(BodyError::Short { got: 4, want: 10 }))
    );
    assert_eq!(
        BodyError::Short { got: 4, want: 10 }.to_string(),
        "body ended after 4 of 10 bytes"
    );
    assert_eq!(
        decode_all(Framing::UntilClose, b"all of it", 4),
        (b"all of it".to_vec(), Ok(9))
    );
    assert_eq!(decode_all(Framing::None, b"xyz", 1), (vec![], Ok(0)));
    assert_eq!(decode_all(Framing::Length(0), b"", 1), (vec![], Ok(0)));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn inflate_all(coding: Coding, wire: &[u8], piece: usize) -> Result<Vec<u8>, String> {
    let mut d = Decompressor::new(&coding).unwrap();
    let mut out = Vec::new();
    for p in wire.chunks(piece) {
        out.extend_from_slice(d.push(p).map_err(|e| e.to_string())?);
    }
    out.extend_from_slice(d.finish().map_err(|e| e.to_string())?);
    Ok(out)
}

#[test]
fn gzip_and_deflate_decode_in_pieces() {
    let text: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let gz = gzip(&text);
    for piece in [1, 7, 1024] {
        assert_eq!(inflate_all(Coding::Gzip, &gz, piece).unwrap(), text);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&text).unwrap();
    let zlib = z.finish().unwrap();
    assert_eq!(inflate_all(Coding::Deflate, &zlib, 1).unwrap(), text);
    let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    r.write_all(&text).unwrap();
    let raw = r.finish().unwrap();
    assert_eq!(inflate_all(Coding::Deflate, &raw, 5).unwrap(), text);
    // Truncated and corrupt streams are errors, not short files.
    assert!(inflate_all(Coding::Gzip, &gz[..gz.len() / 2], 100).is_err());
    assert!(inflate_all(Coding::Gzip, b"not gzip at all", 100).is_err());
    assert!(Decompressor::new(&Coding::Identity).is_none());
    assert_eq!(
        content_coding(&head(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: X-GZIP\r\n\r\n"
        )),
        Coding::Gzip
    );
    assert_eq!(
        content_coding(&head(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n")),
        Coding::Other("br".into())
    );
}

fn loc(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap()
}

#[test]
fn redirect_method_rules() {
    let cur = url("http://h:8080/a/b?x#f");
    let hop = |code: u16, m: Method| {
        next_hop(
            StatusCode::from_u16(code).unwrap(),
            &m,
            &cur,
            Some(&loc("../c?y#z")),
        )
        .unwrap()
    };
    let h = hop(301, Method::POST);
    assert_eq!(h.url.as_str(), "http://h:8080/c?y");
    assert_eq!((h.method, h.keep_body), (Method::GET, false));
    assert_eq!(hop(302, Method::PUT).method, Method::PUT);
    assert!(!hop(302, Method::PUT).keep_body);
    assert_eq!(hop(303, Method::POST).method, Method::GET);
    assert_eq!(hop(303, Method::HEAD).method, Method::HEAD);
    let h = hop(307, Method::POST);
    assert_eq!((h.method, h.keep_body), (Method::POST, true));
    assert_eq!(hop(308, Method::PUT).method, Method::PUT);
    assert!(hop(308, Method::GET).keep_credentials);
}

#[test]
fn redirect_credentials_and_bad_locations() {
    let cur = url("http://h/a");
    let to = |l: &str| next_hop(StatusCode::FOUND, &Method::GET, &cur, Some(&loc(l)));
    assert!(!to("http://other/").unwrap().keep_credentials);
    assert!(!to("https://h/").unwrap().keep_credentials);
    assert!(!to("http://h:81/").unwrap().keep_credentials);
    assert!(to("http://h:80/x").unwrap().keep_credentials);
    assert!(matches!(
        to("ftp://h/file"),
        Err(RedirectError::Scheme { .. })
    ));
    assert!(matches!(
        next_hop(StatusCode::FOUND, &Method::GET, &cur, None),
        Err(RedirectError::BadLocation { .. })
    ));
    assert!(matches!(
        to("http://[::1"),
        Err(RedirectError::BadLocation { .. })
    ));
}

#[test]
fn chain_detects_loops_and_counts_hops() {
    let a = url("http://h/a");
    let b = url("http://h/b");
    let mut chain = Chain::new(&a, 20);
    chain.push(&b).unwrap();
    let err = chain.push(&a).unwrap_err();
    assert_eq!(
        err.to_string(),
        "redirect loop: http://h/a -> http://h/b -> http://h/a"
    );
    let mut chain = Chain::new(&a, 2);
    chain.push(&url("http://h/1")).unwrap();
    chain.push(&url("http://h/2")).unwrap();
    assert!(matches!(
        chain.push(&url("http://h/3")),
        Err(RedirectError::TooMany { max: 2, .. })
    ));
    let mut none = Chain::new(&a, 0);
    assert!(none.push(&b).is_err());
}

#[test]
fn no_proxy_lists() {
    let np = NoProxy::parse(
        "localhost, .example.com,internal.test:8080 10.0.0.0/8,::1,[fe80::/10],192.168.1.7,[2001:db8::1]:443",
    );
    let m = |u: &str| np.matches(&url(u));
    assert!(m("http://localhost/"));
    assert!(m("http://LOCALHOST:9/"));
    assert!(m("http://example.com/"));
    assert!(m("http://a.b.example.com/"));
    assert!(!m("http://badexample.com/"));
    assert!(m("http://internal.test:8080/"));
    assert!(!m("http://internal.test/"));
    assert!(m("http://10.1.2.3/"));
    assert!(!m("http://11.1.2.3/"));
    assert!(m("http://[::1]:8080/"));
    assert!(m("http://[fe80::1]/"));
    assert!(m("http://192.168.1.7/"));
    assert!(!m("http://192.168.1.8/"));
    assert!(m("https://[2001:db8::1]/"));
    assert!(!m("http://[2001:db8::1]/"));
    assert!(NoProxy::parse("*").matches(&url("http://anything/")));
    assert!(!NoProxy::parse("").matches(&url("http://anything/")));
    assert!(NoProxy::parse("example.com").matches(&url("http://www.example.com/")));
}

#[test]
fn proxy_choice() {
    let env = ProxyEnv {
        http: Some("127.0.0.1:3128".into()),
        https: Some("http://127.0.0.1:3129".into()),
        no_proxy: Some("internal".into()),
    };
    let p = |u: &str, x: Option<&Url>, e: Option<&ProxyEnv>| {
        choose_proxy(&url(u), x, e).unwrap().map(|u| u.to_string())
    };
    assert_eq!(
        p("http://a/", None, Some(&env)).as_deref(),
        Some("http://127.0.0.1:3128/")
    );
    assert_eq!(
        p("https://a/", None, Some(&env)).as_deref(),
        Some("http://127.0.0.1:3129/")
    );
    assert_eq!(p("http://internal/", None, Some(&env)), None);
    assert_eq!(p("http://a/", None, None), None);
    let x = url("http://px:1/");
    assert_eq!(
        p("http://internal/", Some(&x), Some(&env)).as_deref(),
        Some("http://px:1/")
    );
    assert!(parse_proxy("https://p:1").is_err());
    assert!(parse_proxy("socks5://p:1").is_err());
}

#[test]
fn resume_checks() {
    let cr = |s: &str| HeaderValue::from_str(s).unwrap();
    assert_eq!(
        check_resume(
            StatusCode::PARTIAL_CONTENT,
            Some(&cr("bytes 100-199/200")),
            100
        ),
        Resume::Append { total: Some(200) }
    );
    assert_eq!(
        check_resume(
            StatusCode::PARTIAL_CONTENT,
            Some(&cr("bytes 100-199/*")),
            100
        ),
        Resume::Append { total: None }
    );
    assert!(matches!(
        check_resume(
            StatusCode::PARTIAL_CONTENT,
            Some(&cr("bytes 0-199/200")),
            100
        ),
        Resume::Restart(_)
    ));
    assert!(matches!(
        check_resume(StatusCode::PARTIAL_CONTENT, None, 100),
        Resume::Restart(_)
    ));
    assert_eq!(
        check_resume(StatusCode::OK, None, 100),
        Resume::Restart("server ignored the range; starting over".into())
    );
    assert_eq!(
        check_resume(
            StatusCode::RANGE_NOT_SATISFIABLE,
            Some(&cr("bytes */100")),
            100
        ),
        Resume::Complete
    );
    assert!(matches!(
        check_resume(
            StatusCode::RANGE_NOT_SATISFIABLE,
            Some(&cr("bytes */90")),
            100
        ),
        Resume::Restart(_)
    ));
    assert_eq!(
        check_resume(StatusCode::NOT_FOUND, None, 100),
        Resume::NotRange
    );
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

#[test]
fn token_bucket_paces() {
    let t0 = crate::net::clock::now();
    let mut b = TokenBucket::new(1000, 500);
    assert_eq!(b.take(t0, 500), Duration::ZERO);
    assert_eq!(b.take(t0, 500), Duration::from_millis(500));
    // Half a second later the debt is paid; another 100 bytes need 0.1 s.
    let w = b.take(t0 + Duration::from_millis(500), 100);
    assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
    // Idle time refills at most `burst`.
    assert_eq!(b.take(t0 + Duration::from_secs(100), 500), Duration::ZERO);
    assert!(b.take(t0 + Duration::from_secs(100), 1) > Duration::ZERO);
}

#[test]
fn test_emit_log_blocks_and_lines() {
    let at = UNIX_EPOCH + Duration::from_micros(1_795_255_200_123_456);
    assert_eq!(
        log_block(
            at,
            LogDir::Request,
            "127.0.0.1:8080",
            false,
            b"GET / HTTP/1.1\r\n\r\n"
        ),
        b"--- 2026-11-21T10:00:00.123456Z request to 127.0.0.1:8080\nGET / HTTP/1.1\r\n\r\n"
    );
    assert!(
        log_block(at, LogDir::Response, "127.0.0.1:3128", true, b"")
            .starts_with(b"--- 2026-11-21T10:00:00.123456Z response from proxy 127.0.0.1:3128\n")
    );
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(12 * 1024 * 1024 + 1), "12.0 MiB");
    assert_eq!(
        progress_line("f", 12 << 20, Some(64 << 20), 40.2 * 1048576.0),
        "f: 12.0 MiB of 64.0 MiB (18%), 40.2 MiB/s"
    );
    assert_eq!(progress_line("f", 2048, None, 0.0), "f: 2.0 KiB, 0 B/s");
    assert_eq!(
        summary_line("index.html", 1234, 1234, Duration::from_millis(10)),
        "saved 'index.html': 1234 bytes in 0.01 s (0.1 MB/s)"
    );
}

fn chunked_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
        proptest::collection::vec("[A-Za-z]{1,8}: [ -~]{0,10}", 0..3),
        any::<bool>(),
    )
        .prop_map(|(chunks, trailers, ext)| {
            let mut wire = Vec::new();
            let mut body = Vec::new();
            for c in chunks {
                if ext {
                    wire.extend_from_slice(format!("{:X};a=b\r\n", c.len()).as_bytes());
                } else {
                    wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                }
                wire.extend_from_slice(&c);
                wire.extend_from_slice(b"\r\n");
                body.extend_from_slice(&c);
            }
            wire.extend_from_slice(b"0\r\n");
            for t in trailers {
                wire.extend_from_slice(t.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"\r\n");
            (wire, body)
        })
}

proptest! {
    #[test]
    fn chunked_bodies_decode_the_same_in_any_reads((wire, body) in chunked_strategy(), read in 1usize..50) {
        let whole = decode_all(Framing::Chunked, &wire, wire.len().max(1));
        prop_assert_eq!(&whole.0, &body);
        prop_assert_eq!(whole.1.clone(), Ok(wire.len()));
        prop_assert_eq!(decode_all(Framing::Chunked, &wire, read), whole);
    }

    #[test]
    fn any_bytes_decode_the_same_in_any_reads(
        wire in proptest::collection::vec(prop_oneof![
            Just(b'0'), Just(b'1'), Just(b'a'), Just(b'\r'), Just(b'\n'), Just(b';'), Just(b'x'), any::<u8>()
        ], 0..200),
        read in 1usize..20,
        len in 0u64..100,
    ) {
        for framing in [Framing::Chunked, Framing::Length(len), Framing::UntilClose] {
            let whole = decode_all(framing, &wire, wire.len().max(1));
            prop_assert_eq!(decode_all(framing, &wire, read), whole);
        }
        let _ = parse_response(&wire);
    }

    #[test]
    fn split_response_heads_parse_the_same(
        fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..6),
        code in 100u16..600,
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut wire = format!("HTTP/1.1 {code} Whatever\r\n");
        for (n, v) in &fields {
            wire.push_str(&format!("{n}: {}\r\n", v.trim()));
        }
        wire.push_str("\r\nBODY");
        let full = parse_response(wire.as_bytes());
        let Ok(Status::Complete((h, used))) = full else { panic!("{full:?}") };
        prop_assert_eq!(h.status.as_u16(), code);
        prop_assert_eq!(&wire[used..], "BODY");
        let c = cut.index(used);
        prop_assert_eq!(parse_response(&wire.as_bytes()[..c]), Ok(Status::Partial));
    }
}
