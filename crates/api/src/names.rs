//! Deterministic names of the objects the operator creates (reference §2.3).
//!
//! Names are the idempotency locks of the operator: the main pod is always `<omjob>-main`, the
//! exit pod `<omjob>-exit` (`<omjob>-exit-<n>` for a further attempt), and a CronOMJob's run for a
//! slot always has the same name, so a create that races or repeats hits `AlreadyExists` instead
//! of running twice.

use sha2::{Digest, Sha256};

/// Longest name of an OMJob spawned by a CronOMJob (a DNS-1123 label, as the Java operator uses).
pub const MAX_SPAWNED_OMJOB_NAME_LENGTH: usize = 63;
/// Base used when a name has nothing usable left.
pub const FALLBACK_BASE_NAME: &str = "omjob";
/// Hex characters of the SHA-256 suffix of a shortened name.
const NAME_HASH_LENGTH: usize = 6;

/// Why a name could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The maximum length was 0.
    #[error("failed to fit name: the maximum length must allow at least one character")]
    ZeroMaxLength,
    /// The fallback base was empty.
    #[error("failed to fit name: the fallback base name must not be empty")]
    EmptyFallback,
    /// The base was empty and the fallback is longer than allowed.
    #[error("failed to fit name: fallback name exceeds max base length ({max})")]
    FallbackTooLong {
        /// The maximum length that was asked for.
        max: usize,
    },
}

/// Fits `base` into `max` characters, shortening it with a hash when it is too long, as the
/// Java operator's `KubernetesNameBuilder.fitNameWithHash` does.
///
/// # Guarantees
///
/// * `base` of at most `max` characters is returned unchanged, except that an empty `base` is
///   replaced by `fallback`.
/// * A longer `base` becomes `prefix-h`, where `h` is the first `min(6, max)` hex characters of
///   the SHA-256 of `base`'s UTF-8 bytes and `prefix` is `base` cut to `max - len(h) - 1`
///   characters with trailing characters outside `[a-z0-9]` removed. If that prefix is empty,
///   `fallback` cut the same way is used instead; if that is empty too, or there is no room for a
///   prefix at all, the result is `h` alone.
/// * The result has at most `max` characters and depends only on the arguments.
///
/// # Errors
///
/// [`NameError::ZeroMaxLength`] if `max` is 0, [`NameError::EmptyFallback`] if `fallback` is
/// empty, and [`NameError::FallbackTooLong`] if `base` is empty and `fallback` is longer than `max`.
///
/// # Caveats
///
/// Lengths and cuts count Unicode scalar values. Java counts UTF-16 code units, so the two differ
/// only for characters outside the Basic Multilingual Plane, which Kubernetes names cannot hold.
pub fn fit_name_with_hash(base: &str, max: usize, fallback: &str) -> Result<String, NameError> {
    if max < 1 {
        return Err(NameError::ZeroMaxLength);
    }
    if fallback.is_empty() {
        return Err(NameError::EmptyFallback);
    }

    if base.chars().count() > max {
        let digest = hex::encode(Sha256::digest(base.as_bytes()));
        let hash = &digest[..NAME_HASH_LENGTH.min(max)];
        // `hash.len() <= max`, so this only saturates when there is no room for "-" and a prefix.
        let prefix_length = max.saturating_sub(hash.len() + 1);
        if prefix_length > 0 {
            for candidate in [base, fallback] {
                let prefix = trim_trailing_separators(take_chars(candidate, prefix_length));
                if !prefix.is_empty() {
                    return Ok(format!("{prefix}-{hash}"));
                }
            }
        }
        return Ok(hash.to_owned());
    }

    let name = if base.is_empty() { fallback } else { base };
    if name.chars().count() > max {
        return Err(NameError::FallbackTooLong { max });
    }
    Ok(name.to_owned())
}

/// Name of an OMJob's main pod: `<omjob>-main`. Pod names may be up to 253 characters, so a
/// 63-character OMJob name still gives a legal pod name.
#[must_use]
pub fn main_pod_name(omjob_name: &str) -> String {
    format!("{omjob_name}-main")
}

/// Name of an OMJob's (first) exit-handler pod: `<omjob>-exit`, as the Java operator names it.
#[must_use]
pub fn exit_pod_name(omjob_name: &str) -> String {
    format!("{omjob_name}-exit")
}

/// Name of exit-handler attempt `attempt` (1-based): `<omjob>-exit` for the first (and for any
/// value below 1), `<omjob>-exit-<n>` for a further attempt after a lost exit pod (*additive*: the
/// Java operator makes one attempt).
///
/// # Guarantees
/// The same OMJob and attempt always give the same name, and distinct attempts give distinct
/// names, so a repeated create of one attempt cannot start a second exit handler.
#[must_use]
pub fn exit_attempt_pod_name(omjob_name: &str, attempt: i32) -> String {
    if attempt <= 1 {
        exit_pod_name(omjob_name)
    } else {
        format!("{}-{attempt}", exit_pod_name(omjob_name))
    }
}

/// Name of the OMJob a CronOMJob creates for the slot starting at `slot_epoch_seconds`:
/// `fit_name_with_hash(cron_name, 63 - len("-<epoch>"), "omjob") + "-<epoch>"`.
///
/// # Guarantees
///
/// At most 63 characters; the same CronOMJob and slot always give the same name, so a slot runs
/// at most once. With 10-digit epochs the base keeps up to 52 characters.
///
/// # Errors
///
/// [`NameError::ZeroMaxLength`] only if the epoch suffix alone fills 63 characters, which no
/// `i64` does; kept as an error rather than a panic.
pub fn spawned_omjob_name(cron_name: &str, slot_epoch_seconds: i64) -> Result<String, NameError> {
    let suffix = format!("-{slot_epoch_seconds}");
    let max = MAX_SPAWNED_OMJOB_NAME_LENGTH.saturating_sub(suffix.len());
    let base = fit_name_with_hash(cron_name, max, FALLBACK_BASE_NAME)?;
    Ok(base + &suffix)
}

/// The first `n` characters of `s`.
fn take_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// Strips trailing characters outside `[a-z0-9]` (upper case included, as in Java).
fn trim_trailing_separators(s: &str) -> &str {
    s.trim_end_matches(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    //! Expected values were derived by hand from the rules in reference §2.3. SHA-256 prefixes
    //! were computed outside this code, with
    //! `python3 -c 'import hashlib; print(hashlib.sha256(S.encode()).hexdigest())'` (spot-checked
    //! with `printf %s S | sha256sum`), then cut to min(6, max) characters.

    use super::*;

    #[test]
    fn pod_names_append_main_and_exit() {
        assert_eq!(
            main_pod_name("om-job-mysql-1a2b3c4d"),
            "om-job-mysql-1a2b3c4d-main"
        );
        assert_eq!(
            exit_pod_name("om-job-mysql-1a2b3c4d"),
            "om-job-mysql-1a2b3c4d-exit"
        );
        let long = "n".repeat(63);
        assert_eq!(main_pod_name(&long).len(), 68);
    }

    #[test]
    fn exit_attempts_after_the_first_carry_their_number() {
        assert_eq!(exit_attempt_pod_name("j", 1), "j-exit");
        assert_eq!(
            exit_attempt_pod_name("j", 0),
            "j-exit",
            "below 1 counts as the first"
        );
        assert_eq!(exit_attempt_pod_name("j", 2), "j-exit-2");
        assert_eq!(exit_attempt_pod_name("j", 3), "j-exit-3");
    }

    #[test]
    fn short_names_are_unchanged() {
        assert_eq!(fit_name_with_hash("my-cron", 52, "omjob").unwrap(), "my-cron");
        let exact = "a".repeat(52);
        assert_eq!(fit_name_with_hash(&exact, 52, "omjob").unwrap(), exact);
    }

    #[test]
    fn one_character_too_long_gets_prefix_and_sha256() {
        // "a"*53, max 52: h = sha256[:6] = "abe346"; prefix length 52 - 6 - 1 = 45.
        let expected = format!("{}-abe346", "a".repeat(45));
        assert_eq!(
            fit_name_with_hash(&"a".repeat(53), 52, "omjob").unwrap(),
            expected
        );
        assert_eq!(expected.len(), 52);
    }

    #[test]
    fn a_cut_ending_in_a_separator_is_trimmed() {
        // "a"*44 + "-" + "b"*10, max 52: first 45 = "a"*44 + "-" -> "a"*44; sha256 -> "b2a461".
        let base = format!("{}-{}", "a".repeat(44), "b".repeat(10));
        assert_eq!(
            fit_name_with_hash(&base, 52, "omjob").unwrap(),
            format!("{}-b2a461", "a".repeat(44))
        );
    }

    #[test]
    fn an_all_uppercase_prefix_is_trimmed_away_and_the_fallback_used() {
        // "ABC"*20 (60), max 52: first 45 are upper case, all outside [a-z0-9] -> empty;
        // fallback "omjob" (shorter than 45) -> "omjob-" + sha256("ABC"*20)[:6] = "8f5e74".
        assert_eq!(
            fit_name_with_hash(&"ABC".repeat(20), 52, "omjob").unwrap(),
            "omjob-8f5e74"
        );
    }

    #[test]
    fn hash_alone_when_base_and_fallback_prefixes_are_empty() {
        // "___"*20, max 10: h = "394aee", prefix length 3: "___" -> empty, fallback "---" -> empty.
        assert_eq!(
            fit_name_with_hash(&"___".repeat(20), 10, "---").unwrap(),
            "394aee"
        );
    }

    #[test]
    fn tiny_maximums_give_a_hash_cut_to_fit() {
        // sha256("abcdefgh") = 9c56cc51...; max 7: h = "9c56cc", prefix length 0 -> h alone.
        assert_eq!(fit_name_with_hash("abcdefgh", 7, "omjob").unwrap(), "9c56cc");
        // max 6: prefix length would be -1 -> h alone.
        assert_eq!(fit_name_with_hash("abcdefgh", 6, "omjob").unwrap(), "9c56cc");
        // max 3: h = first 3 hex characters.
        assert_eq!(fit_name_with_hash("abcdefgh", 3, "omjob").unwrap(), "9c5");
        // "abcdefghi", max 8: h = "19cc02", prefix length 1 -> "a-19cc02".
        assert_eq!(fit_name_with_hash("abcdefghi", 8, "omjob").unwrap(), "a-19cc02");
    }

    #[test]
    fn empty_base_uses_the_fallback() {
        assert_eq!(fit_name_with_hash("", 52, "omjob").unwrap(), "omjob");
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(fit_name_with_hash("x", 0, "omjob"), Err(NameError::ZeroMaxLength));
        assert_eq!(fit_name_with_hash("x", 5, ""), Err(NameError::EmptyFallback));
        assert_eq!(
            fit_name_with_hash("", 3, "omjob"),
            Err(NameError::FallbackTooLong { max: 3 })
        );
        assert_eq!(
            NameError::FallbackTooLong { max: 3 }.to_string(),
            "failed to fit name: fallback name exceeds max base length (3)"
        );
    }

    #[test]
    fn unicode_counts_characters_and_hashes_utf8() {
        // "ü"*60 (60 chars, 120 bytes), max 52: first 45 chars are all "ü" -> trimmed to empty;
        // fallback -> "omjob-" + sha256(UTF-8)[:6] = "abb4f2".
        assert_eq!(
            fit_name_with_hash(&"ü".repeat(60), 52, "omjob").unwrap(),
            "omjob-abb4f2"
        );
        // 52 characters of "ü" fit as is (counted in characters, not bytes).
        let fits = "ü".repeat(52);
        assert_eq!(fit_name_with_hash(&fits, 52, "omjob").unwrap(), fits);
    }

    #[test]
    fn spawned_names_append_the_slot_epoch() {
        assert_eq!(
            spawned_omjob_name("daily-ingest", 1_700_000_000).unwrap(),
            "daily-ingest-1700000000"
        );
        // A 52-character base still fits: 52 + 11 = 63.
        let base = "c".repeat(52);
        assert_eq!(
            spawned_omjob_name(&base, 1_700_000_000).unwrap(),
            format!("{base}-1700000000")
        );
    }

    #[test]
    fn long_cron_names_are_hashed_to_fit_63() {
        // 57 chars > 63 - 11 = 52: prefix 45 = "om-cronomjob-snowflake-prod-metadata-ingestio",
        // sha256 -> "696d89".
        let name = spawned_omjob_name(
            "om-cronomjob-snowflake-prod-metadata-ingestion-pipeline-x",
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(
            name,
            "om-cronomjob-snowflake-prod-metadata-ingestio-696d89-1700000000"
        );
        assert_eq!(name.len(), 63);
    }

    #[test]
    fn empty_cron_name_falls_back_to_omjob() {
        assert_eq!(spawned_omjob_name("", 1_700_000_000).unwrap(), "omjob-1700000000");
    }
}
