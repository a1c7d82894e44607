//! The `baggage` header, W3C Baggage (<https://www.w3.org/TR/baggage/>).
//!
//! `key OWS "=" OWS value *(OWS ";" OWS property)` members separated by commas. Values
//! are percent-encoded UTF-8; decoding invalid UTF-8 yields U+FFFD (section 3.2.1.1).
//! Members are kept as received, properties and encoding included, so propagation
//! passes them on unchanged; only whole members are dropped beyond 64 members or
//! 8,192 bytes (section 3.3.2, "Limits"). A malformed member is dropped on its own:
//! one bad entry from an unknown upstream must not erase everyone else's baggage.

/// Members propagated at most.
const MAX_MEMBERS: usize = 64;
/// Bytes of header propagated at most.
const MAX_BYTES: usize = 8_192;

/// Baggage members, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    key: String,
    /// The decoded value.
    value: String,
    /// The member exactly as received (or as encoded by [`Baggage::insert`]).
    raw: String,
}

impl Baggage {
    /// Parses the values of every `baggage` header in order.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Baggage {
        let mut baggage = Baggage::default();
        for value in values {
            for raw in value.split(',') {
                let raw = raw.trim_matches([' ', '\t']);
                if let Some(member) = parse_member(raw) {
                    baggage.push(member);
                }
            }
        }
        baggage
    }

    /// Appends unless that would pass the member or byte limit.
    fn push(&mut self, member: Member) -> bool {
        let separator = usize::from(!self.members.is_empty());
        if self.members.len() >= MAX_MEMBERS
            || self.len() + separator + member.raw.len() > MAX_BYTES
        {
            return false;
        }
        self.members.push(member);
        true
    }

    fn len(&self) -> usize {
        self.members.iter().map(|m| m.raw.len()).sum::<usize>()
            + self.members.len().saturating_sub(1)
    }

    /// The decoded value of `key` (the first, if repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value.as_str())
    }

    /// Adds or replaces `key`, percent-encoding the value. Returns false (unchanged)
    /// when `key` is not a valid token or the limits leave no room.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        if key.is_empty() || !key.bytes().all(is_tchar) {
            return false;
        }
        let previous = self.members.clone();
        self.members.retain(|m| m.key != key);
        let member = Member {
            key: key.to_owned(),
            value: value.to_owned(),
            raw: format!("{key}={}", encode(value)),
        };
        if self.push(member) {
            true
        } else {
            self.members = previous;
            false
        }
    }

    /// The header value; empty when there are no members.
    pub fn header(&self) -> String {
        self.members
            .iter()
            .map(|m| m.raw.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

fn parse_member(raw: &str) -> Option<Member> {
    let mut parts = raw.split(';');
    let (key, value) = parts.next()?.split_once('=')?;
    let (key, value) = (
        key.trim_matches([' ', '\t']),
        value.trim_matches([' ', '\t']),
    );
    if key.is_empty() || !key.bytes().all(is_tchar) || !value.bytes().all(is_baggage_octet_or_pct) {
        return None;
    }
    for property in parts {
        let property = property.trim_matches([' ', '\t']);
        let (pkey, pvalue) = property.split_once('=').unwrap_or((property, ""));
        let (pkey, pvalue) = (
            pkey.trim_matches([' ', '\t']),
            pvalue.trim_matches([' ', '\t']),
        );
        if pkey.is_empty()
            || !pkey.bytes().all(is_tchar)
            || !pvalue.bytes().all(is_baggage_octet_or_pct)
        {
            return None;
        }
    }
    Some(Member {
        key: key.to_owned(),
        value: decode(value),
        raw: raw.to_owned(),
    })
}

/// RFC 9110 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E` (no space, `"`, `,`,
/// `;`, `\`), which includes `%` for percent-encoding.
fn is_baggage_octet_or_pct(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Percent-decodes, then reads UTF-8 lossily (invalid sequences become U+FFFD). A `%`
/// not followed by two hex digits is kept as is.
fn decode(value: &str) -> String {
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything outside `baggage-octet`, and `%` itself.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &c in value.as_bytes() {
        if is_baggage_octet_or_pct(c) && c != b'%' {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_decode_and_propagate_unchanged() {
        let header = "userId=alice, serverNode = DF%2028 ;prop=1;flag,isProduction=false";
        let b = Baggage::parse([header]);
        assert_eq!(b.get("userId"), Some("alice"));
        assert_eq!(b.get("serverNode"), Some("DF 28"));
        assert_eq!(
            b.header(),
            "userId=alice,serverNode = DF%2028 ;prop=1;flag,isProduction=false"
        );
    }

    #[test]
    fn invalid_utf8_becomes_the_replacement_character() {
        let b = Baggage::parse(["k=%FF%FEok"]);
        assert_eq!(b.get("k"), Some("\u{fffd}\u{fffd}ok"));
    }

    #[test]
    fn malformed_members_are_dropped_alone() {
        let b = Baggage::parse(["good=1,bad key=2,=3,noequals,also=\"q\",ok=2"]);
        assert_eq!(b.header(), "good=1,ok=2");
    }

    #[test]
    fn limits_drop_whole_members_only() {
        let many: Vec<String> = (0..70).map(|i| format!("k{i}=v")).collect();
        let b = Baggage::parse([many.join(",").as_str()]);
        assert_eq!(b.header().split(',').count(), 64, "64 members propagate");
        let big = format!("a={},b={},c=1", "x".repeat(4_000), "y".repeat(4_200));
        let b = Baggage::parse([big.as_str()]);
        assert_eq!(
            b.get("b"),
            None,
            "a member that would pass 8,192 bytes is dropped whole"
        );
        assert_eq!(
            b.get("c"),
            Some("1"),
            "later members that fit still propagate"
        );
        assert!(b.header().len() <= 8_192);
    }

    #[test]
    fn insert_encodes_and_replaces() {
        let mut b = Baggage::parse(["a=1"]);
        assert!(b.insert("tenant", "acme corp, 100%"));
        assert_eq!(b.get("tenant"), Some("acme corp, 100%"));
        assert_eq!(b.header(), "a=1,tenant=acme%20corp%2C%20100%25");
        assert_eq!(
            Baggage::parse([b.header().as_str()]).get("tenant"),
            Some("acme corp, 100%")
        );
        assert!(!b.insert("bad key", "x"));
    }
}
