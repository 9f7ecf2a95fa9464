//! Placeholder until the energy bench lands.
fn main() {}
