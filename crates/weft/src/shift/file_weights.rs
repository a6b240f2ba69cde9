//! A service's route weights in a discovery file, read and rewritten in place: only the
//! weight numbers change, so comments and layout stay; the new text is checked as a proxy
//! would read it, then swapped in whole (write, then rename) for the watchers to see once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use toml::Spanned;

use super::RuleWeights;

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    services: BTreeMap<String, Service>,
}

#[derive(Deserialize)]
struct Service {
    #[serde(default)]
    routes: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    name: String,
    backends: Vec<Spanned<Backend>>,
}

#[derive(Deserialize)]
struct Backend {
    service: String,
    #[serde(default)]
    weight: Option<Spanned<u32>>,
}

pub struct FileWeights {
    path: PathBuf,
    service: String,
    /// The rules it moves: those of the service that list the canary (or the one named).
    rules: Vec<String>,
}

impl FileWeights {
    /// The rules of `service` in `path` that send to `canary` (only `route`, when named).
    pub fn find(
        path: &Path,
        service: &str,
        canary: &str,
        route: Option<&str>,
    ) -> anyhow::Result<Self> {
        let doc = read(path)?.1;
        let svc = doc
            .services
            .get(service)
            .with_context(|| format!("{}: no service {service:?}", path.display()))?;
        let rules: Vec<String> = svc
            .routes
            .iter()
            .filter(|r| route.is_none_or(|n| n == r.name))
            .filter(|r| r.backends.iter().any(|b| b.get_ref().service == canary))
            .map(|r| r.name.clone())
            .collect();
        if rules.is_empty() {
            bail!(
                "{}: no route of {service:?}{} has the backend {canary:?}",
                path.display(),
                route.map(|r| format!(" named {r:?}")).unwrap_or_default()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            service: service.to_string(),
            rules,
        })
    }

    pub fn get(&self) -> anyhow::Result<Vec<RuleWeights>> {
        let doc = read(&self.path)?.1;
        let routes = doc
            .services
            .get(&self.service)
            .map(|s| &s.routes[..])
            .unwrap_or_default();
        Ok(routes
            .iter()
            .filter(|r| self.rules.contains(&r.name))
            .map(|r| RuleWeights {
                rule: r.name.clone(),
                weights: r
                    .backends
                    .iter()
                    .map(|b| {
                        let b = b.get_ref();
                        (
                            b.service.clone(),
                            b.weight.as_ref().map_or(1, |w| *w.get_ref()),
                        )
                    })
                    .collect(),
            })
            .collect())
    }

    pub fn set(&self, wanted: &[RuleWeights]) -> anyhow::Result<()> {
        let (text, doc) = read(&self.path)?;
        let routes = doc
            .services
            .get(&self.service)
            .map(|s| &s.routes[..])
            .unwrap_or_default();
        // (where, how much to replace, with what), applied from the end.
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        for rule in routes {
            let Some(w) = wanted.iter().find(|w| w.rule == rule.name) else {
                continue;
            };
            for b in &rule.backends {
                let Some((_, weight)) = w.weights.iter().find(|(s, _)| *s == b.get_ref().service)
                else {
                    continue;
                };
                match &b.get_ref().weight {
                    Some(old) => {
                        let span = old.span();
                        edits.push((span.start, span.end - span.start, weight.to_string()));
                    }
                    None => {
                        let span = b.span();
                        let inline = text[span.clone()].trim_end().ends_with('}');
                        if !inline {
                            bail!(
                                "{}: backend {} of route {:?} has no weight to change: write `weight = 1` in it",
                                self.path.display(),
                                b.get_ref().service,
                                rule.name
                            );
                        }
                        let close = span.start + text[span.clone()].rfind('}').unwrap_or(0);
                        edits.push((close, 0, format!(", weight = {weight} ")));
                    }
                }
            }
        }
        edits.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut next = text.clone();
        for (at, len, with) in edits {
            next.replace_range(at..at + len, &with);
        }
        weft_discovery::Table::parse(&self.path, &next)
            .map_err(|e| anyhow::anyhow!("the rewritten file would not read: {e}"))?;
        let tmp = self.path.with_extension("shift.tmp");
        std::fs::write(&tmp, &next).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(())
    }
}

fn read(path: &Path) -> anyhow::Result<(String, Doc)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!(weft_core::source::SourceError::from_toml(path, &text, &e)))?;
    Ok((text, doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_change_in_place_and_nothing_else_does() {
        let dir = std::env::temp_dir().join(format!("weft-shift-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("discovery.toml");
        let text = "# mine\n[[services.world.routes]]\nname = \"split\"   # keep\nbackends = [{ service = \"world-v1\", weight = 100 }, { service = \"world-v2\" }]\n\n[services.world-v1]\n[services.world-v2]\n";
        std::fs::write(&path, text).unwrap();
        let f = FileWeights::find(&path, "world", "world-v2", None).unwrap();
        assert_eq!(f.get().unwrap()[0].weights[1], ("world-v2".to_string(), 1));
        let want = RuleWeights {
            rule: "split".into(),
            weights: vec![("world-v1".into(), 90), ("world-v2".into(), 10)],
        };
        f.set(std::slice::from_ref(&want)).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(
            after.starts_with("# mine\n") && after.contains("# keep"),
            "{after}"
        );
        assert_eq!(f.get().unwrap(), vec![want]);
        assert!(FileWeights::find(&path, "world", "world-v9", None).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
