//! The fallback attribution: compute pid → `/proc/<pid>/cgroup` → pod UID and container
//! ID. Needs the host's pids (the agent runs with `hostPID: true`, or the host's `/proc`
//! mounted at `--proc-root`).

use std::path::Path;

/// The pod (and container) a process belongs to, from its cgroup path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupOwner {
    /// The pod's UID (`metadata.uid`).
    pub pod_uid: String,
    /// The container runtime's ID of the container, when the path names it.
    pub container_id: Option<String>,
}

/// Reads `<proc_root>/<pid>/cgroup`. `Ok(None)` when the process is not in a pod; an error
/// when the file cannot be read (the process ended, or no access).
pub fn owner_of_pid(proc_root: &Path, pid: u32) -> std::io::Result<Option<CgroupOwner>> {
    let contents = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup"))?;
    Ok(parse_cgroup(&contents))
}

/// Finds the pod UID and container ID in the contents of a `/proc/<pid>/cgroup` file,
/// for both cgroup drivers and both cgroup versions:
///
/// - cgroupfs: `…/kubepods/burstable/pod<uid>/<container-id>`
/// - systemd: `…/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope`
///   (also `crio-<id>.scope` and `docker-<id>.scope`)
pub fn parse_cgroup(contents: &str) -> Option<CgroupOwner> {
    contents.lines().find_map(|line| {
        // `hierarchy-ID:controllers:path`; the path may itself contain ':'.
        let path = line.splitn(3, ':').nth(2)?;
        if !path.contains("kubepods") {
            return None;
        }
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (pos, pod_uid) = segments
            .iter()
            .enumerate()
            .find_map(|(i, s)| pod_uid_of_segment(s).map(|uid| (i, uid)))?;
        let container_id = segments
            .get(pos + 1)
            .and_then(|s| container_id_of_segment(s));
        Some(CgroupOwner {
            pod_uid,
            container_id,
        })
    })
}

fn pod_uid_of_segment(segment: &str) -> Option<String> {
    let name = segment.strip_suffix(".slice").unwrap_or(segment);
    let at = name.rfind("pod")?;
    let uid = &name[at + 3..];
    let looks_like_uid = uid.len() == 36
        && uid
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '-' || c == '_');
    looks_like_uid.then(|| uid.replace('_', "-"))
}

fn container_id_of_segment(segment: &str) -> Option<String> {
    let name = segment.strip_suffix(".scope").unwrap_or(segment);
    let id = ["cri-containerd-", "crio-", "docker-", "containerd-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name);
    (id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3b5e1c2d-7f00-4a1b-9c3d-0123456789ab";
    const CID: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

    #[test]
    fn systemd_driver_cgroup_v2() {
        let line = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope\n",
            UID.replace('-', "_")
        );
        assert_eq!(
            parse_cgroup(&line),
            Some(CgroupOwner {
                pod_uid: UID.into(),
                container_id: Some(CID.into())
            })
        );
    }

    #[test]
    fn cgroupfs_driver_cgroup_v1_guaranteed_pod() {
        let contents = format!(
            "12:pids:/user.slice\n11:memory:/kubepods/pod{UID}/{CID}\n1:name=systemd:/kubepods/pod{UID}/{CID}\n"
        );
        assert_eq!(
            parse_cgroup(&contents),
            Some(CgroupOwner {
                pod_uid: UID.into(),
                container_id: Some(CID.into())
            })
        );
    }

    #[test]
    fn crio_and_pod_level_paths() {
        let crio = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{CID}.scope",
            UID.replace('-', "_")
        );
        assert_eq!(
            parse_cgroup(&crio).unwrap().container_id.as_deref(),
            Some(CID)
        );
        let pod_only = format!("0::/kubepods/besteffort/pod{UID}");
        assert_eq!(
            parse_cgroup(&pod_only),
            Some(CgroupOwner {
                pod_uid: UID.into(),
                container_id: None
            })
        );
    }

    #[test]
    fn processes_outside_pods_have_no_owner() {
        assert_eq!(
            parse_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
        assert_eq!(
            parse_cgroup("0::/kubepods.slice/kubepods-burstable.slice\n"),
            None
        );
        assert_eq!(parse_cgroup(""), None);
    }

    #[test]
    fn reads_a_proc_tree() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("4242")).unwrap();
        std::fs::write(
            root.path().join("4242/cgroup"),
            format!("0::/kubepods/burstable/pod{UID}/{CID}\n"),
        )
        .unwrap();
        let owner = owner_of_pid(root.path(), 4242).unwrap().unwrap();
        assert_eq!(owner.pod_uid, UID);
        assert!(owner_of_pid(root.path(), 1).is_err());
    }
}
