//! `verdant-operator`: the thin binary around the operator library.

fn main() -> anyhow::Result<()> {
    verdant_operator::cli::main()
}
