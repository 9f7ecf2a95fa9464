//! Energy in the operator: forecast providers and the `verdant-operator energy` command.
//! The physical models live in `verdant_core::energy`, a site's plant from its spec in
//! `verdant_crds::plant`.

pub mod cli;
pub mod forecast;
