//! Lists across crates: the front page with search, and the queue.
