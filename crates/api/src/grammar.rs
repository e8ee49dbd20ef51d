//! Grammars of Kubernetes values that more than one crate checks: DNS-1123 labels and resource
//! quantities. One definition, so that the operator, the pipeline service and the Katalog
//! runtime accept and refuse the same strings, and the OpenAPI document states the same rule.

/// The longest DNS-1123 label.
pub const DNS_LABEL_MAX: usize = 63;

/// A DNS-1123 label as a regular expression, for documents (OpenAPI) that state the rule.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Whether `s` is a DNS-1123 label: lower-case letters, digits and `-`, starting and ending with
/// a letter or digit, at most [`DNS_LABEL_MAX`] characters.
#[must_use]
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS_LABEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a Kubernetes quantity such as `500m`, `1Gi`, `2`, `1e3`.
#[must_use]
pub fn is_quantity(s: &str) -> bool {
    let s = s.trim();
    let number_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && matches!(c, '+' | '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(number_end);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return false;
    }
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.trim_start_matches(['+', '-']));
    matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || exponent.is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "a-b", "0", "x".repeat(63).as_str()] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "Ñ", "x".repeat(64).as_str()] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        for ok in ["500m", "1Gi", "2", "1e3", "1.5", "+1", "2E-3", "0.5Ki"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", ".", "1.2.3", "1g", "Gi", "1e", "1e+", "1ee3", "1 Gi x"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
