//! What each upstream received, for tests to assert on.
//!
//! Counters cover every request since the last reset, while only the most recent
//! requests are kept in full: a soak test may send millions, but assertions about
//! individual requests only ever look at the last few.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::http1::Request;

/// How many requests are kept in full; older ones only remain in the counters.
const KEPT: usize = 1000;

/// One request as the upstream saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The method, as sent.
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string without `?`, empty when absent.
    pub query: String,
    /// The `Idempotency-Key` header, separate because retry tests check it most.
    pub idempotency_key: Option<String>,
    /// Headers by lowercased name; repeated headers are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// Body length after removing chunked framing, i.e. what the client meant to send.
    pub body_len: usize,
}

impl RecordedRequest {
    pub(crate) fn of(request: &Request) -> RecordedRequest {
        RecordedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            idempotency_key: request.header("idempotency-key").map(str::to_owned),
            headers: request.header_map(),
            body_len: request.body.len(),
        }
    }
}

/// A snapshot of an upstream's log, also the body of `GET /upstreams/{i}/requests`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLog {
    /// Private so the count cannot disagree with the maps; read it with [`total`](Self::total).
    total: u64,
    /// Request counts by method.
    pub by_method: BTreeMap<String, u64>,
    /// Request counts by path (query excluded).
    pub by_path: BTreeMap<String, u64>,
    /// Request counts by `Idempotency-Key`; requests without one are not counted here.
    pub by_idempotency_key: BTreeMap<String, u64>,
    /// The most recent requests, oldest first (at most the last 1000).
    pub requests: Vec<RecordedRequest>,
}

impl RequestLog {
    /// Every request received since the last reset, including those answered with a
    /// connection reset.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The live log behind the snapshots.
#[derive(Default)]
pub(crate) struct Recorder {
    /// The counters; its `requests` stays empty, `recent` holds them instead.
    counts: RequestLog,
    /// A deque so the oldest entry can be dropped cheaply; the snapshot is a `Vec`.
    recent: VecDeque<RecordedRequest>,
}

impl Recorder {
    pub(crate) fn record(&mut self, request: RecordedRequest) {
        let counts = &mut self.counts;
        counts.total += 1;
        *counts.by_method.entry(request.method.clone()).or_default() += 1;
        *counts.by_path.entry(request.path.clone()).or_default() += 1;
        if let Some(key) = &request.idempotency_key {
            *counts.by_idempotency_key.entry(key.clone()).or_default() += 1;
        }
        if self.recent.len() == KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(request);
    }

    pub(crate) fn snapshot(&self) -> RequestLog {
        RequestLog {
            requests: self.recent.iter().cloned().collect(),
            ..self.counts.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, key: Option<&str>) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            path: "/p".into(),
            query: String::new(),
            idempotency_key: key.map(str::to_owned),
            headers: BTreeMap::new(),
            body_len: 0,
        }
    }

    #[test]
    fn counts_everything_but_keeps_only_the_latest() {
        let mut recorder = Recorder::default();
        for i in 0..KEPT + 5 {
            let method = if i % 2 == 0 { "GET" } else { "POST" };
            recorder.record(request(method, (i < 3).then_some("k")));
        }
        let log = recorder.snapshot();
        assert_eq!(log.total(), (KEPT + 5) as u64);
        assert_eq!(log.by_method["GET"] + log.by_method["POST"], log.total());
        assert_eq!(log.by_path["/p"], log.total());
        assert_eq!(log.by_idempotency_key["k"], 3);
        assert_eq!(log.requests.len(), KEPT);
    }
}
