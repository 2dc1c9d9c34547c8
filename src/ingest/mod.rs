//! Where inbound mail comes from. Each source hands raw bytes to the pipeline and removes a
//! mail from its inbox only after the pipeline's transaction for it has committed.

pub mod imap;
pub mod lmtp;
pub mod maildir;

pub use maildir::Maildir;
