//! A DNS server on 127.0.0.1 (UDP) answering A, AAAA and SRV queries from a table the
//! test sets, so discovery tests can change the answer between refreshes.
//!
//! Hand-written like the HTTP server: it needs a dozen lines of the wire format
//! (RFC 1035 section 4, SRV from RFC 2782), and a DNS library would be the largest
//! dependency of a crate every binding's test suite builds. Every answer has TTL 0
//! ("use only for the transaction in progress", RFC 1035 section 3.2.1), so a
//! resolver never serves a stale table. Unknown names get NXDOMAIN; a known name
//! without records of the asked type gets an empty NOERROR answer.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;
const FORMERR: u8 = 1;
const NXDOMAIN: u8 = 3;
const NOTIMP: u8 = 4;

/// What the testkit's DNS server answers for one name; also the body of
/// `PUT /dns/{name}`. Absent lists are empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsRecords {
    /// IPv4 addresses (A records).
    pub a: Vec<Ipv4Addr>,
    /// IPv6 addresses (AAAA records).
    pub aaaa: Vec<Ipv6Addr>,
    /// Service records.
    pub srv: Vec<SrvRecord>,
}

/// One SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrvRecord {
    /// Host name (or, unusually but handy in tests, an IP address) serving it.
    pub target: String,
    /// Port on the target.
    pub port: u16,
    /// Relative weight among records of the same priority. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u16,
    /// Lower is preferred. Default 0.
    #[serde(default)]
    pub priority: u16,
}

fn default_weight() -> u16 {
    1
}

impl DnsRecords {
    /// Checks every SRV target is a name DNS can carry.
    ///
    /// # Errors
    /// A message naming the bad target.
    pub fn validate(&self) -> Result<(), String> {
        for srv in &self.srv {
            encode_name(&srv.target).map_err(|e| format!("srv target {:?}: {e}", srv.target))?;
        }
        Ok(())
    }
}

/// The answers by name: lowercased, without the trailing dot.
#[derive(Default)]
pub(crate) struct DnsTable(Mutex<HashMap<String, DnsRecords>>);

impl DnsTable {
    /// Sets the answer for `name` (case-insensitive, trailing dot optional).
    pub(crate) fn set(&self, name: &str, records: DnsRecords) -> Result<(), String> {
        encode_name(name).map_err(|e| format!("name {name:?}: {e}"))?;
        records.validate()?;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(normalize(name), records);
        Ok(())
    }

    fn get(&self, name: &str) -> Option<DnsRecords> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&normalize(name))
            .cloned()
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Answers queries on `socket` until the task is aborted.
pub(crate) async fn serve(socket: UdpSocket, table: Arc<DnsTable>) {
    // 512 bytes is the classic UDP limit; longer (EDNS) queries are cut and then
    // answered FORMERR, which no test query comes near.
    let mut buf = [0u8; 512];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&buf[..len], &table) {
            // A lost reply is what UDP does; the resolver retries.
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// The reply to one query message, `None` for something that is not a query.
fn answer(query: &[u8], table: &DnsTable) -> Option<Vec<u8>> {
    if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
        return None;
    }
    let opcode = (query[2] >> 3) & 0x0f;
    let question_count = u16::from_be_bytes([query[4], query[5]]);
    if opcode != 0 {
        return Some(reply_header(query, NOTIMP, 0, 0));
    }
    let Some((name, question_end)) = (question_count == 1)
        .then(|| parse_question(query))
        .flatten()
    else {
        return Some(reply_header(query, FORMERR, 0, 0));
    };
    let qtype = u16::from_be_bytes([query[question_end - 4], query[question_end - 3]]);
    let Some(records) = table.get(&name) else {
        let mut reply = reply_header(query, NXDOMAIN, 1, 0);
        reply.extend_from_slice(&query[HEADER_LEN..question_end]);
        return Some(reply);
    };
    let rdatas: Vec<Vec<u8>> = match qtype {
        TYPE_A => records.a.iter().map(|ip| ip.octets().to_vec()).collect(),
        TYPE_AAAA => records.aaaa.iter().map(|ip| ip.octets().to_vec()).collect(),
        TYPE_SRV => records
            .srv
            .iter()
            .filter_map(|srv| {
                let mut rdata = Vec::new();
                rdata.extend_from_slice(&srv.priority.to_be_bytes());
                rdata.extend_from_slice(&srv.weight.to_be_bytes());
                rdata.extend_from_slice(&srv.port.to_be_bytes());
                // Validated when set.
                rdata.extend_from_slice(&encode_name(&srv.target).ok()?);
                Some(rdata)
            })
            .collect(),
        _ => Vec::new(),
    };
    let count = u16::try_from(rdatas.len()).unwrap_or(u16::MAX);
    let mut reply = reply_header(query, 0, 1, count);
    reply.extend_from_slice(&query[HEADER_LEN..question_end]);
    for rdata in rdatas.iter().take(usize::from(count)) {
        // The owner name points back at the question's name (offset 12).
        reply.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        reply.extend_from_slice(&qtype.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&0u32.to_be_bytes());
        reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply.extend_from_slice(rdata);
    }
    Some(reply)
}

/// A reply header echoing the query's id, opcode and RD flag; authoritative.
fn reply_header(query: &[u8], rcode: u8, questions: u16, answers: u16) -> Vec<u8> {
    let mut header = Vec::with_capacity(512);
    header.extend_from_slice(&query[..2]);
    // QR, the query's opcode, AA, the query's RD.
    header.push(0x80 | (query[2] & 0x78) | 0x04 | (query[2] & 0x01));
    header.push(rcode);
    header.extend_from_slice(&questions.to_be_bytes());
    header.extend_from_slice(&answers.to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    header
}

/// The question's name (dotted, without the root dot) and the offset just past its
/// type and class. Queries never use compression, so a pointer is malformed here.
fn parse_question(query: &[u8]) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).into_owned());
        at += len;
    }
    let end = at + 4;
    (end <= query.len()).then(|| (labels.join("."), end))
}

/// `name` in wire format: length-prefixed labels ending with the root's zero.
fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut wire = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            if !(1..=63).contains(&label.len()) {
                return Err("labels must be 1 to 63 bytes".to_owned());
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
    }
    wire.push(0);
    if wire.len() > 255 {
        return Err("longer than 255 bytes".to_owned());
    }
    Ok(wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as a stub resolver sends it: id 0xbeef, RD set.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&encode_name(name).unwrap());
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn table() -> DnsTable {
        let table = DnsTable::default();
        table
            .set(
                "Orders.Svc.Local.",
                DnsRecords {
                    a: vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
                    aaaa: vec![],
                    srv: vec![SrvRecord {
                        target: "127.0.0.1".into(),
                        port: 8080,
                        weight: 3,
                        priority: 1,
                    }],
                },
            )
            .unwrap();
        table
    }

    fn rcode(reply: &[u8]) -> u8 {
        reply[3] & 0x0f
    }

    fn answers(reply: &[u8]) -> u16 {
        u16::from_be_bytes([reply[6], reply[7]])
    }

    #[test]
    fn a_records_answer_case_insensitively_with_ttl_zero() {
        let q = query("orders.SVC.local", TYPE_A);
        let reply = answer(&q, &table()).unwrap();
        assert_eq!(&reply[..2], &[0xbe, 0xef], "the id is echoed");
        assert_eq!(reply[2] & 0x84, 0x84, "a reply, authoritative");
        assert_eq!((rcode(&reply), answers(&reply)), (0, 2));
        assert_eq!(
            &reply[HEADER_LEN..q.len()],
            &q[HEADER_LEN..],
            "the question is echoed byte for byte"
        );
        let first = &reply[q.len()..];
        assert_eq!(
            &first[..2],
            &[0xc0, 12],
            "owner name points at the question"
        );
        assert_eq!(&first[2..6], &[0, 1, 0, 1], "type A, class IN");
        assert_eq!(&first[6..10], &[0, 0, 0, 0], "TTL 0");
        assert_eq!(&first[10..16], &[0, 4, 127, 0, 0, 1]);
    }

    #[test]
    fn srv_records_carry_priority_weight_port_and_target() {
        let q = query("orders.svc.local", TYPE_SRV);
        let reply = answer(&q, &table()).unwrap();
        assert_eq!((rcode(&reply), answers(&reply)), (0, 1));
        let rdata = &reply[q.len() + 12..];
        assert_eq!(&rdata[..6], &[0, 1, 0, 3, 0x1f, 0x90]);
        assert_eq!(&rdata[6..], &encode_name("127.0.0.1").unwrap()[..]);
        assert_eq!(
            u16::from_be_bytes([reply[q.len() + 10], reply[q.len() + 11]]) as usize,
            rdata.len(),
            "rdlength covers the record"
        );
    }

    #[test]
    fn unknown_names_are_nxdomain_and_missing_types_are_empty() {
        let reply = answer(&query("nope.local", TYPE_A), &table()).unwrap();
        assert_eq!((rcode(&reply), answers(&reply)), (NXDOMAIN, 0));
        let reply = answer(&query("orders.svc.local", TYPE_AAAA), &table()).unwrap();
        assert_eq!((rcode(&reply), answers(&reply)), (0, 0));
    }

    #[test]
    fn malformed_messages_and_replies_are_not_answered_as_queries() {
        assert_eq!(answer(&[0; 5], &table()), None, "shorter than a header");
        let mut reply = query("orders.svc.local", TYPE_A);
        reply[2] |= 0x80;
        assert_eq!(answer(&reply, &table()), None, "a reply is never answered");
        let truncated = &query("orders.svc.local", TYPE_A)[..20];
        assert_eq!(rcode(&answer(truncated, &table()).unwrap()), FORMERR);
        let mut notify = query("orders.svc.local", TYPE_A);
        notify[2] |= 4 << 3;
        assert_eq!(rcode(&answer(&notify, &table()).unwrap()), NOTIMP);
    }

    #[test]
    fn names_and_targets_are_checked_when_set() {
        let table = DnsTable::default();
        assert!(table.set("a..b", DnsRecords::default()).is_err());
        let bad = DnsRecords {
            srv: vec![SrvRecord {
                target: "x".repeat(64),
                port: 1,
                weight: 1,
                priority: 0,
            }],
            ..DnsRecords::default()
        };
        assert!(table.set("ok.local", bad).is_err());
    }
}
