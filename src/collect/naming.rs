//! How a source (host, path) becomes an output file name under OUT: one
//! mapping, reversible ([`decode`] gives host and path back), so two
//! sources never share a file and no record, whatever bytes its
//! attribution holds, names a place outside OUT or one the file system
//! refuses for its name alone.
//!
//! ```text
//! output   = HOST "/" PATH
//! HOST     = the host as one component (pieces, see below)
//! PATH     = the source path's components, each encoded, joined by "/";
//!            an absolute path drops its leading "/", a relative one
//!            (or an empty one) starts with the component "%."
//! ```
//!
//! Each component is escaped with `%XX` (two upper-case hex digits of one
//! byte):
//! - `%` itself, NUL and the other control bytes (0x00-0x1f, 0x7f), `/`
//!   (possible inside a host only), and bytes that are not UTF-8 (the index
//!   keeps names as text): `%25`, `%00`, `%2F`, `%FF`, ...;
//! - a component that is `.` or `..`: `%2E`, `%2E%2E`;
//! - a host's first byte when it is `.` or `_`, so no host is hidden or
//!   meets `OUT/.logferry` or `OUT/_unattributed`;
//! - an empty component (`//` or a trailing `/` in a path, an empty host):
//!   `%_`.
//!
//! A component longer than [`MAX_COMPONENT`] bytes once escaped is cut
//! into pieces of at most that many bytes, each but the last ending in a
//! bare `%`, which means "continued in the next component" (an escape
//! always has two hex digits after its `%`, so a bare one is never part of
//! one). [`MAX_COMPONENT`] leaves room within NAME_MAX (255) for the
//! suffixes added to an output name: `.<seconds>-<generation>` for older
//! generations, `.zst` and `.tmp` for archives.
//!
//! Names that need none of this (`web1`, `/var/log/nginx/access.log`) are
//! unchanged: `web1/var/log/nginx/access.log`.

use std::fmt::Write;

/// Longest component written, in bytes (escapes included).
pub const MAX_COMPONENT: usize = 160;

/// The output path of `(host, source_path)`, relative to OUT.
pub fn output_path(host: &[u8], source_path: &[u8]) -> String {
    let mut out = String::with_capacity(host.len() + source_path.len() + 1);
    push_component(&mut out, host, true);
    let components = match source_path.strip_prefix(b"/") {
        Some(rest) => rest,
        None => {
            out.push_str("/%.");
            source_path
        }
    };
    for c in components.split(|&b| b == b'/') {
        out.push('/');
        push_component(&mut out, c, false);
    }
    out
}

/// One component on its own (a topic under `_unattributed`), escaped as a
/// path component is.
pub fn component(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    push_component(&mut out, name, false);
    out
}

/// Why a name is not one [`output_path`] makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not an output name: {why}")]
pub struct NameError {
    pub name: String,
    pub why: &'static str,
}

/// The host and source path an output path (relative to OUT) stands for:
/// the inverse of [`output_path`].
pub fn decode(output: &str) -> Result<(Vec<u8>, Vec<u8>), NameError> {
    let err = |why| NameError {
        name: output.to_string(),
        why,
    };
    let mut parts = output.split('/').peekable();
    let host = next_component(&mut parts)
        .map_err(err)?
        .ok_or(err("empty"))?;
    let relative = parts.next_if_eq(&"%.").is_some();
    let mut path = Vec::new();
    let mut components = 0;
    while let Some(c) = next_component(&mut parts).map_err(err)? {
        if components > 0 || !relative {
            path.push(b'/');
        }
        path.extend_from_slice(&c);
        components += 1;
    }
    if components == 0 {
        return Err(err("no path"));
    }
    Ok((host, path))
}

/// The next component, its pieces joined and unescaped; None at the end.
fn next_component<'a>(
    parts: &mut impl Iterator<Item = &'a str>,
) -> Result<Option<Vec<u8>>, &'static str> {
    let Some(mut piece) = parts.next() else {
        return Ok(None);
    };
    if piece == "%_" {
        return Ok(Some(Vec::new()));
    }
    let mut bytes = Vec::new();
    loop {
        if piece.is_empty() || piece == "." || piece == ".." {
            return Err("empty, . or .. component");
        }
        if !unescape(piece, &mut bytes)? {
            return Ok(Some(bytes));
        }
        piece = parts.next().ok_or("continued past the last component")?;
    }
}

/// Unescape one piece onto `out`; true when it ends in a bare `%`.
fn unescape(piece: &str, out: &mut Vec<u8>) -> Result<bool, &'static str> {
    let b = piece.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        if i + 1 == b.len() {
            return Ok(true);
        }
        let hex = b.get(i + 1..i + 3).ok_or("% without two hex digits")?;
        let hex = std::str::from_utf8(hex).map_err(|_| "% without two hex digits")?;
        if !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
        {
            return Err("% without two upper-case hex digits");
        }
        out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad escape")?);
        i += 3;
    }
    Ok(false)
}

/// Whether `b` is written as `%XX` wherever it appears.
fn always_escaped(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'%' || b == b'/'
}

/// Append one encoded component (several pieces when long) to `out`.
fn push_component(out: &mut String, c: &[u8], is_host: bool) {
    if c.is_empty() {
        out.push_str("%_");
        return;
    }
    if c == b"." || c == b".." {
        out.push_str(if c.len() == 1 { "%2E" } else { "%2E%2E" });
        return;
    }
    // Tokens: an escape or one literal character, never split.
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    let mut enc = String::with_capacity(c.len());
    let push_escape = |enc: &mut String, b: u8| {
        let start = enc.len();
        let _ = write!(enc, "%{b:02X}");
        (start, enc.len())
    };
    for chunk in c.utf8_chunks() {
        for ch in chunk.valid().chars() {
            let first = enc.is_empty();
            let byte = u8::try_from(ch).ok();
            let escape =
                byte.is_some_and(always_escaped) || (is_host && first && matches!(ch, '.' | '_'));
            if let (true, Some(b)) = (escape, byte) {
                tokens.push(push_escape(&mut enc, b));
            } else {
                let start = enc.len();
                enc.push(ch);
                tokens.push((start, enc.len()));
            }
        }
        for &b in chunk.invalid() {
            tokens.push(push_escape(&mut enc, b));
        }
    }
    if enc.len() <= MAX_COMPONENT {
        out.push_str(&enc);
        return;
    }
    // Pieces of at most MAX_COMPONENT - 1 bytes, each but the last
    // followed by the bare `%`.
    let mut piece_start = 0;
    let mut piece_end = 0;
    for (start, end) in tokens {
        if end - piece_start > MAX_COMPONENT - 1 {
            out.push_str(&enc[piece_start..piece_end]);
            out.push_str("%/");
            piece_start = start;
        }
        piece_end = end;
    }
    match &enc[piece_start..] {
        // A last piece of dots alone would be `.` or `..` on disk.
        "." => out.push_str("%2E"),
        ".." => out.push_str("%2E%2E"),
        last => out.push_str(last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    fn round_trip(host: &[u8], path: &[u8]) -> String {
        let out = output_path(host, path);
        assert_eq!(
            decode(&out),
            Ok((host.to_vec(), path.to_vec())),
            "{host:?} {path:?} -> {out}"
        );
        assert_components_safe(&out);
        out
    }

    fn assert_components_safe(out: &str) {
        for (i, c) in out.split('/').enumerate() {
            assert!(!c.is_empty() && c != "." && c != "..", "{out}: {c:?}");
            assert!(c.len() <= MAX_COMPONENT, "{out}: {} bytes", c.len());
            assert!(!c.bytes().any(|b| b < 0x20 || b == 0x7f), "{out}");
            if i == 0 {
                assert!(!c.starts_with('.') && !c.starts_with('_'), "{out}");
            }
        }
        assert!(Path::new(out)
            .components()
            .all(|c| matches!(c, Component::Normal(_))));
    }

    #[test]
    fn ordinary_names_are_unchanged() {
        assert_eq!(
            round_trip(b"web1", b"/var/log/nginx/access.log"),
            "web1/var/log/nginx/access.log"
        );
        assert_eq!(
            round_trip("héte".as_bytes(), "/données/.hidden".as_bytes()),
            "héte/données/.hidden"
        );
    }

    #[test]
    fn hostile_names_are_escaped() {
        assert_eq!(
            round_trip(b"..", b"/../../etc/passwd"),
            "%2E%2E/%2E%2E/%2E%2E/etc/passwd"
        );
        assert_eq!(round_trip(b".logferry", b"/a"), "%2Elogferry/a");
        assert_eq!(round_trip(b"_unattributed", b"/a"), "%5Funattributed/a");
        assert_eq!(round_trip(b"a/b", b"/x"), "a%2Fb/x");
        assert_eq!(round_trip(b"a_b", b"/x"), "a_b/x");
        assert_eq!(round_trip(b"h\0", b"/a\0b"), "h%00/a%00b");
        assert_eq!(round_trip(b"h", b"/100%\xff\n"), "h/100%25%FF%0A");
        assert_eq!(round_trip(b"", b"/x"), "%_/x");
        assert_eq!(round_trip(b"h", b"/a//b/"), "h/a/%_/b/%_");
        assert_eq!(round_trip(b"h", b"/"), "h/%_");
        assert_eq!(round_trip(b"h", b"./x"), "h/%./%2E/x");
        assert_eq!(round_trip(b"h", b"rel/x"), "h/%./rel/x");
        assert_eq!(round_trip(b"h", b""), "h/%./%_");
        assert_eq!(round_trip(b"h", b"/%_"), "h/%25_");
        assert_eq!(round_trip(b"h", b"/%."), "h/%25.");
    }

    #[test]
    fn long_components_are_cut_into_marked_pieces() {
        let long = vec![b'a'; 300];
        let mut path = b"/".to_vec();
        path.extend_from_slice(&long);
        let out = round_trip(b"h", &path);
        let parts: Vec<&str> = out.split('/').collect();
        assert_eq!(parts.len(), 3, "{out}");
        assert_eq!(parts[1].len(), MAX_COMPONENT);
        assert!(parts[1].ends_with('%'));
        assert_eq!(parts[2].len(), 300 - (MAX_COMPONENT - 1));
        // A cut never lands inside an escape or a character.
        let mut tricky = b"/".to_vec();
        tricky.extend(std::iter::repeat_n(b'\0', 100));
        tricky.extend(std::iter::repeat_n("é".as_bytes(), 100).flatten());
        round_trip(b"h", &tricky);
        // Nor leaves a piece that is `.` or `..`.
        let mut dots = b"/".to_vec();
        dots.extend(std::iter::repeat_n(b'a', MAX_COMPONENT - 1));
        dots.extend_from_slice(b"..");
        let out = round_trip(b"h", &dots);
        assert!(out.ends_with("%/%2E%2E"), "{out}");
        let long_host = vec![b'.'; 400];
        round_trip(&long_host, b"/x");
    }

    #[test]
    fn names_no_mapping_makes_are_refused() {
        for bad in ["", "h", "h/%", "h/%4", "h/%zz", "h/a%2e", "h/..", "h//x"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_topic_component_is_escaped_like_a_path_component() {
        assert_eq!(component(b"logs.web"), "logs.web");
        assert_eq!(component(b".."), "%2E%2E");
        assert_eq!(component(b"a/b"), "a%2Fb");
    }

    proptest! {
        /// Injective (decode inverts it) and always a relative path of
        /// plain components under OUT, whatever the bytes.
        #[test]
        fn the_mapping_is_injective_and_stays_under_out(
            host in proptest::collection::vec(any::<u8>(), 0..400),
            path in proptest::collection::vec(
                prop_oneof![Just(b'/'), Just(b'.'), Just(b'%'), Just(0u8), any::<u8>()],
                0..600,
            ),
        ) {
            let out = output_path(&host, &path);
            prop_assert_eq!(decode(&out), Ok((host.clone(), path.clone())));
            assert_components_safe(&out);
        }

        #[test]
        fn distinct_sources_get_distinct_names(
            a in proptest::collection::vec(any::<u8>(), 0..40),
            b in proptest::collection::vec(any::<u8>(), 0..40),
            pa in proptest::collection::vec(prop_oneof![Just(b'/'), Just(b'.'), any::<u8>()], 0..40),
            pb in proptest::collection::vec(prop_oneof![Just(b'/'), Just(b'.'), any::<u8>()], 0..40),
        ) {
            prop_assume!((&a, &pa) != (&b, &pb));
            prop_assert_ne!(output_path(&a, &pa), output_path(&b, &pb));
        }
    }
}
