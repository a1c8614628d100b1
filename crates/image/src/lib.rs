//! Images: a content-addressed blob store and a registry client (OCI distribution).
