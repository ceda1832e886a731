//! Config sections owned by other crates.

use patchcore_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A config section that another crate owns (`[protocol]`: patchcore-eval, `[serve]`:
/// patchcore-serve), kept as written so that a model file carries it; its owner parses and
/// checks it with [`Section::parse`] into its own typed, validated parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Section(toml::Table);

impl Section {
    /// The section holding every key of `value` (an owner's resolved parameters, defaults
    /// included), e.g. for a report that shows what ran.
    pub fn of<T: Serialize>(value: &T) -> Result<Self> {
        match toml::Value::try_from(value) {
            Ok(toml::Value::Table(t)) => Ok(Self(t)),
            Ok(other) => Err(Error::InvalidArgument(format!(
                "a config section must be a table, got {}",
                other.type_str()
            ))),
            Err(e) => Err(Error::InvalidArgument(e.to_string())),
        }
    }

    /// Whether the section sets no key (every key takes its owner's default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys as written.
    pub fn table(&self) -> &toml::Table {
        &self.0
    }

    /// Sets `key` (a key of this section, not dotted) to `value`.
    pub fn set(&mut self, key: &str, value: toml::Value) {
        self.0.insert(key.to_string(), value);
    }

    /// The section as its owner's type; an unknown key or a wrong type is a config error
    /// naming `name` (the section's key, e.g. `protocol`) and the field.
    pub fn parse<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        T::deserialize(toml::Value::Table(self.0.clone())).map_err(|e| {
            let msg = e.to_string();
            let key = msg
                .split("unknown field `")
                .nth(1)
                .or_else(|| msg.split("missing field `").nth(1))
                .and_then(|s| s.split('`').next())
                .map_or_else(|| name.to_string(), |f| format!("{name}.{f}"));
            Error::config(key, msg.trim().to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Owned {
        #[serde(default)]
        window: u64,
    }

    #[test]
    fn parse_names_the_unknown_key_and_keeps_defaults() {
        let empty = Section::default();
        assert_eq!(empty.parse::<Owned>("serve").unwrap(), Owned { window: 0 });
        let mut s = Section::default();
        s.set("window", toml::Value::Integer(7));
        assert_eq!(s.parse::<Owned>("serve").unwrap(), Owned { window: 7 });
        s.set("windw", toml::Value::Integer(7));
        let e = s.parse::<Owned>("serve").unwrap_err().to_string();
        assert!(e.contains("serve.windw"), "{e}");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Section>(&json).unwrap(), s);
    }
}
