//! `verdant-agent`: the GPU node agent. For now it only prints its version; sampling and
//! reporting arrive with the agent issue.

fn main() {
    println!("verdant-agent {}", env!("CARGO_PKG_VERSION"));
}
