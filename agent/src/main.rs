//! `verdant-agent`: the thin binary around the agent library.

fn main() -> anyhow::Result<()> {
    verdant_agent::app::main()
}
