//! Exchanges: which queues a routing key reaches.

use crate::messaging::queue::ExchangeKind;

/// An exchange and its bindings (queue, binding key), in the order they were made.
pub(super) struct Exchange {
    kind: ExchangeKind,
    bindings: Vec<(String, String)>,
}

impl Exchange {
    pub(super) fn new(kind: ExchangeKind) -> Self {
        Exchange {
            kind,
            bindings: Vec::new(),
        }
    }

    pub(super) fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// Binding the same queue with the same key again changes nothing, as in AMQP.
    pub(super) fn bind(&mut self, queue: &str, key: &str) {
        if !self.bindings.iter().any(|(q, k)| q == queue && k == key) {
            self.bindings.push((queue.to_owned(), key.to_owned()));
        }
    }

    /// The queues a message with `routing_key` goes to. A queue that several bindings
    /// match is listed once: it gets one copy, as from RabbitMQ.
    pub(super) fn route(&self, routing_key: &str) -> Vec<String> {
        let mut queues: Vec<String> = self
            .bindings
            .iter()
            .filter(|(_, key)| self.matches(key, routing_key))
            .map(|(queue, _)| queue.clone())
            .collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// Headers exchanges: courier's API has no binding arguments, so every headers
    /// binding is one without conditions, and RabbitMQ matches such a binding
    /// (`x-match: all` over nothing) for every message.
    fn matches(&self, binding_key: &str, routing_key: &str) -> bool {
        match self.kind {
            ExchangeKind::Direct => binding_key == routing_key,
            ExchangeKind::Fanout | ExchangeKind::Headers => true,
            ExchangeKind::Topic => topic_matches(binding_key, routing_key),
        }
    }
}

/// AMQP topic matching: words are separated by `.`, `*` stands for exactly one word and
/// `#` for zero or more. Walks the pattern once over the set of key prefixes it can
/// consume, so patterns with many `#` stay linear in the key instead of backtracking.
pub(super) fn topic_matches(pattern: &str, key: &str) -> bool {
    let key = words(key);
    // consumed[j]: the pattern words seen so far can match exactly the first j key words.
    let mut consumed = vec![false; key.len() + 1];
    consumed[0] = true;
    for word in words(pattern) {
        if word == "#" {
            let mut reached = false;
            for slot in &mut consumed {
                reached |= *slot;
                *slot = reached;
            }
        } else {
            for j in (1..consumed.len()).rev() {
                consumed[j] = consumed[j - 1] && (word == "*" || word == key[j - 1]);
            }
            consumed[0] = false;
        }
    }
    consumed[key.len()]
}

/// RabbitMQ reads the empty key as no words at all (so `#` matches it and `*` does
/// not), while `a..b` has an empty middle word.
fn words(key: &str) -> Vec<&str> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    }
}
