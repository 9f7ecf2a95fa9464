//! A labelled namespace per test, with a state dump when the test fails.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::ControlPlane;

/// The label every test namespace carries.
pub const E2E_LABEL: &str = "verdant.dev/e2e";

/// A namespace owned by one test. When the test panics, dropping it prints the
/// namespace's pods, Verdant objects, nodes and events, so a red test explains itself.
///
/// The namespace itself is left in place: the whole control plane is removed when the
/// test process ends.
pub struct TestNamespace {
    name: String,
    kubeconfig: std::path::PathBuf,
    kubectl: std::path::PathBuf,
}

impl TestNamespace {
    /// Creates `e2e-<test>-<suffix>`, labelled, and waits for the `default` ServiceAccount
    /// that kube-controller-manager creates (pods cannot be created before it exists).
    pub async fn create(
        plane: &ControlPlane,
        client: &kube::Client,
        test: &str,
    ) -> anyhow::Result<Self> {
        let name = format!("e2e-{}-{}", sanitize(test), crate::unique_suffix());
        Self::create_named(plane, client, test, &name).await
    }

    /// [`Self::create`] with the name `name`: the same namespace in another cluster (a
    /// MultiKueue worker keeps the manager's namespaces).
    pub async fn create_named(
        plane: &ControlPlane,
        client: &kube::Client,
        test: &str,
        name: &str,
    ) -> anyhow::Result<Self> {
        let name = name.to_owned();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(E2E_LABEL.to_owned(), test.to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        crate::wait::until(
            &format!("the default ServiceAccount of namespace {name}"),
            std::time::Duration::from_secs(60),
            || async {
                Ok(match accounts.get_opt("default").await? {
                    Some(_) => Ok(()),
                    None => Err("not created yet".to_owned()),
                })
            },
        )
        .await?;
        Ok(Self {
            name,
            kubeconfig: plane.kubeconfig().to_path_buf(),
            kubectl: plane.tools_bin().join("kubectl"),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Prints the state of the namespace and of the cluster-scoped Verdant objects.
    pub fn dump(&self) {
        let ns = self.name.as_str();
        let sections: [(&str, Vec<&str>); 5] = [
            (
                "trainingjobs",
                vec!["get", "trainingjobs", "-n", ns, "-o", "yaml"],
            ),
            ("pods", vec!["get", "pods", "-n", ns, "-o", "wide"]),
            (
                "events",
                vec!["get", "events", "-n", ns, "--sort-by", ".lastTimestamp"],
            ),
            ("energysites", vec!["get", "energysites", "-o", "wide"]),
            ("nodes", vec!["get", "nodes", "-L", "verdant.dev/site"]),
        ];
        eprintln!("===== state of namespace {ns} at failure =====");
        for (title, args) in sections {
            let text = std::process::Command::new(&self.kubectl)
                .env("KUBECONFIG", &self.kubeconfig)
                .args(&args)
                .output()
                .map(|o| {
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_else(|e| format!("(unavailable: {e})"));
            eprintln!("--- {title} ---\n{text}");
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
    }
}

fn sanitize(test: &str) -> String {
    let cleaned: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    cleaned.trim_matches('-').chars().take(40).collect()
}
