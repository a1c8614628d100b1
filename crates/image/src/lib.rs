//! Images: a content-addressed blob store and a registry client (OCI distribution).

pub mod digest;
pub mod reference;
pub mod store;

pub use digest::{Digest, DigestError};
pub use reference::{Reference, ReferenceError};
pub use store::{BlobStore, PutOutcome, StoreError};
