//! The phases of an OMJob and the moves between them (reference §3.1).
//!
//! `Pending → Running → ExitHandlerRunning → Succeeded | Failed`, with `Failed` reachable from
//! every non-terminal phase. Terminal phases never change again.

use std::{fmt, str::FromStr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an OMJob is in its life. Serialised exactly as the Java operator writes `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted; the main pod is not known to exist yet.
    Pending,
    /// The main pod exists and has not finished.
    Running,
    /// The main stage ended; the exit-handler pod is being created or is running.
    ExitHandlerRunning,
    /// Finished successfully (terminal).
    Succeeded,
    /// Finished unsuccessfully (terminal).
    Failed,
}

impl Phase {
    /// Every phase, in the order the state machine visits them.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Running,
        Self::ExitHandlerRunning,
        Self::Succeeded,
        Self::Failed,
    ];

    /// Whether a move from `self` to `next` is allowed (`OMJobPhase.canTransitionTo`).
    ///
    /// # Guarantees
    ///
    /// * `Pending → Running | Failed`, `Running → ExitHandlerRunning | Failed`,
    ///   `ExitHandlerRunning → Succeeded | Failed`; nothing else.
    /// * Staying in the same phase is not a transition and returns `false`.
    /// * A terminal phase allows no move.
    #[must_use]
    pub const fn can_transition_to(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Pending, Self::Running | Self::Failed)
                | (Self::Running, Self::ExitHandlerRunning | Self::Failed)
                | (Self::ExitHandlerRunning, Self::Succeeded | Self::Failed)
        )
    }

    /// Whether the phase is final (`Succeeded` or `Failed`).
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The phase as written in `status.phase`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::ExitHandlerRunning => "ExitHandlerRunning",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the five phase names (the match is case-sensitive).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse OMJob phase: unknown phase {0:?}")]
pub struct ParsePhaseError(pub String);

impl FromStr for Phase {
    type Err = ParsePhaseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParsePhaseError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_transitions_are_exactly_the_reference_table() {
        use Phase::*;
        let allowed = [
            (Pending, Running),
            (Pending, Failed),
            (Running, ExitHandlerRunning),
            (Running, Failed),
            (ExitHandlerRunning, Succeeded),
            (ExitHandlerRunning, Failed),
        ];
        for from in Phase::ALL {
            for to in Phase::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn only_succeeded_and_failed_are_terminal() {
        let terminal: Vec<_> = Phase::ALL.into_iter().filter(|p| p.is_terminal()).collect();
        assert_eq!(terminal, [Phase::Succeeded, Phase::Failed]);
    }

    #[test]
    fn display_from_str_and_serde_use_the_same_exact_strings() {
        let names = ["Pending", "Running", "ExitHandlerRunning", "Succeeded", "Failed"];
        for (phase, name) in Phase::ALL.into_iter().zip(names) {
            assert_eq!(phase.to_string(), name);
            assert_eq!(name.parse::<Phase>(), Ok(phase));
            assert_eq!(serde_json::to_value(phase).unwrap(), serde_json::json!(name));
            assert_eq!(
                serde_json::from_value::<Phase>(serde_json::json!(name)).unwrap(),
                phase
            );
        }
    }

    #[test]
    fn from_str_rejects_other_spellings() {
        for bad in ["", "pending", "RUNNING", "Exit Handler Running", "Unknown"] {
            assert_eq!(bad.parse::<Phase>(), Err(ParsePhaseError(bad.to_owned())));
        }
    }
}
