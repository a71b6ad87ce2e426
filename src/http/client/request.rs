//! The request head `http get` sends: the target in origin form (or absolute form for a
//! proxy, or a CONNECT tunnel's authority), the default fields and the `-H` ones, credentials.
//! Sans-IO; the bytes come from [`RequestHead::encode`](crate::http::h1::RequestHead::encode).

use std::str::FromStr;

use base64::Engine as _;
use http::{HeaderName, HeaderValue, Method};
use url::{Position, Url};

use crate::http::h1::RequestHead;

/// A request body's length and the `Content-Type` we send with it unless `-H` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyInfo<'a> {
    /// Its length (sent as `Content-Length`).
    pub len: u64,
    /// The default content type.
    pub content_type: &'a str,
}

/// Everything that goes into one request head.
#[derive(Debug, Clone)]
pub struct RequestSpec<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URL (userinfo and fragment are never sent).
    pub url: &'a Url,
    /// Absolute-form target, for a plain-HTTP proxy.
    pub absolute_form: bool,
    /// `User-Agent`.
    pub user_agent: &'a str,
    /// Send `Accept-Encoding: gzip, deflate`.
    pub compressed: bool,
    /// Send `Range: bytes=N-`.
    pub range_from: Option<u64>,
    /// `Authorization` value.
    pub authorization: Option<&'a str>,
    /// `Proxy-Authorization` value (absolute-form only; a tunnel sends it on the CONNECT).
    pub proxy_authorization: Option<&'a str>,
    /// The request body, if any.
    pub body: Option<BodyInfo<'a>>,
    /// `-H` fields: one with the name of a default replaces it in place; an empty value
    /// removes it; the others follow the defaults.
    pub extra: &'a [(String, String)],
}

impl RequestSpec<'_> {
    /// Builds the head.
    pub fn head(&self) -> RequestHead {
        let target = if self.absolute_form {
            absolute_target(self.url)
        } else {
            origin_target(self.url)
        };
        let mut defaults: Vec<(&str, String)> = vec![
            ("Host", host_header(self.url)),
            ("User-Agent", self.user_agent.to_string()),
            ("Accept", "*/*".into()),
        ];
        if self.compressed {
            defaults.push(("Accept-Encoding", "gzip, deflate".into()));
        }
        if let Some(from) = self.range_from {
            defaults.push(("Range", format!("bytes={from}-")));
        }
        if let Some(auth) = self.authorization {
            defaults.push(("Authorization", auth.to_string()));
        }
        if let (true, Some(auth)) = (self.absolute_form, self.proxy_authorization) {
            defaults.push(("Proxy-Authorization", auth.to_string()));
        }
        if let Some(body) = self.body {
            defaults.push(("Content-Type", body.content_type.to_string()));
            defaults.push(("Content-Length", body.len.to_string()));
        }
        defaults.push(("Connection", "close".into()));
        RequestHead {
            method: self.method.clone(),
            target,
            headers: merge_headers(defaults, self.extra),
        }
    }
}

/// Defaults, each replaced in place by a `-H` of the same name; then the other `-H` fields.
/// A `-H` with an empty value removes the field.
fn merge_headers(
    defaults: Vec<(&str, String)>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in defaults {
        match extra.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((n, v)) if !v.is_empty() => out.push((n.clone(), v.clone())),
            Some(_) => {}
            None => out.push((name.to_string(), value)),
        }
    }
    for (name, value) in extra {
        if value.is_empty() || out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    out
}

/// Parses a `-H "Name: value"` argument. `Content-Length` and `Transfer-Encoding` are refused:
/// the body's framing is ours to state.
pub fn parse_header_arg(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("-H {arg:?}: expected \"Name: value\""))?;
    let name = name.trim();
    HeaderName::from_str(name).map_err(|_| format!("-H {arg:?}: {name:?} is not a field name"))?;
    let value = value.trim();
    HeaderValue::from_str(value)
        .map_err(|_| format!("-H {arg:?}: the value has a control character"))?;
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        return Err(format!(
            "-H {name}: socklab frames the body itself; this field cannot be set"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `/path?query` (the fragment is never sent).
pub fn origin_target(url: &Url) -> String {
    let t = &url[Position::BeforePath..Position::AfterQuery];
    if t.is_empty() { "/".into() } else { t.into() }
}

/// `http://host:port/path?query` without userinfo and fragment, for a proxy.
pub fn absolute_target(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    u.to_string()
}

/// The `Host` value: the host, and the port unless it is the scheme's default.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// `host:port` with the port always written (IPv6 in brackets): a CONNECT target.
pub fn authority(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    )
}

/// The CONNECT request that opens a tunnel to `url`'s host through a proxy.
pub fn connect_head(url: &Url, user_agent: &str, proxy_authorization: Option<&str>) -> RequestHead {
    let target = authority(url);
    let mut headers = vec![
        ("Host".to_string(), target.clone()),
        ("User-Agent".to_string(), user_agent.to_string()),
    ];
    if let Some(auth) = proxy_authorization {
        headers.push(("Proxy-Authorization".into(), auth.into()));
    }
    RequestHead {
        method: Method::CONNECT,
        target,
        headers,
    }
}

/// `Basic base64(user:pass)` (RFC 7617).
pub fn basic_auth(user: &str, pass: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {token}")
}

/// `user:pass` from a URL's userinfo, percent-decoded; `None` without a user name.
pub fn url_credentials(url: &Url) -> Option<(String, String)> {
    if url.username().is_empty() {
        return None;
    }
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((dec(url.username()), dec(url.password().unwrap_or(""))))
}

/// True when two URLs share scheme, host and port (credentials may go from one to the other).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
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
}
