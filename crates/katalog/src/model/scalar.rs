//! Small value types of the Katalog format: scalars that are templates, Go durations, label maps.

use std::{collections::BTreeMap, fmt, time::Duration};

use serde::{Deserialize, Deserializer, de};

/// A YAML scalar read as text. Katalogs write `replicas: 3` and `replicas: "{{ .spec.n }}"`
/// interchangeably; Orkestra's fields are Go strings, so numbers and booleans are kept as the text
/// Go would print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl de::Visitor<'_> for ScalarVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(String::new()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A duration written the Go way (`15s`, `1m30s`, `500ms`) or as whole seconds (`15`), plus the
/// `d` and `y` units Orkestra's `rotateAfter` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// Parses `15s`, `1h30m`, `2d`, `250ms` or a bare number of seconds.
    ///
    /// # Errors
    /// A message naming what was wrong, for the Katalog problem list.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty duration".to_owned());
        }
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Self(Duration::from_secs(secs)));
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!("invalid duration {text:?}: expected a number"));
            }
            let number: f64 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid duration {text:?}: bad number"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let seconds = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                "y" => 31_536_000.0,
                "" => return Err(format!("invalid duration {text:?}: missing unit")),
                other => return Err(format!("invalid duration {text:?}: unknown unit {other:?}")),
            };
            rest = &rest[unit_len..];
            total += Duration::from_secs_f64(number * seconds);
        }
        Ok(Self(total))
    }

    /// The Go spelling of the duration (`15s`, `1m30s`), as the runtime API reports it.
    pub fn go_string(&self) -> String {
        let secs = self.0.as_secs();
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}s"));
        out
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Text::deserialize(deserializer)?;
        Self::parse(text.as_str()).map_err(de::Error::custom)
    }
}

/// Labels or annotations: a map of templates. Older ConfigMap and ReplicaSet builders took a list
/// of `{key, value}` instead; both shapes are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Pair {
            key: String,
            value: Text,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Map(BTreeMap<String, Text>),
            List(Vec<Pair>),
        }
        match Option::<Shape>::deserialize(deserializer) {
            Ok(Some(Shape::Map(map))) => Ok(Self(map.into_iter().map(|(k, v)| (k, v.0)).collect())),
            Ok(Some(Shape::List(list))) => Ok(Self(list.into_iter().map(|p| (p.key, p.value.0)).collect())),
            Ok(None) => Ok(Self::default()),
            Err(_) => Err(de::Error::custom(
                "expected a map of strings or a list of {key, value} entries",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_go_spellings_and_bare_seconds() {
        assert_eq!(GoDuration::parse("15s").unwrap().0, Duration::from_secs(15));
        assert_eq!(GoDuration::parse("15").unwrap().0, Duration::from_secs(15));
        assert_eq!(GoDuration::parse("1m30s").unwrap().0, Duration::from_secs(90));
        assert_eq!(GoDuration::parse("2d").unwrap().0, Duration::from_secs(172_800));
        assert_eq!(GoDuration::parse("500ms").unwrap().0, Duration::from_millis(500));
        assert!(GoDuration::parse("15x").unwrap_err().contains("unknown unit"));
        assert!(GoDuration::parse("s").is_err());
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(GoDuration(Duration::from_secs(15)).go_string(), "15s");
        assert_eq!(GoDuration(Duration::from_secs(3690)).go_string(), "1h1m30s");
    }

    #[test]
    fn labels_accept_a_map_or_a_key_value_list() {
        let map: Labels = serde_yaml_ng::from_str("{tier: gold, n: 2}").unwrap();
        let list: Labels = serde_yaml_ng::from_str("[{key: tier, value: gold}, {key: n, value: 2}]").unwrap();
        assert_eq!(map, list);
        assert_eq!(map.0["n"], "2");
    }

    #[test]
    fn scalars_keep_go_text() {
        let t: Vec<Text> = serde_yaml_ng::from_str("[3, true, 0.5, x]").unwrap();
        assert_eq!(
            t.iter().map(Text::as_str).collect::<Vec<_>>(),
            ["3", "true", "0.5", "x"]
        );
    }
}
