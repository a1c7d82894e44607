//! The `tracestate` header, W3C Trace Context Level 2 section 3.3
//! (<https://www.w3.org/TR/trace-context-2/#tracestate-header>).
//!
//! A list of `key=value` members separated by commas with optional whitespace; empty
//! members are allowed and skipped. Any invalid member, a repeated key or more than 32
//! members makes the whole header invalid: it is dropped, never partially propagated.
//! Repeated headers are one list (section 3.3.1.1). Over 512 characters, whole members
//! are removed, the longest of those over 128 characters first, then from the end
//! (section 3.3.1.5).

/// Most members a valid header may carry.
const MAX_MEMBERS: usize = 32;
/// Length a participant keeps the header within when propagating.
const MAX_LEN: usize = 512;
/// Members longer than this are the first to go when truncating.
const LONG_MEMBER: usize = 128;

/// A valid tracestate: members in order, each `(key, value)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

impl TraceState {
    /// Parses the values of every `tracestate` header in order; `None` when invalid.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<TraceState> {
        let mut members: Vec<(String, String)> = Vec::new();
        for value in values {
            for raw in value.split(',') {
                let member = raw.trim_matches([' ', '\t']);
                if member.is_empty() {
                    continue;
                }
                let (key, value) = member.split_once('=')?;
                if !valid_key(key) || !valid_value(value) || members.iter().any(|(k, _)| k == key) {
                    return None;
                }
                members.push((key.to_owned(), value.to_owned()));
                if members.len() > MAX_MEMBERS {
                    return None;
                }
            }
        }
        Some(TraceState { members })
    }

    /// The header value, truncated to 512 characters by whole members.
    pub fn header(&self) -> String {
        let mut kept: Vec<&(String, String)> = self.members.iter().collect();
        let len = |kept: &[&(String, String)]| -> usize {
            let members: usize = kept.iter().map(|(k, v)| k.len() + 1 + v.len()).sum();
            members + kept.len().saturating_sub(1)
        };
        while len(&kept) > MAX_LEN {
            let longest = kept
                .iter()
                .enumerate()
                .filter(|(_, (k, v))| k.len() + 1 + v.len() > LONG_MEMBER)
                .max_by_key(|(_, (k, v))| k.len() + v.len())
                .map(|(i, _)| i);
            match longest {
                Some(i) => {
                    kept.remove(i);
                }
                None => {
                    kept.pop();
                }
            }
        }
        let mut out = String::new();
        for (i, (k, v)) in kept.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets this participant's member and moves it first, as a participant that
    /// updates its entry must (section 3.3.1.3). Returns false (unchanged) for an
    /// invalid key or value.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        if !valid_key(key) || !valid_value(value) {
            return false;
        }
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        self.members.truncate(MAX_MEMBERS);
        true
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key = lcalpha 0*255(...)` or `tenant-id "@" system-id`, where
/// `tenant-id = (lcalpha / DIGIT) 0*240(...)` and `system-id = lcalpha 0*13(...)`.
fn valid_key(key: &str) -> bool {
    let k = key.as_bytes();
    match key.split_once('@') {
        None => {
            !k.is_empty()
                && k.len() <= 256
                && k[0].is_ascii_lowercase()
                && k.iter().all(|c| key_char(*c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|c| key_char(*c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|c| key_char(*c))
        }
    }
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII without `,` and `=`, spaces allowed
/// inside but not at the end, 1 to 256 characters.
fn valid_value(value: &str) -> bool {
    let v = value.as_bytes();
    let nblk = |c: u8| (0x21..=0x7e).contains(&c) && c != b',' && c != b'=';
    !v.is_empty()
        && v.len() <= 256
        && v.iter().all(|c| *c == b' ' || nblk(*c))
        && nblk(v[v.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Option<TraceState> {
        TraceState::parse([v])
    }

    #[test]
    fn members_parse_with_optional_whitespace_and_empty_members() {
        let ts = parse(" a=1 ,, b@sys=x y ,\t").unwrap();
        assert_eq!(ts.header(), "a=1,b@sys=x y");
        assert_eq!(ts.get("b@sys"), Some("x y"));
        assert_eq!(
            TraceState::parse(["a=1", "b=2"]).unwrap().header(),
            "a=1,b=2",
            "repeated headers combine"
        );
    }

    #[test]
    fn any_invalid_member_drops_the_whole_header() {
        for v in [
            "A=1",
            "1a=1",
            "a=",
            "a=b=c",
            "a",
            "a=1,a=2",
            "t@S=1",
            "t@system-is-too-long=1",
            "@s=1",
            "a=\u{7f}",
            "a=caf\u{e9}",
        ] {
            assert_eq!(parse(v), None, "{v:?}");
        }
        assert!(
            parse("0t@s=1").is_some(),
            "a tenant-id may start with a digit"
        );
    }

    #[test]
    fn thirty_two_members_pass_thirty_three_drop_the_header() {
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(parse(&list(32)).is_some());
        assert_eq!(parse(&list(33)), None);
    }

    #[test]
    fn truncation_removes_long_members_first_then_from_the_end() {
        let long = format!("big={}", "x".repeat(200));
        let small: Vec<String> = (0..40)
            .map(|i| format!("k{i:02}={}", "y".repeat(6)))
            .collect();
        let mut members = vec![small[0].clone(), long.clone()];
        members.extend(small[1..30].iter().cloned());
        let ts = parse(&members.join(",")).unwrap();
        let header = ts.header();
        assert!(header.len() <= 512, "{}", header.len());
        assert!(
            !header.contains("big="),
            "the member over 128 characters goes first"
        );
        assert!(header.starts_with("k00="), "the front of the list is kept");
        let fits: Vec<&str> = header.split(',').collect();
        assert_eq!(
            fits.len(),
            30,
            "no member beyond what was needed was dropped"
        );
    }

    #[test]
    fn a_participant_moves_its_own_key_first() {
        let mut ts = parse("a=1,me=old,b=2").unwrap();
        assert!(ts.insert("me", "new"));
        assert_eq!(ts.header(), "me=new,a=1,b=2");
        assert!(!ts.insert("Bad", "x"));
    }
}
