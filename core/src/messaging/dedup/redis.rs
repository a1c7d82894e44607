//! The Redis dedup store: one window shared by every consumer process using the same Redis.
//!
//! Per message id on a queue there are two keys (`{n}` is the queue name's length in
//! bytes, so that no queue name or id, both free to contain `:`, makes two keys collide):
//! - `{prefix}claim:{n}:{queue}:{id}` holds the token of the delivery processing it, set with
//!   `NX PX claim_ttl_ms`: only one process wins, and a claimant that crashes loses its
//!   claim after `claim_ttl_ms` so another process can take the message over;
//! - `{prefix}done:{n}:{queue}:{id}` marks it processed for `ttl_ms` after the ack.
//!
//! Both checks and writes run in Lua scripts so each step is atomic on the server: there is
//! no gap between "not processed" and "claimed" for another process to slip through.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, RedisError, Script};

use super::Claim;
use crate::error::{Error, Result};
use crate::urls::redact_url;

/// Claims the id unless it is processed or already claimed. Answers 0 for
/// [`Claim::Fresh`], 1 for [`Claim::Processed`], 2 for [`Claim::InProgress`].
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
return 2
";

/// Marks the id processed and deletes the claim if it is still ours: after our claim
/// expired another process may hold a new one, which must survive.
const COMPLETE: &str = r"
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 0
";

/// Deletes the claim only if it is still ours (compare-and-delete).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// First pause between polls in [`RedisStore::wait_settled`]: a held-back copy follows a
/// quick nack almost at once.
const POLL_MIN: Duration = Duration::from_millis(20);
/// Largest pause between polls: a copy held back behind a slow handler costs Redis five
/// `EXISTS` a second, and follows the settle within 200 ms.
const POLL_MAX: Duration = Duration::from_millis(200);

pub(crate) struct RedisStore {
    /// A multiplexed connection that reconnects by itself; cloning it is cheap.
    conn: ConnectionManager,
    /// The URL with its password masked, for errors and logs.
    target: String,
    prefix: String,
    ttl_ms: u64,
    claim_ttl_ms: u64,
    /// Identifies this store in claim tokens, so an operator looking at a claim key can
    /// tell which process holds it.
    instance: uuid::Uuid,
    /// The tokens of the claims this store holds, so `complete` and `release` delete a
    /// claim only if it is still the one this store took.
    tokens: Mutex<HashMap<(String, String), String>>,
    claim_script: Script,
    complete_script: Script,
    release_script: Script,
}

impl RedisStore {
    pub(crate) async fn open(
        url: &str,
        ttl_ms: u64,
        claim_ttl_ms: u64,
        prefix: &str,
    ) -> Result<RedisStore> {
        let target = redact_url(url);
        // The client's messages never quote the URL, so they are safe to pass on.
        let client =
            Client::open(url).map_err(|e| Error::config("dedup.url", format!("{e}: {target}")))?;
        // Few, quick retries: an unreachable Redis at startup should fail the consumer in
        // about a second, not after the default six doublings. Later commands that find
        // the connection dropped trigger a fresh reconnect anyway. Timeouts of 2 s rather
        // than the client's 500 ms response default, so a brief server stall (a large
        // `KEYS`, a fork for a snapshot) does not fail deliveries.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| connect_error(&target, e))?;
        Ok(RedisStore {
            conn,
            target,
            prefix: prefix.to_owned(),
            ttl_ms,
            claim_ttl_ms,
            instance: uuid::Uuid::now_v7(),
            tokens: Mutex::new(HashMap::new()),
            claim_script: Script::new(CLAIM),
            complete_script: Script::new(COMPLETE),
            release_script: Script::new(RELEASE),
        })
    }

    /// The URL with its password masked.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    fn processed_key(&self, queue: &str, id: &str) -> String {
        format!("{}done:{}:{queue}:{id}", self.prefix, queue.len())
    }

    fn claim_key(&self, queue: &str, id: &str) -> String {
        format!("{}claim:{}:{queue}:{id}", self.prefix, queue.len())
    }

    fn tokens(&self) -> MutexGuard<'_, HashMap<(String, String), String>> {
        // Each use is a single map call, which a panic cannot leave half done.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, e: RedisError) -> Error {
        connect_error(&self.target, e)
    }

    /// Runs the claim script. A claim taken by a call that then fails or is cancelled
    /// (the script may have run before the reply was lost) is released in the background,
    /// so it does not hold every copy back until `claim_ttl_ms` with no one to settle it.
    pub(crate) async fn claim(&self, queue: &str, id: &str) -> Result<Claim> {
        let claim_key = self.claim_key(queue, id);
        let token = format!("{}:{}", self.instance, uuid::Uuid::now_v7());
        let mut unanswered = ReleaseOnDrop {
            store: self,
            claim: Some((claim_key.clone(), token.clone())),
        };
        let answer: u8 = self
            .claim_script
            .key(self.processed_key(queue, id))
            .key(claim_key)
            .arg(&token)
            .arg(self.claim_ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error(e))?;
        let claim = match answer {
            0 => Claim::Fresh,
            1 => Claim::Processed,
            2 => Claim::InProgress,
            other => {
                return Err(Error::Internal(format!(
                    "dedup claim script answered {other}"
                )));
            }
        };
        unanswered.claim = None;
        if claim == Claim::Fresh {
            self.tokens()
                .insert((queue.to_owned(), id.to_owned()), token);
        }
        Ok(claim)
    }

    /// Polls the claim key with a growing pause until it is gone. Redis cannot push a
    /// "key deleted" event without keyspace notifications, which are off by default and a
    /// server-wide setting that courier should not require.
    ///
    /// A Redis error ends the wait too: the caller's next `claim` then reports it, which a
    /// wait with no result could not.
    pub(crate) async fn wait_settled(&self, queue: &str, id: &str) {
        let key = self.claim_key(queue, id);
        let mut conn = self.conn.clone();
        let mut pause = POLL_MIN;
        loop {
            match conn.exists::<_, bool>(&key).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::debug!(redis = %self.target, error = %e, "dedup wait failed");
                    return;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    /// The token is forgotten only once Redis confirmed: after a failed `complete` the
    /// claim is still this store's, so the delivery's nack or drop can release it.
    pub(crate) async fn complete(&self, queue: &str, id: &str) -> Result<()> {
        let local = (queue.to_owned(), id.to_owned());
        // No token (this store does not hold the claim): only the marker is written, since
        // an empty string never equals a token.
        let token = self.tokens().get(&local).cloned().unwrap_or_default();
        self.complete_script
            .key(self.processed_key(queue, id))
            .key(self.claim_key(queue, id))
            .arg(token)
            .arg(self.ttl_ms)
            .invoke_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| self.error(e))?;
        self.tokens().remove(&local);
        Ok(())
    }

    pub(crate) fn release(&self, queue: &str, id: &str) {
        if let Some(token) = self.tokens().remove(&(queue.to_owned(), id.to_owned())) {
            self.spawn_release(self.claim_key(queue, id), token);
        }
    }

    /// Deletes the claim at `claim_key` if it still holds `token`, in a detached task on
    /// courier's runtime because callers cannot wait (they may be in `Drop`). If that
    /// fails, the claim still expires after `claim_ttl_ms`.
    fn spawn_release(&self, claim_key: String, token: String) {
        let script = self.release_script.clone();
        let mut conn = self.conn.clone();
        let target = self.target.clone();
        let spawned = crate::runtime::spawn(async move {
            if let Err(e) = script
                .key(&claim_key)
                .arg(&token)
                .invoke_async::<()>(&mut conn)
                .await
            {
                tracing::warn!(redis = %target, error = %e, "dedup release failed; the claim expires after claim_ttl_ms");
            }
        });
        match spawned {
            // Detached: the release must finish even though no one waits for it.
            Ok(task) => drop(task.detach()),
            Err(e) => {
                tracing::warn!(error = %e, "dedup release not started; the claim expires after claim_ttl_ms");
            }
        }
    }
}

/// Releases a claim that a `claim` call may have taken without reporting it.
struct ReleaseOnDrop<'a> {
    store: &'a RedisStore,
    /// `(claim key, token)`; `None` once the call has its answer.
    claim: Option<(String, String)>,
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        if let Some((claim_key, token)) = self.claim.take() {
            self.store.spawn_release(claim_key, token);
        }
    }
}

fn connect_error(target: &str, e: RedisError) -> Error {
    Error::Connect {
        operation: "dedup",
        target: target.to_owned(),
        reason: e.to_string(),
        source: Some(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;
    use tokio::time::{Instant, timeout};

    use crate::messaging::config::DedupConfig;
    use crate::messaging::dedup::DedupStore;

    /// The Redis of `tests/scripts/ensure-redis.sh`, or the one `COURIER_REDIS_URL` names.
    fn redis_url() -> String {
        std::env::var("COURIER_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A prefix of its own per test, so parallel tests and repeated runs never share keys.
    fn unique_prefix() -> String {
        format!("courier:test:{}:", uuid::Uuid::now_v7())
    }

    /// Two stores on one prefix: two consumer processes sharing a window.
    async fn two_stores(claim_ttl_ms: u64) -> (RedisStore, RedisStore) {
        let (url, prefix) = (redis_url(), unique_prefix());
        let open = || RedisStore::open(&url, 60_000, claim_ttl_ms, &prefix);
        (open().await.unwrap(), open().await.unwrap())
    }

    async fn claim_exists(store: &RedisStore, queue: &str, id: &str) -> bool {
        let mut conn = store.conn.clone();
        conn.exists(store.claim_key(queue, id)).await.unwrap()
    }

    #[tokio::test]
    async fn two_stores_share_claims_and_completions() {
        let (a, b) = two_stores(60_000).await;
        let (a, b) = (Arc::new(a), Arc::new(b));
        assert_eq!(a.claim("q", "m1").await.unwrap(), Claim::Fresh);
        assert_eq!(b.claim("q", "m1").await.unwrap(), Claim::InProgress);
        assert_eq!(
            b.claim("other", "m1").await.unwrap(),
            Claim::Fresh,
            "ids are kept per queue"
        );
        let waiter = tokio::spawn({
            let b = Arc::clone(&b);
            async move {
                b.wait_settled("q", "m1").await;
                b.claim("q", "m1").await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "must wait while a holds the claim");
        a.complete("q", "m1").await.unwrap();
        let after = timeout(Duration::from_secs(5), waiter).await.unwrap();
        assert_eq!(after.unwrap().unwrap(), Claim::Processed);
        assert_eq!(a.claim("q", "m1").await.unwrap(), Claim::Processed);
        assert!(
            !claim_exists(&a, "q", "m1").await,
            "complete drops the claim"
        );
    }

    #[tokio::test]
    async fn release_lets_the_other_store_claim_fresh() {
        let (a, b) = two_stores(60_000).await;
        assert_eq!(a.claim("q", "m1").await.unwrap(), Claim::Fresh);
        assert_eq!(b.claim("q", "m1").await.unwrap(), Claim::InProgress);
        a.release("q", "m1");
        timeout(Duration::from_secs(5), b.wait_settled("q", "m1"))
            .await
            .unwrap();
        assert_eq!(b.claim("q", "m1").await.unwrap(), Claim::Fresh);
    }

    #[tokio::test]
    async fn a_claim_expires_after_claim_ttl_ms() {
        let (a, b) = two_stores(200).await;
        let start = Instant::now();
        assert_eq!(a.claim("q", "m1").await.unwrap(), Claim::Fresh);
        assert_eq!(b.claim("q", "m1").await.unwrap(), Claim::InProgress);
        timeout(Duration::from_secs(5), b.wait_settled("q", "m1"))
            .await
            .unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "settled after {:?}, before the claim could expire",
            start.elapsed()
        );
        assert_eq!(b.claim("q", "m1").await.unwrap(), Claim::Fresh);
    }

    #[tokio::test]
    async fn a_claimant_whose_claim_expired_leaves_the_new_claim_alone() {
        // a's claims expire quickly, b's outlive the test.
        let (url, prefix) = (redis_url(), unique_prefix());
        let a = RedisStore::open(&url, 60_000, 100, &prefix).await.unwrap();
        let b = RedisStore::open(&url, 60_000, 60_000, &prefix)
            .await
            .unwrap();
        assert_eq!(a.claim("q", "m1").await.unwrap(), Claim::Fresh);
        assert_eq!(a.claim("q", "m2").await.unwrap(), Claim::Fresh);
        timeout(Duration::from_secs(5), b.wait_settled("q", "m1"))
            .await
            .unwrap();
        timeout(Duration::from_secs(5), b.wait_settled("q", "m2"))
            .await
            .unwrap();
        assert_eq!(b.claim("q", "m1").await.unwrap(), Claim::Fresh);
        assert_eq!(b.claim("q", "m2").await.unwrap(), Claim::Fresh);

        a.complete("q", "m1").await.unwrap();
        assert!(claim_exists(&b, "q", "m1").await, "b's claim survives");
        assert_eq!(b.claim("q", "m1").await.unwrap(), Claim::Processed);

        a.release("q", "m2");
        // The release runs in the background; give it ample time to do harm if it would.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(claim_exists(&b, "q", "m2").await, "b's claim survives");
    }

    /// A TCP proxy in front of the test Redis whose replies can be held back (`false` on
    /// the returned sender), so a test can give up on a call the server has already run.
    /// Holding replies rather than stalling the server keeps parallel tests unaffected.
    async fn gated_proxy() -> (String, watch::Sender<bool>) {
        let mut url = url::Url::parse(&redis_url()).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(6379));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let (gate, open) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (mut client_rd, mut client_wr) = client.into_split();
                let (mut server_rd, mut server_wr) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_rd, &mut server_wr).await });
                let mut open = open.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 16 * 1024];
                    while let Ok(n @ 1..) = server_rd.read(&mut buf).await {
                        if open.wait_for(|open| *open).await.is_err()
                            || client_wr.write_all(&buf[..n]).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (url.into(), gate)
    }

    #[tokio::test]
    async fn a_cancelled_claim_leaves_no_claim_behind() {
        let (proxied, gate) = gated_proxy().await;
        let prefix = unique_prefix();
        let a = RedisStore::open(&proxied, 60_000, 60_000, &prefix)
            .await
            .unwrap();
        let b = RedisStore::open(&redis_url(), 60_000, 60_000, &prefix)
            .await
            .unwrap();
        // Loads the script, so the cancelled call's first EVALSHA takes the claim.
        assert_eq!(a.claim("q", "warm").await.unwrap(), Claim::Fresh);

        gate.send_replace(false);
        let cancelled = timeout(Duration::from_millis(100), a.claim("q", "m1")).await;
        assert!(cancelled.is_err(), "the reply was held back");
        gate.send_replace(true);

        // What a held-back delivery does; a claim left behind would keep it waiting for
        // claim_ttl_ms (a minute) instead of a few polls.
        let fresh = async {
            loop {
                match b.claim("q", "m1").await.unwrap() {
                    Claim::Fresh => return,
                    Claim::InProgress => b.wait_settled("q", "m1").await,
                    Claim::Processed => panic!("nothing completed m1"),
                }
            }
        };
        timeout(Duration::from_secs(5), fresh)
            .await
            .expect("the cancelled claim must be released, not left for claim_ttl_ms");
    }

    fn redis_config(url: String) -> DedupConfig {
        DedupConfig::Redis {
            url,
            ttl_ms: 60_000,
            claim_ttl_ms: 60_000,
            prefix: unique_prefix(),
        }
    }

    fn assert_connect_error_hides(err: &Error, password: &str) {
        assert!(
            matches!(
                err,
                Error::Connect {
                    operation: "dedup",
                    ..
                }
            ),
            "{err:?}"
        );
        let mut chain = String::new();
        let mut next: Option<&dyn std::error::Error> = Some(err);
        while let Some(e) = next {
            chain.push_str(&format!("{e} | {e:?} | "));
            next = e.source();
        }
        assert!(!chain.contains(password), "password leaked: {chain}");
        assert!(err.to_string().contains("***"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_connect_error_without_the_password() {
        let config = redis_config("redis://courier:s3cret-pw@127.0.0.1:1/0".into());
        let err = timeout(Duration::from_secs(10), DedupStore::open(&config))
            .await
            .unwrap()
            .unwrap_err();
        assert_connect_error_hides(&err, "s3cret-pw");
    }

    #[tokio::test]
    async fn wrong_credentials_are_a_connect_error_without_the_password() {
        let mut url = url::Url::parse(&redis_url()).unwrap();
        url.set_username("courier-nobody").unwrap();
        url.set_password(Some("wr0ng-pw")).unwrap();
        let config = redis_config(url.into());
        let err = timeout(Duration::from_secs(10), DedupStore::open(&config))
            .await
            .unwrap()
            .unwrap_err();
        assert_connect_error_hides(&err, "wr0ng-pw");
    }
}
