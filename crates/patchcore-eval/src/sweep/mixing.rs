//! What makes runs one sweep: the same non-swept config (compared key by key), data, code
//! version and interval level. `merge` refuses anything else, naming what differs.

use std::collections::BTreeMap;

use patchcore_core::{Error, Result};
use serde_json::Value;

use super::table::RunRow;

/// `v` as dotted keys (`sampler.ratio`), leaves only.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// The report's config as dotted keys without the keys it overrides (swept) or its seeds.
pub(super) fn base_config(v: &Value) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    flatten("", &v["config"], &mut all);
    let swept: Vec<String> = v["overrides"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    all.retain(|k, _| {
        !swept
            .iter()
            .any(|s| k == s || k.starts_with(&format!("{s}.")))
            && k != "seed"
            && k != "seeds"
            && !k.starts_with("overrides.")
    });
    all
}

/// Refuses runs that are not of one sweep: a non-swept config key, the data, the code
/// version or the interval level differing from the first run's (the message names them).
pub(super) fn check_one_sweep(runs: &[RunRow]) -> Result<()> {
    let first = &runs[0];
    for r in &runs[1..] {
        let mut differ: Vec<String> = first
            .base
            .keys()
            .chain(r.base.keys())
            .filter(|k| first.base.get(*k) != r.base.get(*k))
            .map(|k| {
                let show = |v: Option<&Value>| v.map_or("absent".to_string(), Value::to_string);
                format!(
                    "`{k}` ({} vs {})",
                    show(first.base.get(k)),
                    show(r.base.get(k))
                )
            })
            .collect();
        differ.dedup();
        if first.data_sha256 != r.data_sha256 {
            differ.push(format!(
                "the data (SHA-256 {:.12} vs {:.12})",
                first.data_sha256, r.data_sha256
            ));
        }
        if first.code_version != r.code_version {
            differ.push(format!(
                "the code ({} vs {})",
                first.code_version, r.code_version
            ));
        }
        if first.ci_level != r.ci_level {
            differ.push(format!(
                "`protocol.ci_level` ({} vs {})",
                first.ci_level, r.ci_level
            ));
        }
        if !differ.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} and {} are not runs of one sweep: they differ in {}; re-run the odd ones, \
                 or merge them separately",
                first.report.display(),
                r.report.display(),
                differ.join(", ")
            )));
        }
    }
    Ok(())
}
