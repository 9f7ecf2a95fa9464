//! The operator's watches of the cluster: each kind watched once, into a reflector cache
//! every task reads, and subscriptions for the controllers that react to changes.
//!
//! # Expected flow
//! [`watch_all`] gives a [`Watched`] cache and the watch that fills it (a task of the
//! supervisor). On every change the watch calls its `on_change` hook (wake the
//! scheduling cycle, invalidate the [`Topology`](crate::topology::Topology)) and hands
//! the object to each live subscription. [`Synced`] is awaited once by the tasks that
//! must not act on half-filled caches.
//!
//! # Guarantees
//! - A subscription starts with every object in the cache when it is first polled, then
//!   sees each change; a controller that starts late (a follower that becomes leader)
//!   still reconciles every object.
//! - A subscription registers only when first polled: a follower that never leads buffers
//!   nothing, and the watch never waits on a slow subscriber (the channels are
//!   unbounded; a subscriber that goes away is dropped).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

pub mod cached_pod;
pub mod job_pods;
pub mod prune;

pub use cached_pod::CachedPod;
use tokio::sync::watch;
use tracing::warn;

/// A cache of every `K` in the cluster, and subscriptions to its changes.
pub struct Watched<K: kube::Resource<DynamicType = ()> + 'static> {
    /// The cache.
    pub store: Store<K>,
    subscribers: Arc<Mutex<Vec<UnboundedSender<Arc<K>>>>>,
}

impl<K> Watched<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// Every object in the cache when first polled, then every object the watch applies
    /// or deletes.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (subscribers, store) = (self.subscribers.clone(), self.store.clone());
        futures::stream::once(async move {
            let (tx, rx) = unbounded();
            subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(tx);
            // Registered first: an object that changes meanwhile comes twice, never never.
            futures::stream::iter(store.state()).chain(rx)
        })
        .flatten()
    }

    /// Hands a changed object to every live subscription, and forgets the others.
    fn publish(&self, object: K) {
        let object = Arc::new(object);
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subscribers.retain(|tx| tx.unbounded_send(object.clone()).is_ok());
    }
}

/// A change the cache took in, as [`watch_all`] reports it.
pub enum Touched<'a, K> {
    /// An object was added, or changed in a field the cache keeps.
    Applied(&'a K),
    /// An object was deleted.
    Deleted(&'a K),
    /// The watch listed everything again (after a restart of the watch): anything may
    /// have changed.
    Relisted,
}

/// The cache `writer` fills with every `K` in the cluster, pruned to what the operator
/// reads ([`prune`]), and the watch that fills it. `on_change` runs after each
/// change is in the cache; an update that only touched pruned fields (a node's
/// heartbeat, a pod's IP) is no change: it reaches neither `on_change` nor the
/// subscriptions.
pub fn watch_all<K>(
    client: &kube::Client,
    mut writer: reflector::store::Writer<K>,
    on_change: impl Fn(Touched<'_, K>) + Send + 'static,
) -> (Watched<K>, impl Future<Output = ()> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + prune::Pruned
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let watched = Watched {
        store: writer.as_reader(),
        subscribers: Arc::default(),
    };
    let fan_out = Watched {
        store: watched.store.clone(),
        subscribers: watched.subscribers.clone(),
    };
    let watch = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(prune::Pruned::prune)
        .for_each(move |event| {
            if let Err(error) = &event {
                // Retried with the watcher's backoff (up to 30 s apart), so logged as often.
                warn!(kind = %K::kind(&()), %error, "watch failed; retrying with backoff. If it is refused, may the operator's ServiceAccount list and watch this kind?");
            }
            if let Ok(event) = event {
                // Compared with the cache before the cache takes the event in. During a
                // relist the cache still holds the old objects until `InitDone`.
                let differs = |object: &K| {
                    let cached = fan_out.store.get(&ObjectRef::from_obj(object));
                    cached.is_none_or(|cached| !cached.same(object))
                };
                let publish = match &event {
                    watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                        differs(object).then(|| object.clone())
                    }
                    watcher::Event::Delete(object) => Some(object.clone()),
                    watcher::Event::Init | watcher::Event::InitDone => None,
                };
                writer.apply_watcher_event(&event);
                match &event {
                    watcher::Event::Apply(object) if publish.is_some() => {
                        on_change(Touched::Applied(object));
                    }
                    watcher::Event::Delete(object) => on_change(Touched::Deleted(object)),
                    watcher::Event::InitDone => on_change(Touched::Relisted),
                    _ => {}
                }
                if let Some(object) = publish {
                    fan_out.publish(object);
                }
            }
            async {}
        });
    (watched, watch)
}

/// Whether the cluster caches (nodes, pods, sites) have their first full list; set once
/// by [`await_synced`], awaited by every task that needs them.
#[derive(Clone)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// Whether the caches are synced now.
    pub fn is_synced(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the caches are synced; never returns if the sync task is gone (the
    /// process is exiting then).
    pub async fn wait(&self) {
        let mut synced = self.0.clone();
        if synced.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The flag, and the task that sets it once `caches` are all ready.
pub fn await_synced(
    caches: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> (Synced, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = watch::channel(false);
    let task = async move {
        for cache in caches {
            cache.await;
        }
        tx.send_replace(true);
        // The flag lives as long as the process: a closed channel would read as "never".
        std::future::pending::<()>().await;
    };
    (Synced(rx), task)
}

/// Waits until a cache has its first full list. The store's readiness future keeps one
/// waker only (the controller waits on the jobs store too), so it is polled with a short
/// timeout rather than awaited once.
pub async fn wait_ready<K: kube::Resource + Clone + 'static>(store: Store<K>)
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready())
        .await
        .is_err()
    {}
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;

    use super::*;

    fn config_map(name: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
    }

    #[test]
    fn a_subscription_starts_with_the_cache_and_registers_when_first_polled() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        writer.apply_watcher_event(&watcher::Event::Apply(config_map("cached")));
        let watched = Watched {
            store,
            subscribers: Arc::default(),
        };
        let mut subscription = Box::pin(watched.subscribe());
        // Not polled yet: nothing is buffered for it.
        watched.publish(config_map("unseen"));
        let mut next = || {
            let item = subscription.next().now_or_never().flatten();
            item.map(|c| c.name_any())
        };
        assert_eq!(next().as_deref(), Some("cached"));
        watched.publish(config_map("changed"));
        assert_eq!(next().as_deref(), Some("changed"));
        assert_eq!(next(), None, "nothing else yet");
        drop(subscription);
        watched.publish(config_map("after"));
        assert!(
            watched.subscribers.lock().unwrap().is_empty(),
            "a subscription that went away is forgotten"
        );
    }
}
