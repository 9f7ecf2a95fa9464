//! What the simulated GPUs are called and how much memory they have.

/// A stable, UUID-shaped identifier for GPU `index` of `node`.
pub fn simulated_uuid(node: &str, index: u32) -> String {
    let a = fnv1a64(format!("{node}/{index}/a").as_bytes());
    let b = fnv1a64(format!("{node}/{index}/b").as_bytes());
    format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// GiB of memory from a model name such as `NVIDIA H100 80GB HBM3`; 80 when it says none.
pub fn memory_gib_from_model(model: &str) -> u64 {
    model
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|word| word.strip_suffix("GB").and_then(|n| n.parse().ok()))
        .unwrap_or(80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_per_node_and_index() {
        assert_eq!(simulated_uuid("n1", 0), simulated_uuid("n1", 0));
        assert_ne!(simulated_uuid("n1", 0), simulated_uuid("n1", 1));
        assert_ne!(simulated_uuid("n1", 0), simulated_uuid("n2", 0));
        assert_eq!(simulated_uuid("n1", 0).len(), 40);
        assert_eq!(memory_gib_from_model("NVIDIA A100-SXM4-40GB"), 40);
        assert_eq!(memory_gib_from_model("NVIDIA L4"), 80);
    }
}
