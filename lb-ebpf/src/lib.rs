//! Placeholder library so `lb-agent` can name this crate as a build-dependency (cargo then
//! rebuilds the object when this crate or `lb-common` changes). The program is `src/main.rs`.
#![no_std]
