//! What a tap may show and how many may watch (`[tap]`): tapping is for the node's own
//! operators (loopback) and the dashboard's mesh identity, and it never slows traffic.

use serde::{Deserialize, Serialize};

use crate::tap::NEVER_SHOWN;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TapConfig {
    /// Header names (request or response) whose values a tap shows; of the others only
    /// the name. `authorization`, `cookie`, `set-cookie` and `proxy-authorization` are
    /// never shown, and naming them here is an error.
    pub show_headers: Vec<String>,
    /// Subscribers at once on this proxy; past it a new one is refused.
    pub max_subscribers: usize,
    /// Events held for one subscriber; a subscriber this far behind is dropped, told why.
    pub buffer: usize,
}

impl Default for TapConfig {
    fn default() -> Self {
        Self {
            show_headers: vec!["content-type".into(), "user-agent".into()],
            max_subscribers: 16,
            buffer: 1024,
        }
    }
}

impl TapConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        for name in &self.show_headers {
            if http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("tap.show_headers: {name:?} is not a header name"));
            }
            if NEVER_SHOWN.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                return Err(format!(
                    "tap.show_headers: {name:?} holds credentials and is never shown"
                ));
            }
        }
        if !(1..=1024).contains(&self.max_subscribers) {
            return Err("tap.max_subscribers must be between 1 and 1024".into());
        }
        if !(16..=65536).contains(&self.buffer) {
            return Err("tap.buffer must be between 16 and 65536".into());
        }
        Ok(())
    }
}
