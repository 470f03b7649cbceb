//! `notifications/cancelled` from handshake-era clients. The gateway issues no sessions, so
//! a request id alone names nothing: a cancellation is honoured only for an authenticated
//! caller, and only when exactly one call of that caller with that id is in flight here
//! (two of its clients may reuse an id; then neither is cancelled). Anonymous callers and
//! 2026-07-28 clients cancel by closing the request's stream, which always works.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

type Key = (Arc<str>, Box<str>);

/// The calls under one key: a serial each (to leave the table) and its trigger.
type Calls = Vec<(u64, oneshot::Sender<()>)>;

/// The cancellable calls in flight, by caller and request id.
#[derive(Default)]
pub(super) struct Cancels {
    calls: Mutex<HashMap<Key, Calls>>,
    serial: AtomicU64,
}

/// One registered call; leaves the table when dropped.
pub(super) struct Entry<'a> {
    cancels: &'a Cancels,
    key: Option<Key>,
    serial: u64,
    cancelled: oneshot::Receiver<()>,
}

impl Cancels {
    /// Registers the call `id` of the caller keyed `caller`.
    pub(super) fn enter(&self, caller: &Arc<str>, id: &RawValue) -> Entry<'_> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let key: Key = (caller.clone(), id.get().into());
        self.calls
            .lock()
            .expect("not poisoned")
            .entry(key.clone())
            .or_default()
            .push((serial, tx));
        Entry {
            cancels: self,
            key: Some(key),
            serial,
            cancelled: rx,
        }
    }

    /// Cancels the call named by a `notifications/cancelled` of `caller`, when it is the
    /// only one of that caller with that id; whether one was.
    pub(super) fn cancel(&self, caller: &Arc<str>, params: Option<&RawValue>) -> bool {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(rename = "requestId", borrow)]
            request_id: &'a RawValue,
        }
        let Some(params) = params.and_then(|p| serde_json::from_str::<Params>(p.get()).ok()) else {
            return false;
        };
        let key: Key = (caller.clone(), params.request_id.get().into());
        let mut calls = self.calls.lock().expect("not poisoned");
        match calls.get(&key).map(Vec::len) {
            Some(1) => {
                let (_, tx) = calls.remove(&key).expect("present").remove(0);
                tx.send(()).is_ok()
            }
            _ => false,
        }
    }
}

impl Entry<'_> {
    /// Resolves when the call is cancelled.
    pub(super) async fn cancelled(&mut self) {
        if (&mut self.cancelled).await.is_err() {
            // The sender went with the table entry: never cancelled.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut calls = self.cancels.calls.lock().expect("not poisoned");
        if let Some(list) = calls.get_mut(&key) {
            list.retain(|(serial, _)| *serial != self.serial);
            if list.is_empty() {
                calls.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[tokio::test]
    async fn only_a_unique_call_of_the_same_caller_is_cancelled() {
        let cancels = Cancels::default();
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        let mut one = cancels.enter(&alice, &raw("5"));
        let params = raw(r#"{"requestId":5}"#);
        assert!(!cancels.cancel(&bob, Some(&params)), "another caller's id");
        assert!(!cancels.cancel(&alice, Some(&raw(r#"{"requestId":6}"#))));
        let twin = cancels.enter(&alice, &raw("5"));
        assert!(
            !cancels.cancel(&alice, Some(&params)),
            "ambiguous: two calls"
        );
        drop(twin);
        assert!(cancels.cancel(&alice, Some(&params)));
        one.cancelled().await;
        drop(one);
        assert!(cancels.calls.lock().unwrap().is_empty());
        assert!(!cancels.cancel(&alice, Some(&params)), "already gone");
    }
}
