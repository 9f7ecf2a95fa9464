//! Kubernetes Events (`events.k8s.io/v1`) on the objects the operator acts on.
//!
//! Published as kube's `Recorder` publishes them: one Event per object, type, reason and
//! action, and the same again within six minutes counted on that Event's series
//! (`kubectl describe` shows "x3 over 2m") rather than written anew. What differs is
//! what is remembered meanwhile: kube's `Recorder` keeps each whole Event (about 2 KiB
//! with its key) and forgets the old ones only when it next publishes, so an operator
//! that has just placed 5,000 jobs and then rests held their 15,000 Events until its next
//! Event. This one keeps of each recent Event its key, name and count, and the scheduling
//! loop forgets the old ones every cycle.
//!
//! # Guarantees
//! - An Event that repeats (same object, type, reason, action and related object) within
//!   [`SERIES_WINDOW`] of its last occurrence is counted on the first one's `series`; its
//!   note stays the first one's (as kube's and client-go's recorders do).
//! - If that Event is gone meanwhile (deleted, or expired by the API server), the repeat
//!   is written as a new Event.
//! - Entries older than the window are dropped on the next publish, and by
//!   [`Recorder::forget_old`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

/// How long after its last occurrence an Event may still be repeated as a count on it.
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// Publishes Events; cheap to clone (clones share what they remember).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    recent: Arc<Mutex<HashMap<Key, Recent>>>,
}

/// What makes two Events the same.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    type_: EventType,
    reason: String,
    action: String,
    regarding: Reference,
    related: Option<Reference>,
}

/// The identity of an object an Event is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Reference {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

impl From<&ObjectReference> for Reference {
    fn from(r: &ObjectReference) -> Self {
        Reference {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }
    }
}

/// A recent Event: where it is, how often it happened, and when last.
#[derive(Debug)]
struct Recent {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

impl Recorder {
    /// A recorder that signs its Events as `reporter`.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            recent: Arc::default(),
        }
    }

    /// Publishes `event` about `regarding` (in its namespace, `default` for a
    /// cluster-scoped object): a new Event, or a count on the same recent one.
    ///
    /// # Errors
    /// The API server's, when it refuses the Event (RBAC: `create` and `patch` on
    /// `events.events.k8s.io`).
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            type_: event.type_,
            reason: event.reason.clone(),
            action: event.action.clone(),
            regarding: regarding.into(),
            related: event.secondary.as_ref().map(Reference::from),
        };
        let repeat = {
            let mut recent = self.lock();
            forget_before(&mut recent, now);
            recent
                .get(&key)
                .map(|r| (r.namespace.clone(), r.name.clone(), r.count + 1))
        };
        if let Some((namespace, name, count)) = repeat {
            let series = json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
            let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => {
                    self.remember(key, namespace, name, count, now);
                    return Ok(());
                }
                // Gone meanwhile: written anew below.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let new = self.new_event(event, regarding, now);
        let namespace = new.metadata.namespace.clone().unwrap_or_default();
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let created = events.create(&PostParams::default(), &new).await?;
        let name = created.metadata.name.unwrap_or_default();
        self.remember(key, namespace, name, 1, now);
        Ok(())
    }

    /// Forgets the Events whose window has passed (a publish does it too); returns how
    /// many are still remembered.
    pub fn forget_old(&self) -> usize {
        let mut recent = self.lock();
        forget_before(&mut recent, Timestamp::now());
        recent.len()
    }

    fn remember(&self, key: Key, namespace: String, name: String, count: i32, last: Timestamp) {
        let recent = Recent {
            namespace,
            name,
            count,
            last,
        };
        self.lock().insert(key, recent);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Recent>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Event as kube's `Recorder` writes it.
    fn new_event(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".to_owned()),
                ),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_ref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            related: event.secondary.clone(),
            ..Default::default()
        }
    }
}

fn forget_before(recent: &mut HashMap<Key, Recent>, now: Timestamp) {
    recent.retain(|_, r| r.last + SERIES_WINDOW > now);
    // A burst's table is not kept at its peak size once it has emptied.
    if recent.capacity() > 64 && recent.len() < recent.capacity() / 4 {
        recent.shrink_to_fit();
    }
}
