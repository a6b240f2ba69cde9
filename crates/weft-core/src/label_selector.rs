//! Kubernetes label selectors as a `labelSelector` query parameter spells them
//! (`service=world,window in (30s),!canary`): what an HPA's `metric.selector` becomes on
//! the way to an external metrics server. Set-based and equality-based requirements; the
//! numeric `<`/`>` forms, which no external metric here has a use for, are refused.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    pub fn key(&self) -> &str {
        match self {
            Self::In(k, _) | Self::NotIn(k, _) | Self::Exists(k) | Self::DoesNotExist(k) => k,
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            // As Kubernetes reads it: a label that is absent is not in any set.
            Self::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Self::Exists(k) => labels.contains_key(k),
            Self::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// Every requirement must hold; an empty selector takes everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("label selector {selector:?}: {why}")]
pub struct SelectorError {
    pub selector: String,
    pub why: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let fail = |why: String| SelectorError {
            selector: text.to_string(),
            why,
        };
        let mut out = Vec::new();
        for part in split_top(text).map_err(fail)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(fail("an empty requirement".into()));
            }
            out.push(requirement(part).map_err(fail)?);
        }
        Ok(Self(out))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    /// The one value `key` must have, if a requirement pins it (`key=v`, `key in (v)`).
    pub fn pinned(&self, key: &str) -> Option<&str> {
        self.0.iter().find_map(|r| match r {
            Requirement::In(k, vs) if k == key && vs.len() == 1 => Some(vs[0].as_str()),
            _ => None,
        })
    }

    /// The selector without requirements on `key`.
    pub fn without(&self, key: &str) -> Self {
        Self(self.0.iter().filter(|r| r.key() != key).cloned().collect())
    }
}

/// Splits at commas outside parentheses.
fn split_top(text: &str) -> Result<Vec<&str>, String> {
    let (mut depth, mut start, mut parts) = (0u32, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("an unopened ')'")?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("an unclosed '('".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_of(key.trim())?));
    }
    for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (key_of(k.trim())?, value_of(v.trim())?);
            return Ok(if negated {
                Requirement::NotIn(k, vec![v])
            } else {
                Requirement::In(k, vec![v])
            });
        }
    }
    if part.contains(['<', '>']) {
        return Err(format!(
            "{part:?}: numeric comparisons are not supported here"
        ));
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = key_of(words.next().unwrap_or("").trim())?;
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Requirement::Exists(key));
    };
    let (negated, set) = if let Some(s) = rest.strip_prefix("notin") {
        (true, s)
    } else if let Some(s) = rest.strip_prefix("in") {
        (false, s)
    } else {
        return Err(format!(
            "{part:?}: expected =, ==, !=, in or notin after {key:?}"
        ));
    };
    let inner = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("{part:?}: a set is written (a, b)"))?;
    let values = inner
        .split(',')
        .map(|v| value_of(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if negated {
        Requirement::NotIn(key, values)
    } else {
        Requirement::In(key, values)
    })
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 of
/// `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn key_of(k: &str) -> Result<String, String> {
    let name = k.rsplit_once('/').map_or(k, |(_, n)| n);
    if !is_name(name) || k.len() > 316 {
        return Err(format!("{k:?} is not a label key"));
    }
    Ok(k.to_string())
}

/// A label value: empty, or a name as a key's.
fn value_of(v: &str) -> Result<String, String> {
    if !v.is_empty() && !is_name(v) {
        return Err(format!("{v:?} is not a label value"));
    }
    Ok(v.to_string())
}

fn is_name(s: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !s.is_empty()
        && s.len() <= 63
        && alnum(s.chars().next())
        && alnum(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requirements_as_kubernetes_reads_them() {
        let s =
            Selector::parse("service=world, window in (30s), tier != db, !canary, zone").unwrap();
        assert_eq!(s.pinned("service"), Some("world"));
        assert_eq!(s.pinned("window"), Some("30s"));
        let ok = labels(&[("service", "world"), ("window", "30s"), ("zone", "a")]);
        assert!(s.matches(&ok));
        let mut canary = ok.clone();
        canary.insert("canary".into(), "yes".into());
        assert!(!s.matches(&canary));
        assert!(!s.matches(&labels(&[("service", "world"), ("window", "30s")])));
        assert!(Selector::parse("").unwrap().matches(&BTreeMap::new()));
        let notin = Selector::parse("service notin (a,b)").unwrap();
        assert!(notin.matches(&BTreeMap::new()));
        assert!(!notin.matches(&labels(&[("service", "a")])));
        assert_eq!(
            Selector::parse("service==world")
                .unwrap()
                .without("service"),
            Selector::default()
        );
    }

    #[test]
    fn malformed_selectors_say_why() {
        for bad in [
            "service=",
            "=world",
            "service in (a",
            "service in a",
            "a)",
            "service=wor ld",
            "replicas>3",
            "service=world,,x=y",
            "service maybe (a)",
        ] {
            let e = Selector::parse(bad);
            // `service=` is a valid requirement: the label is present and empty.
            if bad == "service=" {
                assert!(e.is_ok());
                continue;
            }
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        }
    }
}
