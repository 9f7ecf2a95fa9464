//! The operator's errors.

/// What can go wrong while reconciling a TrainingJob.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed while {action}: {source}")]
    Kube {
        /// What the operator was doing.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The finalizer machinery failed.
    #[error("finalizer error: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The object is invalid in a way the API server's validation could not catch.
    #[error("invalid TrainingJob: {0}")]
    Invalid(String),
    /// The API server rejected an object the operator built for the job (HTTP 400 or
    /// 422): the same request would be rejected again, so retrying cannot help.
    #[error("the API server rejected {object}: {message}")]
    Rejected {
        /// What was rejected, e.g. `pod train-0`.
        object: String,
        /// The API server's message, naming the field.
        message: String,
    },
}

impl Error {
    /// A short label for the `verdant_reconcile_errors_total` metric.
    pub fn metric_label(&self) -> &'static str {
        use kube::runtime::finalizer::Error as FinalizerError;
        match self {
            Error::Kube { source, .. } if rejection(source).is_some() => "invalid",
            Error::Kube { .. } => "kube",
            // The finalizer wraps every error of apply and cleanup: label the cause.
            Error::Finalizer(e) => match e.as_ref() {
                FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => {
                    inner.metric_label()
                }
                // The finalizer patch tests the list it read from the cache; a 422 (the
                // test failed) or a 409 means the cache was behind the API server.
                FinalizerError::AddFinalizer(kube::Error::Api(status))
                | FinalizerError::RemoveFinalizer(kube::Error::Api(status))
                    if matches!(status.code, 409 | 422) =>
                {
                    "conflict"
                }
                _ => "finalizer",
            },
            Error::Invalid(_) | Error::Rejected { .. } => "invalid",
        }
    }

    /// Whether the object itself is at fault, so that only a change to it can help.
    pub fn is_invalid(&self) -> bool {
        self.metric_label() == "invalid"
    }

    /// Whether the job was read from a cache that had not yet seen its latest write: the
    /// finalizer patch's test of the list failed. The watch brings the newer job at once,
    /// so a retry soon succeeds; nothing is wrong with the job or the cluster.
    pub fn is_conflict(&self) -> bool {
        self.metric_label() == "conflict"
    }

    /// Whether the API server refused to create something because the namespace is
    /// being deleted (403 with the cause `NamespaceTerminating`).
    pub fn is_namespace_terminating(&self) -> bool {
        let Error::Kube {
            source: kube::Error::Api(status),
            ..
        } = self
        else {
            return false;
        };
        let cause = status.details.as_ref().is_some_and(|d| {
            d.causes
                .iter()
                .any(|c| c.reason == NAMESPACE_TERMINATING_CAUSE)
        });
        status.code == 403 && (cause || status.message.contains("because it is being terminated"))
    }

    /// Wraps a kube error with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

/// The cause the API server gives for a creation refused in a namespace being deleted.
const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// The API server's message when it rejected a request as invalid (HTTP 400 or 422).
pub fn rejection(error: &kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(status) if matches!(status.code, 400 | 422) => {
            Some(status.message.clone())
        }
        _ => None,
    }
}

/// Results of the reconcile steps.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            serde_json::from_value(serde_json::json!({
                "status": "Failure",
                "message": "Pod \"t-0\" is invalid: spec.containers[0].name: Invalid value",
                "reason": "Invalid",
                "code": code,
            }))
            .unwrap(),
        ))
    }

    #[test]
    fn a_rejected_object_counts_as_invalid_even_through_the_finalizer() {
        let rejected = Error::kube("creating pod t-0")(api_error(422));
        assert_eq!(rejected.metric_label(), "invalid");
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::ApplyFailed(
            rejected,
        )));
        assert_eq!(wrapped.metric_label(), "invalid");
        assert!(wrapped.is_invalid());
        let transient = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::CleanupFailed(
            Error::kube("x")(api_error(500)),
        )));
        assert_eq!(transient.metric_label(), "kube");
        assert!(rejection(&api_error(409)).is_none());
        assert!(
            rejection(&api_error(422))
                .unwrap()
                .contains("spec.containers[0].name")
        );
    }

    #[test]
    fn a_finalizer_patch_on_a_stale_job_is_a_conflict_not_a_rejection() {
        use kube::runtime::finalizer::Error as FinalizerError;
        // A failed JSON-patch test is a 422, as a rejected object is; only the call that
        // got it tells them apart.
        for error in [
            FinalizerError::AddFinalizer(api_error(422)),
            FinalizerError::RemoveFinalizer(api_error(422)),
            FinalizerError::AddFinalizer(api_error(409)),
        ] {
            let error = Error::Finalizer(Box::new(error));
            assert_eq!(error.metric_label(), "conflict", "{error}");
            assert!(error.is_conflict());
            assert!(!error.is_invalid(), "a stale read must be retried: {error}");
        }
        let refused = Error::Finalizer(Box::new(FinalizerError::AddFinalizer(api_error(403))));
        assert_eq!(refused.metric_label(), "finalizer");
        assert!(!refused.is_conflict());
        let pod_rejected = Error::kube("creating pod t-0")(api_error(422));
        let rejected_pod = Error::Finalizer(Box::new(FinalizerError::ApplyFailed(pod_rejected)));
        assert!(!rejected_pod.is_conflict());
    }

    #[test]
    fn a_creation_refused_in_a_terminating_namespace_is_recognised() {
        let refused = kube::Error::Api(Box::new(
            serde_json::from_value(serde_json::json!({
                "status": "Failure",
                "message": "pods \"t-0\" is forbidden: unable to create new content in namespace ns because it is being terminated",
                "reason": "Forbidden",
                "details": {"name": "t-0", "kind": "pods", "causes": [
                    {"reason": "NamespaceTerminating", "message": "namespace ns is being terminated", "field": "metadata.namespace"}
                ]},
                "code": 403,
            }))
            .unwrap(),
        ));
        assert!(Error::kube("creating pod t-0")(refused).is_namespace_terminating());
        assert!(!Error::kube("creating pod t-0")(api_error(403)).is_namespace_terminating());
        assert!(!Error::kube("creating pod t-0")(api_error(409)).is_namespace_terminating());
    }
}
