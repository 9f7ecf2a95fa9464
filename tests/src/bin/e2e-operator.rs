//! The operator, built inside the test crate so the end-to-end tests can run it as a real
//! process (and SIGKILL it): the same `verdant_operator::cli::main` as `verdant-operator`.

fn main() -> anyhow::Result<()> {
    verdant_operator::cli::main()
}
