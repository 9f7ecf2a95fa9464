//! The node agent, built inside the test crate so the end-to-end tests can run it as a
//! real process: the same `verdant_agent::app::main` as `verdant-agent`.

fn main() -> anyhow::Result<()> {
    verdant_agent::app::main()
}
