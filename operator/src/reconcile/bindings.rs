//! The Bindings this operator made, remembered until the pod cache shows the pods bound.
//!
//! A pass that runs before the cache has caught up with a binding (the pod's creation
//! event arrived, its binding's not yet) sees the pod unbound. Without this memory it
//! binds it again and the API server answers 409 Conflict: a wasted request for about a
//! third of the pods of a 1×1 flood.
//!
//! # Guarantees
//! - Keyed by the pod's UID: a pod deleted and created again under the same name (a new
//!   attempt, or a replica recreated before its gang ran) is a new pod, bound anew.
//! - A binding, once made, is never undone, so a remembered pod never needs binding
//!   again; the memory is forgotten when the cache shows the pod bound, and anything the
//!   reconcile never sees bound (its job deleted first) after [`KEEP`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a binding is remembered at most: far longer than the cache's lag.
pub const KEEP: Duration = Duration::from_secs(120);

/// Pods bound by this operator, not yet seen bound in the cache, by UID.
#[derive(Debug, Default)]
pub struct Bindings {
    made: Mutex<HashMap<String, Instant>>,
}

impl Bindings {
    /// The pod of UID `uid` is bound (this operator bound it, or the API server said it
    /// already was).
    pub fn remember(&self, uid: &str) {
        self.remember_at(uid, Instant::now());
    }

    fn remember_at(&self, uid: &str, now: Instant) {
        let mut made = self.lock();
        made.retain(|_, at| now.saturating_duration_since(*at) < KEEP);
        made.insert(uid.to_owned(), now);
    }

    /// Whether the pod of UID `uid` was bound by this operator (and not yet seen bound).
    pub fn bound(&self, uid: &str) -> bool {
        self.lock().contains_key(uid)
    }

    /// The cache shows the pod bound: nothing to remember any more.
    pub fn seen_bound(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Bindings remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding the lock left a consistent map: keep using it.
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_is_remembered_until_the_cache_shows_it() {
        let bindings = Bindings::default();
        bindings.remember("u1");
        assert!(bindings.bound("u1"));
        assert!(!bindings.bound("u2"), "another pod (or the same name anew)");
        bindings.seen_bound("u1");
        assert!(!bindings.bound("u1"));
        assert!(bindings.is_empty());
    }

    #[test]
    fn a_binding_never_seen_is_forgotten_after_a_while() {
        let bindings = Bindings::default();
        let start = Instant::now();
        bindings.remember_at("old", start);
        bindings.remember_at("recent", start + KEEP / 2);
        bindings.remember_at("new", start + KEEP);
        assert!(!bindings.bound("old"));
        assert!(bindings.bound("recent"));
        assert_eq!(bindings.len(), 2);
    }
}
