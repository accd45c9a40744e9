//! Discovery providers: where backends come from. Each provider reports the
//! complete list of backends it knows whenever that list changes; the
//! registry keeps one slice per provider.

pub mod static_file;
