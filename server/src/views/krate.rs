//! A crate's pages: the crate page, its features, builds and logs.
