//! Label keys and values of the OpenMetadata contract, and label-value sanitising (reference §2.1, §2.2).
//!
//! OpenMetadata's server labels the OMJobs it creates (and, through `mainPodSpec.labels`, their
//! pods); the operator adds its own labels to pods. Both sides must spell keys and values
//! exactly as here.

use md5::{Digest, Md5};

/// `app.kubernetes.io/name`: always [`APP_NAME`].
pub const LABEL_APP_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/component`: [`COMPONENT_INGESTION`] (the server also uses `application`
/// and `automation`).
pub const LABEL_APP_COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by`: [`MANAGED_BY_OPENMETADATA`] on what the server creates,
/// [`MANAGED_BY_OMJOB_OPERATOR`] on the operator's base pod labels.
pub const LABEL_APP_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/pipeline`: the pipeline name (sanitised on pods).
pub const LABEL_APP_PIPELINE: &str = "app.kubernetes.io/pipeline";
/// `app.kubernetes.io/pipeline-type`: lower-case pipeline type, such as `metadata`.
pub const LABEL_APP_PIPELINE_TYPE: &str = "app.kubernetes.io/pipeline-type";
/// `app.kubernetes.io/run-id`: the run's UUID.
pub const LABEL_APP_RUN_ID: &str = "app.kubernetes.io/run-id";
/// `app.kubernetes.io/app-name`: the sanitised application name (applications only).
pub const LABEL_APP_APP_NAME: &str = "app.kubernetes.io/app-name";
/// `app.kubernetes.io/original-job`: a failed Job's name (failure diagnostics).
pub const LABEL_APP_ORIGINAL_JOB: &str = "app.kubernetes.io/original-job";
/// `omjob.pipelines.openmetadata.org/name`: the OMJob's name through [`sanitize_label_value`].
pub const LABEL_OMJOB_NAME: &str = "omjob.pipelines.openmetadata.org/name";
/// `omjob.pipelines.openmetadata.org/pod-type`: [`POD_TYPE_MAIN`] or [`POD_TYPE_EXIT_HANDLER`].
pub const LABEL_POD_TYPE: &str = "omjob.pipelines.openmetadata.org/pod-type";

/// Value of [`LABEL_APP_NAME`].
pub const APP_NAME: &str = "openmetadata";
/// Value of [`LABEL_APP_COMPONENT`] for ingestion runs.
pub const COMPONENT_INGESTION: &str = "ingestion";
/// Value of [`LABEL_APP_MANAGED_BY`] in the operator's base pod labels.
pub const MANAGED_BY_OMJOB_OPERATOR: &str = "omjob-operator";
/// Value of [`LABEL_APP_MANAGED_BY`] on everything OpenMetadata's server creates. It overrides
/// the operator's value on pods, because template labels win.
pub const MANAGED_BY_OPENMETADATA: &str = "openmetadata";
/// Value of [`LABEL_POD_TYPE`] on the main pod.
pub const POD_TYPE_MAIN: &str = "main";
/// Value of [`LABEL_POD_TYPE`] on the exit-handler pod.
pub const POD_TYPE_EXIT_HANDLER: &str = "exit-handler";

/// Longest legal label value.
pub const MAX_LABEL_VALUE_LENGTH: usize = 63;
/// Prefix kept from a too-long value: 55 + `-` + 7 hash characters = 63.
const LONG_VALUE_PREFIX_LENGTH: usize = 55;
/// Hex characters of the MD5 suffix.
const LONG_VALUE_HASH_LENGTH: usize = 7;
/// The value used when nothing legal is left.
const FALLBACK_VALUE: &str = "omjob";

/// Turns any string into a legal Kubernetes label value, exactly as the Java operator's
/// `LabelBuilder.sanitizeLabelValue` does.
///
/// # Guarantees
///
/// * `""` for empty input; otherwise a non-empty value of at most 63 characters that matches
///   `[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?`.
/// * Steps, in order: replace every character outside `[A-Za-z0-9._-]` with `-`; collapse runs
///   of `-`; strip characters outside `[A-Za-z0-9]` from both ends; an empty result becomes
///   `omjob`; a result of at most 63 characters is returned as is.
/// * A longer result is cut to 55 characters, stripped of trailing non-alphanumerics (`omjob`
///   if that leaves nothing), and suffixed with `-` and the first 7 hex characters of the MD5
///   of the **original** input's UTF-8 bytes, so distinct long inputs get distinct values.
/// * Deterministic: selectors built with it match labels built with it.
#[must_use]
pub fn sanitize_label_value(value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }

    let mut replaced = String::with_capacity(value.len());
    for c in value.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            c
        } else {
            '-'
        };
        if !(c == '-' && replaced.ends_with('-')) {
            replaced.push(c);
        }
    }
    // Only ASCII is left, so byte lengths below are character lengths.
    let trimmed = replaced.trim_matches(|c: char| !c.is_ascii_alphanumeric());

    if trimmed.is_empty() {
        return FALLBACK_VALUE.to_owned();
    }
    if trimmed.len() <= MAX_LABEL_VALUE_LENGTH {
        return trimmed.to_owned();
    }

    let prefix = trimmed[..LONG_VALUE_PREFIX_LENGTH].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let prefix = if prefix.is_empty() { FALLBACK_VALUE } else { prefix };
    let digest = hex::encode(Md5::digest(value.as_bytes()));
    format!("{prefix}-{}", &digest[..LONG_VALUE_HASH_LENGTH])
}

#[cfg(test)]
mod tests {
    //! Expected values were derived by hand from the rules in reference §2.2; the MD5 suffixes
    //! were computed outside this code, with
    //! `python3 -c 'import hashlib; print(hashlib.md5(S.encode()).hexdigest())'` (and checked
    //! with `printf %s S | md5sum`), then cut to 7 characters.

    use super::*;

    #[test]
    fn empty_input_stays_empty() {
        assert_eq!(sanitize_label_value(""), "");
    }

    #[test]
    fn legal_short_values_are_unchanged() {
        assert_eq!(sanitize_label_value("my-pipeline"), "my-pipeline");
        assert_eq!(sanitize_label_value("Mixed.Case_value-1"), "Mixed.Case_value-1");
    }

    #[test]
    fn spaces_and_other_characters_become_single_dashes() {
        // " " -> "-": "My-Pipeline_v1.0" ('_' and '.' are legal and kept).
        assert_eq!(sanitize_label_value("My Pipeline_v1.0"), "My-Pipeline_v1.0");
        // "a / b" -> "a---b" -> collapsed to "a-b".
        assert_eq!(sanitize_label_value("a / b"), "a-b");
    }

    #[test]
    fn leading_and_trailing_punctuation_is_stripped() {
        // "  __weird..name!!  " -> "--__weird..name----" -> "-__weird..name-"
        // -> strip leading "-__" and trailing "-" -> "weird..name" (inner ".." stays).
        assert_eq!(sanitize_label_value("  __weird..name!!  "), "weird..name");
        assert_eq!(sanitize_label_value(".hidden."), "hidden");
    }

    #[test]
    fn all_punctuation_falls_back_to_omjob() {
        for input in ["---", "!!!", "._-", " ", "____"] {
            assert_eq!(sanitize_label_value(input), "omjob", "{input:?}");
        }
    }

    #[test]
    fn exactly_63_characters_are_kept() {
        let value = "a".repeat(63);
        assert_eq!(sanitize_label_value(&value), value);
    }

    #[test]
    fn sixty_four_characters_get_a_55_character_prefix_and_md5_suffix() {
        // md5("a" * 64) = 014842d480b571495a4a0363793f7367 -> "014842d".
        let expected = format!("{}-014842d", "a".repeat(55));
        assert_eq!(sanitize_label_value(&"a".repeat(64)), expected);
        assert_eq!(expected.len(), 63);
    }

    #[test]
    fn a_cut_ending_in_punctuation_is_trimmed_before_the_hash() {
        // 75 chars: "x"*54 + "." + "y"*20; first 55 = "x"*54 + "." -> trailing "." stripped.
        // md5 = 5d93d31d6ae8c3f47bcd9ffda263bdd1 -> "5d93d31".
        let input = format!("{}.{}", "x".repeat(54), "y".repeat(20));
        assert_eq!(
            sanitize_label_value(&input),
            format!("{}-5d93d31", "x".repeat(54))
        );
    }

    #[test]
    fn long_realistic_pipeline_name_is_cut_and_hashed() {
        // Sanitised: "om-job-Snowflake-Prod.metadata_ingestion_pipeline_for_the_finance_department"
        // (76 chars); first 55 chars end in "_for_t"; md5 of the ORIGINAL (with the space)
        // = e0469282d0e99d11c59a1f9c720f2132 -> "e046928".
        let input = "om-job-Snowflake Prod.metadata_ingestion_pipeline_for_the_finance_department";
        assert_eq!(
            sanitize_label_value(input),
            "om-job-Snowflake-Prod.metadata_ingestion_pipeline_for_t-e046928"
        );
    }

    #[test]
    fn unicode_characters_are_replaced_one_dash_each_then_collapsed() {
        // "ó" -> "-", " " -> "-", "数据" -> "--": "Ingesti-n-pipeline---" -> collapse -> strip.
        assert_eq!(
            sanitize_label_value("Ingestión pipeline 数据"),
            "Ingesti-n-pipeline"
        );
        // Only non-ASCII characters: everything becomes "-" -> empty -> fallback, no hash.
        assert_eq!(sanitize_label_value(&"データ".repeat(30)), "omjob");
    }

    #[test]
    fn the_hash_is_of_the_original_utf8_input_not_the_sanitised_one() {
        // "é" + "a"*70 -> "-" + "a"*70 -> "a"*70 (70 > 63) -> "a"*55 + "-" + md5(UTF-8 of
        // "é" + "a"*70) = 8581bf21c391dfe24fa8b238fe2b6fd5 -> "8581bf2".
        // (md5("a"*70) would give a different suffix; see the 64-char test for the scheme.)
        let input = format!("é{}", "a".repeat(70));
        assert_eq!(
            sanitize_label_value(&input),
            format!("{}-8581bf2", "a".repeat(55))
        );
    }

    #[test]
    fn results_are_always_legal_label_values() {
        let inputs = [
            "x".repeat(200),
            "-a-".repeat(40),
            format!("{}_.{}", "b".repeat(54), "c".repeat(30)),
            "日本語のパイプライン名".repeat(10),
        ];
        for input in inputs {
            let out = sanitize_label_value(&input);
            assert!(out.len() <= MAX_LABEL_VALUE_LENGTH, "{out}");
            assert!(out.starts_with(|c: char| c.is_ascii_alphanumeric()), "{out}");
            assert!(out.ends_with(|c: char| c.is_ascii_alphanumeric()), "{out}");
            assert!(
                out.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)),
                "{out}"
            );
        }
    }
}
