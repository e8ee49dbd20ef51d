//! Parsing Kubernetes resource quantities (`128Mi`, `1G`, `500m`, `1e3`) into numbers, for the
//! memory limit the simulated node enforces and for `resourceFieldRef` env values.

/// A quantity the node could not interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {0:?}: expected a number with an optional suffix (Ki, Mi, Gi, Ti, k, M, G, T, m)")]
pub struct QuantityError(pub String);

/// The value of a quantity as a float in base units (bytes for memory, cores for CPU).
///
/// # Errors
/// When the text is not a number followed by a known suffix.
pub fn parse(text: &str) -> Result<f64, QuantityError> {
    let t = text.trim();
    let err = || QuantityError(text.to_owned());
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().map_err(|_| err())?;
            10f64.powi(exp)
        }
        _ => return Err(err()),
    };
    let v = value * factor;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(err())
    }
}

/// A memory quantity in whole bytes, rounded up like the kubelet does.
///
/// # Errors
/// When the text is not a valid quantity.
pub fn bytes(text: &str) -> Result<u64, QuantityError> {
    let v = parse(text)?.ceil();
    // Quantities above u64::MAX bytes are not meaningful limits; saturate instead of wrapping.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(if v >= u64::MAX as f64 { u64::MAX } else { v as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes_scale_as_kubernetes_does() {
        assert_eq!(bytes("64Mi").unwrap(), 67_108_864);
        assert_eq!(bytes("1Gi").unwrap(), 1_073_741_824);
        assert_eq!(bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(bytes("128974848").unwrap(), 128_974_848);
        assert_eq!(bytes("129e6").unwrap(), 129_000_000);
        assert_eq!(bytes("1.5Ki").unwrap(), 1536);
        assert!((parse("500m").unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn garbage_is_rejected_with_the_text_in_the_message() {
        let e = bytes("12 parsecs").unwrap_err();
        assert!(e.to_string().contains("12 parsecs"));
        assert!(bytes("Mi").is_err());
        assert!(bytes("-1Mi").is_err());
    }
}
