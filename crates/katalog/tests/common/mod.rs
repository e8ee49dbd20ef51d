//! What the Katalog runtime's testbed tests share: the guard that stops an in-process runtime
//! and polling with a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use katalog::runtime;

/// Aborts the in-process runtime when the test ends, pass or fail.
pub struct Running(pub tokio::task::JoinHandle<Result<(), runtime::Error>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls `probe` every `every` until it yields a value; fails the test after `limit`.
pub async fn eventually_every<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(every).await;
    }
}

/// [`eventually_every`] 100 ms.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_every(what, limit, Duration::from_millis(100), probe).await
}
