//! The built-in error pages: one small designed HTML page per status, with the requested
//! path (HTML-escaped) and a link home. `--not-found FILE` replaces the 404 body.

use http::StatusCode;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What we tell a person about each status.
fn message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The server could not understand this request.",
        403 => "You do not have permission to see this page.",
        404 => "There is nothing at this address. It may have moved, or the link may be wrong.",
        405 => "This server only answers GET and HEAD requests.",
        408 => "The request took too long to arrive.",
        413 => "The request carried a body larger than this server accepts.",
        414 => "The address in this request is too long.",
        416 => "The requested byte range lies outside the file.",
        431 => "The request's header fields are too large.",
        _ => "Something went wrong on the server while answering this request.",
    }
}

/// Shared look for the error pages and directory listings.
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:42rem;margin:4rem auto;\
padding:0 1rem;color:#222;background:#fafafa}h1{font-size:2rem;margin-bottom:.2rem}\
.code{color:#b33;font-size:4rem;font-weight:700;margin:0}code{background:#eee;padding:.1rem .3rem;\
border-radius:3px;word-break:break-all}a{color:#0645ad}footer{margin-top:3rem;color:#888;\
font-size:.85rem}ul{list-style:none;padding:0}li{padding:.15rem 0}";

/// The HTML page for `status`, naming `path` (the request target as sent, or empty).
pub fn page(status: StatusCode, path: &str) -> String {
    page_saying(status, message(status), path)
}

/// [`page`] with another message.
pub fn page_saying(status: StatusCode, message: &str, path: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = status.as_str();
    let shown = if path.is_empty() {
        String::new()
    } else {
        format!("<p>Requested: <code>{}</code></p>\n", escape(path))
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{code} {reason}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <p class=\"code\">{code}</p>\n<h1>{reason}</h1>\n<p>{}</p>\n{shown}\
         <p><a href=\"/\">Go to the home page</a></p>\n<footer>socklab</footer>\n</body>\n</html>\n",
        message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_escaped() {
        let html = page(StatusCode::NOT_FOUND, "/<script>alert('x')</script>&");
        assert!(html.contains("<title>404 Not Found</title>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("<a href=\"/\">"));
    }
}
