//! The `traceparent` header, W3C Trace Context Level 2 section 3.2
//! (<https://www.w3.org/TR/trace-context-2/#traceparent-header>).
//!
//! `version "-" trace-id "-" parent-id "-" trace-flags`, lowercase hex only. Version
//! `00` is exactly 55 characters. A later version (`01`..`fe`) may append fields, so it
//! is read at the fixed offsets of version `00` (each field followed by `-`, the flags
//! followed by `-` or the end) and re-emitted as `00` (section 3.2.4, "Versioning of
//! traceparent"). Version `ff` and all-zero ids are invalid.

/// The sampled flag: the caller may have recorded its span.
pub const SAMPLED: u8 = 0x01;
/// The random flag (Level 2): the trace-id's right 7 bytes are random.
pub const RANDOM: u8 = 0x02;
/// The flags this version knows; others are cleared when re-emitting.
const KNOWN_FLAGS: u8 = SAMPLED | RANDOM;

/// A valid traceparent's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) trace_id: [u8; 16],
    pub(crate) parent_id: [u8; 8],
    pub(crate) flags: u8,
}

/// Parses one header value; `None` when invalid. Surrounding spaces and tabs (HTTP
/// optional whitespace) are ignored.
pub(crate) fn parse(value: &str) -> Option<TraceParent> {
    let v = value.trim_matches([' ', '\t']).as_bytes();
    if v.len() < 55 {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    match version {
        0xff => return None,
        0x00 if v.len() != 55 => return None,
        _ if v.len() > 55 && v[55] != b'-' => return None,
        _ => {}
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id: [u8; 16] = hex_array(&v[3..35])?;
    let parent_id: [u8; 8] = hex_array(&v[36..52])?;
    let flags = hex_byte(&v[53..55])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags: flags & KNOWN_FLAGS,
    })
}

/// Writes version `00`.
pub(crate) fn format(tp: &TraceParent) -> String {
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    push_hex(&mut out, &tp.trace_id);
    out.push('-');
    push_hex(&mut out, &tp.parent_id);
    out.push('-');
    push_hex(&mut out, &[tp.flags & KNOWN_FLAGS]);
    out
}

pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
}

/// Lowercase hex only: the specification forbids uppercase.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    Some(nibble(two[0])? << 4 | nibble(two[1])?)
}

fn hex_array<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = hex_byte(pair)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_version_00_round_trips() {
        let tp = parse(VALID).unwrap();
        assert_eq!(tp.flags, SAMPLED);
        assert_eq!(format(&tp), VALID);
        assert_eq!(
            parse(&format!(" \t{VALID}\t ")),
            Some(tp),
            "optional whitespace"
        );
    }

    #[test]
    fn invalid_forms_are_rejected() {
        let cases = [
            ("", "empty"),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version ff",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "zero trace-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "zero parent-id",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "uppercase",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                "00 with trailing data",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                "short trace-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b-01",
                "misplaced dash",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                "short flags",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                "wrong separator",
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "non-hex version",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
                "non-hex flags",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                "future version, no dash after flags",
            ),
        ];
        for (value, why) in cases {
            assert_eq!(parse(value), None, "{why}: {value:?}");
        }
    }

    #[test]
    fn future_versions_are_read_at_fixed_offsets_and_reemitted_as_00() {
        let tp =
            parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds")
                .unwrap();
        assert_eq!(
            format(&tp),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let exact = parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").unwrap();
        assert_eq!(
            exact.flags,
            SAMPLED | RANDOM,
            "future version of exactly 55 characters"
        );
    }

    #[test]
    fn known_flags_are_carried_and_unknown_cleared() {
        for (flags, kept) in [
            ("00", 0),
            ("01", 1),
            ("02", 2),
            ("03", 3),
            ("ff", 3),
            ("fc", 0),
        ] {
            let v = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
            assert_eq!(parse(&v).unwrap().flags, kept, "flags {flags}");
        }
    }
}
