//! The operator's event recorder (`verdant_operator::events`) against a real
//! kube-apiserver: a repeat is a count on the first Event's series, another reason is an
//! Event of its own, and a repeat whose Event is gone is written anew.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use verdant_operator::events::{Event, EventType, Recorder, Reporter};
use verdant_tests::{ControlPlane, TestNamespace};

fn event(reason: &str, note: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.to_owned(),
        note: Some(note.to_owned()),
        action: "Test".to_owned(),
        secondary: None,
    }
}

/// The Events of `reason`, as the API server has them.
async fn events_of(events: &Api<K8sEvent>, reason: &str) -> anyhow::Result<Vec<K8sEvent>> {
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect())
}

#[tokio::test]
async fn a_repeated_event_is_counted_on_the_first_ones_series() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let ns = TestNamespace::create(plane, &client, "events").await?;
    let subject = Api::<ConfigMap>::namespaced(client.clone(), ns.name())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "subject"}}))?,
        )
        .await?;
    let on = subject.object_ref(&());
    let events: Api<K8sEvent> = Api::namespaced(client.clone(), ns.name());
    let reporter = Reporter {
        controller: "verdant-test".into(),
        instance: Some("test-0".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);

    for note in ["first", "second", "third"] {
        recorder.publish(&event("Placed", note), &on).await?;
    }
    recorder.publish(&event("Waiting", "no GPUs"), &on).await?;

    let placed = events_of(&events, "Placed").await?;
    assert_eq!(placed.len(), 1, "one Event for the repeats: {placed:?}");
    let series = placed[0].series.as_ref().expect("a series");
    assert_eq!(series.count, 3);
    assert_eq!(placed[0].note.as_deref(), Some("first"));
    assert_eq!(
        placed[0].reporting_controller.as_deref(),
        Some("verdant-test")
    );
    assert_eq!(placed[0].reporting_instance.as_deref(), Some("test-0"));
    assert_eq!(
        placed[0].regarding.as_ref().and_then(|r| r.uid.clone()),
        subject.uid()
    );
    let waiting = events_of(&events, "Waiting").await?;
    assert_eq!(waiting.len(), 1);
    assert!(
        waiting[0].series.is_none(),
        "a first occurrence has no series"
    );
    assert_eq!(recorder.forget_old(), 2, "two recent Events remembered");

    // The Event is gone (expired, or deleted by hand): the repeat is a new Event.
    events
        .delete(&placed[0].name_any(), &DeleteParams::default())
        .await?;
    recorder.publish(&event("Placed", "fourth"), &on).await?;
    let placed = events_of(&events, "Placed").await?;
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(placed[0].note.as_deref(), Some("fourth"));
    assert!(placed[0].series.is_none());
    Ok(())
}
