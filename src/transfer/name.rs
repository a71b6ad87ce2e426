//! What a received file may be called: the sender's name made safe to save. Sans-IO.
//!
//! The name comes from the peer, so it is an attack surface: `../../etc/passwd`, `/root/.ssh`,
//! `.bashrc`, `CON`, a name of 10,000 bytes, control characters that rewrite the terminal when
//! the name is printed. [`safe_name`] keeps the last path component only, replaces what no file
//! system or terminal should see, refuses hidden and device names, and cuts the length while
//! keeping the extension. [`numbered`] gives `photo (1).png`, `photo (2).png` … so nothing
//! already there is overwritten.

/// The longest name saved, in bytes (most file systems allow 255).
pub const MAX_SAVED: usize = 200;

/// The name used when nothing is left of the sender's.
pub const FALLBACK: &str = "file";

/// Windows' reserved device names: harmless on Linux, but a receiving directory may be shared.
const DEVICES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// The sender's `name` made safe to save in the receiving directory.
pub fn safe_name(name: &str) -> String {
    // The last component, whichever separator the sender's system uses.
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| match c {
            c if c.is_control() => '_',
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            // Bidirectional overrides make `gnp.exe` print as `exe.png`.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => '_',
            c => c,
        })
        .collect();
    // No hidden files, no `.` or `..`, nothing ending in a dot or a space (Windows drops them).
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let mut out = if trimmed.is_empty() {
        FALLBACK.to_string()
    } else {
        trimmed.to_string()
    };
    let stem = out.split('.').next().unwrap_or("");
    if DEVICES.iter().any(|d| d.eq_ignore_ascii_case(stem)) {
        out.insert(0, '_');
    }
    // Cutting may leave a dot or a space at the end: trimmed again.
    let cut = cut(&out, MAX_SAVED);
    match cut.trim_end_matches(['.', ' ']) {
        "" => FALLBACK.to_string(),
        t => t.to_string(),
    }
}

/// `name` cut to at most `max` bytes, keeping its extension (if it has a short one) and never
/// splitting a character.
fn cut(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => name.split_at(i),
        _ => (name, ""),
    };
    let mut end = max - ext.len();
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &stem[..end])
}

/// The `n`th alternative to a name already taken: `photo (n).png` (the number before the
/// extension), still within [`MAX_SAVED`].
pub fn numbered(name: &str, n: u32) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    let tag = format!(" ({n})");
    let room = MAX_SAVED.saturating_sub(tag.len() + ext.len());
    let mut end = stem.len().min(room);
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{tag}{ext}", &stem[..end])
}

/// A peer's text made safe to print on a terminal: unchanged unless it holds control
/// characters (an escape sequence can rewrite the screen or the window title) or bidirectional
/// overrides; those are shown as `\n`, `\r` or `\u{1b}`. Tabs stay.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if bad(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The temporary name a file is written under until it is complete and verified.
pub fn part_name(saved: &str) -> String {
    format!("{saved}.part")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_print_unchanged_unless_they_hold_controls() {
        assert_eq!(printable("héllo\tworld ✓ \\n"), "héllo\tworld ✓ \\n");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(printable("a\nb\r"), "a\\nb\\r");
        assert_eq!(printable("\u{1b}]0;pwned\u{7}"), "\\u{1b}]0;pwned\\u{7}");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn paths_and_tricks_are_reduced_to_a_plain_name() {
        for (given, want) in [
            ("photo.png", "photo.png"),
            ("../../etc/passwd", "passwd"),
            ("/root/.ssh/authorized_keys", "authorized_keys"),
            ("C:\\Users\\ann\\cat.jpg", "cat.jpg"),
            ("..", FALLBACK),
            (".", FALLBACK),
            ("", FALLBACK),
            ("dir/", FALLBACK),
            (".bashrc", "bashrc"),
            ("...hidden", "hidden"),
            ("name. ", "name"),
            ("a\nb\x1b[2Jc.txt", "a_b_[2Jc.txt"),
            ("what?.txt", "what_.txt"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("lpt9.png", "_lpt9.png"),
            ("console.txt", "console.txt"),
            ("gnp\u{202e}exe.png", "gnp_exe.png"),
            ("résumé.pdf", "résumé.pdf"),
        ] {
            assert_eq!(safe_name(given), want, "{given:?}");
        }
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension_and_whole_characters() {
        let long = format!("{}.jpeg", "é".repeat(300));
        let s = safe_name(&long);
        assert!(s.len() <= MAX_SAVED, "{}", s.len());
        assert!(s.ends_with(".jpeg"));
        assert!(s.starts_with('é'));
        let no_ext = "x".repeat(1000);
        assert_eq!(safe_name(&no_ext).len(), MAX_SAVED);
        // A cut that lands after a space or a dot does not leave it at the end.
        let spaced = format!("{}  . {}", "y".repeat(MAX_SAVED - 3), "z".repeat(50));
        let s = safe_name(&spaced);
        assert!(!s.ends_with([' ', '.']), "{s:?}");
        assert_eq!(safe_name(&s), s);
    }

    #[test]
    fn taken_names_get_a_number_before_the_extension() {
        assert_eq!(numbered("photo.png", 1), "photo (1).png");
        assert_eq!(numbered("README", 2), "README (2)");
        assert_eq!(numbered("archive.tar.gz", 3), "archive.tar (3).gz");
        let long = format!("{}.png", "a".repeat(MAX_SAVED - 4));
        let n = numbered(&long, 12);
        assert!(n.len() <= MAX_SAVED && n.ends_with(" (12).png"), "{n}");
        assert_eq!(part_name("photo.png"), "photo.png.part");
    }

    proptest::proptest! {
        /// Whatever the sender writes, the result is one plain, visible, bounded name.
        #[test]
        fn any_name_is_safe(name in ".{0,300}") {
            let s = safe_name(&name);
            proptest::prop_assert!(!s.is_empty() && s.len() <= MAX_SAVED);
            proptest::prop_assert!(!s.contains('/') && !s.contains('\\'));
            proptest::prop_assert!(!s.starts_with('.'));
            proptest::prop_assert!(s != "..");
            proptest::prop_assert!(!s.chars().any(char::is_control));
            proptest::prop_assert_eq!(safe_name(&s), s.clone(), "not idempotent");
        }
    }
}
