//! The `tracestate` header, W3C Trace Context Level 2 section 3.3
//! (<https://www.w3.org/TR/trace-context-2/#tracestate-header>).
//!
//! A list of `key=value` members separated by commas with optional whitespace; empty
//! members are allowed and skipped. Any invalid member or more than 32 members makes the
//! whole header invalid: it is dropped, never partially propagated (processing model,
//! "A traceparent is Received" step 3: a tracestate that cannot be parsed MAY be
//! discarded whole). A key repeated by upstream does not make it invalid: the first
//! member with that key is kept and later ones are discarded (see [`TraceState::parse`]).
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
    ///
    /// A repeated key keeps its first member and drops the later ones. Level 2 only asks
    /// a participant not to *add* a key twice ("Combined Header Value",
    /// <https://www.w3.org/TR/trace-context-2/#combined-header-value>) and lets it
    /// discard duplicate keys it did not generate ("Mutating the tracestate Field",
    /// <https://www.w3.org/TR/trace-context-2/#mutating-the-tracestate-field>), so a
    /// duplicate is no reason to drop the whole header. The first is kept because the
    /// left-most member is the most recently updated. The 32-member limit counts the
    /// members as received, duplicates included (`list = list-member 0*31( OWS "," OWS
    /// list-member )`).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<TraceState> {
        let mut members: Vec<(String, String)> = Vec::new();
        let mut received = 0;
        for value in values {
            for raw in value.split(',') {
                let member = raw.trim_matches([' ', '\t']);
                if member.is_empty() {
                    continue;
                }
                let (key, value) = member.split_once('=')?;
                if !valid_key(key) || !valid_value(value) {
                    return None;
                }
                received += 1;
                if received > MAX_MEMBERS {
                    return None;
                }
                if !members.iter().any(|(k, _)| k == key) {
                    members.push((key.to_owned(), value.to_owned()));
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

/// `keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"`.
fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`: 1 to 256 characters, the first a
/// lowercase letter or a digit, `@` allowed anywhere after it (Level 2, "Key",
/// <https://www.w3.org/TR/trace-context-2/#key>). This replaces Level 1's two forms
/// (`simple-key`, and `tenant-id "@" system-id` with at most 241 and 14 characters and one
/// `@`), every key of which it still accepts.
fn valid_key(key: &str) -> bool {
    let k = key.as_bytes();
    !k.is_empty()
        && k.len() <= 256
        && (k[0].is_ascii_lowercase() || k[0].is_ascii_digit())
        && k.iter().all(|c| key_char(*c))
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
            "a=",
            "a=b=c",
            "a",
            "t@S=1",
            "@s=1",
            "foo =1",
            "foo.bar=1",
            "a=\u{7f}",
            "a=caf\u{e9}",
            "a=1,@s=1",
            "a=1,b=",
        ] {
            assert_eq!(parse(v), None, "{v:?}");
        }
        assert_eq!(
            TraceState::parse(["a=1", "B=2"]),
            None,
            "across headers too"
        );
    }

    #[test]
    fn keys_follow_the_level_2_grammar() {
        for key in [
            "a".to_owned(),
            "1a".to_owned(),
            "0t@s".to_owned(),
            "foo@".to_owned(),
            "foo@@bar".to_owned(),
            "foo@bar@baz".to_owned(),
            "t@system-is-too-long".to_owned(),
            "az09_-*/@".to_owned(),
            "z".repeat(256),
            format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            format!("{}@v", "t".repeat(242)),
            format!("t@{}", "v".repeat(15)),
        ] {
            let ts = parse(&format!("{key}=1,b=2")).unwrap_or_else(|| panic!("{key:?}"));
            assert_eq!(
                (ts.get(&key), ts.get("b")),
                (Some("1"), Some("2")),
                "{key:?}"
            );
        }
        for key in [
            String::new(),
            "@foo".to_owned(),
            "_a".to_owned(),
            "Foo".to_owned(),
            "foo.bar".to_owned(),
            "z".repeat(257),
        ] {
            assert_eq!(parse(&format!("{key}=1,b=2")), None, "{key:?}");
        }
        let mut ts = TraceState::default();
        assert!(
            ts.insert("tenant@vendor@x", "v"),
            "insert takes the same grammar"
        );
        assert!(!ts.insert("@vendor", "v"));
    }

    #[test]
    fn a_repeated_key_keeps_its_first_member() {
        let ts = parse("foo=1,bar=2,foo=3").unwrap();
        assert_eq!(ts.header(), "foo=1,bar=2");
        assert_eq!(ts.get("foo"), Some("1"));
        assert_eq!(
            TraceState::parse(["foo=1", "foo=2"]).unwrap().header(),
            "foo=1",
            "across headers too"
        );
        assert_eq!(parse("foo=1,foo=1").unwrap().header(), "foo=1");
        let mut ts = parse("a=1,me=old,me=older").unwrap();
        assert!(ts.insert("me", "new"));
        assert_eq!(ts.header(), "me=new,a=1");
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
        assert!(
            parse(&format!("{},,, ,", list(32))).is_some(),
            "empty members are not counted"
        );
        assert_eq!(
            parse(&format!("{},k0=again", list(32))),
            None,
            "a duplicate counts: 33 members were received"
        );
        let with_duplicate = parse(&format!("{},k0=again", list(31))).unwrap();
        assert_eq!(with_duplicate.header(), list(31));
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
