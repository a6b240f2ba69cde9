//! Service names and the rules that turn a request's `Host` / `:authority` into one.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::sync::Arc;

/// A service's name as discovery knows it (`world`), lower-case, without port or suffix.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(Arc<str>);

impl ServiceName {
    /// Builds a name from text that is already normalised (discovery keys, config).
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by name can be searched with a `&str`, so a request's lookup allocates nothing.
impl Borrow<str> for ServiceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Written and read as the plain name, as config files and the routes' wire form hold it.
impl serde::Serialize for ServiceName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ServiceName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <Cow<'de, str>>::deserialize(d)?;
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "invalid service name {name:?}"
            )));
        }
        Ok(Self::new(&name))
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// How authorities map to service names: which domain suffixes mean "this cluster".
#[derive(Clone, Debug)]
pub struct NameRules {
    /// Longest first, each starting with a dot, e.g. `.default.svc.cluster.local`.
    suffixes: Vec<String>,
}

impl NameRules {
    pub fn new(suffixes: &[String]) -> Self {
        let mut suffixes: Vec<String> = suffixes
            .iter()
            .map(|s| {
                let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
                if s.starts_with('.') {
                    s
                } else {
                    format!(".{s}")
                }
            })
            .filter(|s| s.len() > 1)
            .collect();
        suffixes.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { suffixes }
    }

    /// The suffixes Kubernetes gives a service in `namespace` of `cluster_domain`.
    pub fn kubernetes_suffixes(namespace: &str, cluster_domain: &str) -> Vec<String> {
        vec![
            format!(".{namespace}.svc.{cluster_domain}"),
            format!(".{namespace}.svc"),
            format!(".{namespace}"),
        ]
    }

    /// `world`, `world:7778`, `World.default.svc.cluster.local.` → `world`.
    /// Returns `None` for an authority that cannot name a service (empty, bad characters).
    /// The name is borrowed from the authority when that is already lower-case (as it nearly
    /// always is), so naming a request's service allocates nothing.
    pub fn service_name<'a>(&self, authority: &'a str) -> Option<Cow<'a, str>> {
        // ASCII trims and byte searches: this runs on every request, and the general
        // (Unicode, any-pattern) forms cost several times more on a short name.
        let host = strip_port(authority.trim_ascii());
        let host = host.trim_end_matches('.');
        if host.is_empty() || host.len() > 253 {
            return None;
        }
        let valid = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid {
            return None;
        }
        let lower = match host.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(host.to_ascii_lowercase()),
            false => Cow::Borrowed(host),
        };
        let cut = self
            .suffixes
            .iter()
            .find_map(|s| lower.strip_suffix(s.as_str()))
            .map(str::len);
        let name = match (lower, cut) {
            (Cow::Borrowed(h), Some(n)) => Cow::Borrowed(&h[..n]),
            (Cow::Owned(mut h), Some(n)) => {
                h.truncate(n);
                Cow::Owned(h)
            }
            (name, None) => name,
        };
        (!name.is_empty()).then_some(name)
    }
}

impl Default for NameRules {
    fn default() -> Self {
        Self::new(&Self::kubernetes_suffixes("default", "cluster.local"))
    }
}

fn strip_port(authority: &str) -> &str {
    // Bracketed IPv6 literals keep their colons.
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.bytes().rposition(|b| b == b':') {
        Some(i) if authority.as_bytes()[i + 1..].iter().all(u8::is_ascii_digit) => &authority[..i],
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kubernetes_spelling_names_the_same_service() {
        let rules = NameRules::default();
        for a in [
            "world",
            "world:7778",
            "world.default",
            "World.default.svc",
            "world.default.svc.cluster.local",
            "world.default.svc.cluster.local.:80",
        ] {
            assert_eq!(rules.service_name(a).as_deref(), Some("world"), "{a}");
        }
    }

    #[test]
    fn a_lower_case_authority_is_borrowed_not_copied() {
        let rules = NameRules::default();
        let key = rules.service_name("world.default.svc:80").unwrap();
        assert!(matches!(key, Cow::Borrowed("world")), "{key:?}");
        let key = rules.service_name("World.default").unwrap();
        assert!(matches!(&key, Cow::Owned(k) if k == "world"), "{key:?}");
    }

    #[test]
    fn other_namespaces_keep_their_namespace() {
        let rules = NameRules::default();
        assert_eq!(
            rules
                .service_name("world.prod.svc.cluster.local")
                .as_deref(),
            Some("world.prod.svc.cluster.local")
        );
    }

    #[test]
    fn garbage_names_no_service() {
        let rules = NameRules::default();
        assert!(rules.service_name("").is_none());
        assert!(rules.service_name(":80").is_none());
        assert!(rules.service_name("a b").is_none());
        assert!(rules.service_name(".default").is_none());
    }
}
