//! A rollback trigger's episodes: what the watcher journals and when it fires, decided
//! from one evaluation after another. Pure: time arrives as an argument (how long the
//! triggers have been armed), readings arrive as data.
//!
//! Per trigger: *not crossed* → *crossed since T* (journaled once) → *fired* (once its
//! condition has held, with evidence at every evaluation, for its `for` duration; once
//! per crossing). Any reading that is not `Crossed` ends a crossing (journaled as
//! `clear`): `for` counts proven time only. A held-back reading outside a crossing is
//! journaled once, until the next crossing or re-arming (one says why the trigger is
//! quiet; one per evaluation would flood the journal of a service near its threshold).
//! A source that cannot be read is journaled when it starts failing, neither fires nor
//! clears the trigger, and never fails the launch however long it lasts: a broken
//! source must not roll a good launch back, nor hide a bad one.

use std::time::Duration;

use crate::TriggerState;

/// One evaluation of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerEvaluation {
    /// The condition was read.
    Read(TriggerState),
    /// Its source could not tell (unreachable, no data, NaN).
    Failed,
}

/// What the watcher does after an evaluation, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpisodeDecision {
    /// Journal the reading as `crossed`: a crossing begins.
    Crossed,
    /// Journal the reading as `clear`: the crossing ended.
    Cleared,
    /// Journal the reading as `inconclusive`: past the threshold without the evidence.
    HeldBack,
    /// Journal the failure as `inconclusive`: the source started failing.
    SourceFailing,
    /// Fire the trigger: its condition has held for `crossed_for`.
    Fire { crossed_for: Duration },
}

impl EpisodeDecision {
    /// The verdict its `Evaluated` record carries (`Fire` is journaled as a firing).
    pub fn verdict(self) -> &'static str {
        match self {
            EpisodeDecision::Crossed => "crossed",
            EpisodeDecision::Cleared => "clear",
            EpisodeDecision::HeldBack | EpisodeDecision::SourceFailing => "inconclusive",
            EpisodeDecision::Fire { .. } => "fired",
        }
    }
}

/// One trigger's episode so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Episode {
    /// Since when (from arming) it has been crossed.
    since: Option<Duration>,
    /// Whether it fired this crossing.
    fired: bool,
    /// Whether its source was failing (to journal changes only).
    failing: bool,
    /// Whether a held-back evaluation was journaled since arming or the last crossing.
    held_noted: bool,
}

/// The episodes of a plan's triggers, from arming to disarming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerEpisodes {
    /// Each trigger's `for` duration.
    sustained: Vec<Duration>,
    episodes: Vec<Episode>,
}

impl TriggerEpisodes {
    /// One episode per trigger, each with its `for` duration (zero: fire on the first
    /// crossed evaluation).
    pub fn new(sustained: Vec<Duration>) -> Self {
        let episodes = vec![Episode::default(); sustained.len()];
        Self {
            sustained,
            episodes,
        }
    }

    /// The triggers were disarmed: every episode starts over.
    pub fn disarm(&mut self) {
        self.episodes.fill(Episode::default());
    }

    /// Trigger `trigger` was evaluated at `now` (since arming): what to journal and
    /// whether to fire.
    pub fn step(
        &mut self,
        trigger: usize,
        now: Duration,
        evaluation: TriggerEvaluation,
    ) -> Vec<EpisodeDecision> {
        let w = &mut self.episodes[trigger];
        let mut out = Vec::new();
        let reading = match evaluation {
            TriggerEvaluation::Read(reading) => {
                w.failing = false;
                reading
            }
            TriggerEvaluation::Failed => {
                if !std::mem::replace(&mut w.failing, true) {
                    out.push(EpisodeDecision::SourceFailing);
                }
                return out;
            }
        };
        match (reading, w.since) {
            (TriggerState::Crossed, None) => {
                w.since = Some(now);
                w.held_noted = false;
                out.push(EpisodeDecision::Crossed);
            }
            (TriggerState::Crossed, Some(_)) => {}
            (_, Some(_)) => {
                w.since = None;
                w.fired = false;
                w.held_noted |= reading == TriggerState::HeldBack;
                out.push(EpisodeDecision::Cleared);
            }
            (TriggerState::HeldBack, None) if !w.held_noted => {
                w.held_noted = true;
                out.push(EpisodeDecision::HeldBack);
            }
            (_, None) => {}
        }
        if let Some(start) = w.since
            && !w.fired
        {
            let crossed_for = now.saturating_sub(start);
            if crossed_for >= self.sustained[trigger] {
                w.fired = true;
                out.push(EpisodeDecision::Fire { crossed_for });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EpisodeDecision::*;
    use TriggerEvaluation::{Failed, Read};
    use TriggerState::{Clear as C, Crossed as X, HeldBack as H};

    fn fire(secs: u64) -> EpisodeDecision {
        Fire {
            crossed_for: Duration::from_secs(secs),
        }
    }

    /// Each case: a trigger's `for`, then its evaluations (second since arming, what
    /// was read) with the decisions each must produce.
    #[allow(clippy::type_complexity)]
    const CASES: &[(&str, u64, &[(u64, TriggerEvaluation, &[EpisodeDecision])])] = &[
        (
            "without `for`, the first crossed evaluation journals the crossing and fires",
            0,
            &[(
                1,
                Read(X),
                &[
                    Crossed,
                    Fire {
                        crossed_for: Duration::ZERO,
                    },
                ],
            )],
        ),
        (
            "a trigger fires once per crossing, however long it stays crossed",
            0,
            &[
                (
                    1,
                    Read(X),
                    &[
                        Crossed,
                        Fire {
                            crossed_for: Duration::ZERO,
                        },
                    ],
                ),
                (2, Read(X), &[]),
                (3, Read(X), &[]),
            ],
        ),
        (
            "`for` counts from the crossing, and fires when it has held that long",
            3,
            &[
                (1, Read(C), &[]),
                (2, Read(X), &[Crossed]),
                (4, Read(X), &[]),
                (
                    5,
                    Read(X),
                    &[Fire {
                        crossed_for: Duration::from_secs(3),
                    }],
                ),
                (6, Read(X), &[]),
            ],
        ),
        (
            "a clear reading ends the crossing, and the next one counts `for` afresh",
            3,
            &[
                (1, Read(X), &[Crossed]),
                (3, Read(C), &[Cleared]),
                (4, Read(X), &[Crossed]),
                (6, Read(X), &[]),
                (
                    7,
                    Read(X),
                    &[Fire {
                        crossed_for: Duration::from_secs(3),
                    }],
                ),
            ],
        ),
        (
            "after a firing, a clearing re-arms the trigger to fire again",
            0,
            &[
                (
                    1,
                    Read(X),
                    &[
                        Crossed,
                        Fire {
                            crossed_for: Duration::ZERO,
                        },
                    ],
                ),
                (2, Read(C), &[Cleared]),
                (
                    3,
                    Read(X),
                    &[
                        Crossed,
                        Fire {
                            crossed_for: Duration::ZERO,
                        },
                    ],
                ),
            ],
        ),
        (
            "evidence that lapses ends a crossing: `for` counts proven time only",
            2,
            &[
                (1, Read(X), &[Crossed]),
                (2, Read(H), &[Cleared]),
                (3, Read(X), &[Crossed]),
                (
                    5,
                    Read(X),
                    &[Fire {
                        crossed_for: Duration::from_secs(2),
                    }],
                ),
            ],
        ),
        (
            "a held-back reading is journaled once, not at every evaluation",
            0,
            &[
                (1, Read(H), &[HeldBack]),
                (2, Read(H), &[]),
                (3, Read(C), &[]),
                (4, Read(H), &[]),
            ],
        ),
        (
            "a crossing lets the next held-back reading be journaled again",
            3600,
            &[
                (1, Read(H), &[HeldBack]),
                (2, Read(X), &[Crossed]),
                (3, Read(C), &[Cleared]),
                (4, Read(H), &[HeldBack]),
                (5, Read(H), &[]),
            ],
        ),
        (
            "a crossing that clears by being held back counts as the held-back note",
            3600,
            &[
                (1, Read(X), &[Crossed]),
                (2, Read(H), &[Cleared]),
                (3, Read(H), &[]),
            ],
        ),
        (
            "a failing source is journaled when it starts failing, not at every evaluation",
            0,
            &[
                (1, Failed, &[SourceFailing]),
                (2, Failed, &[]),
                (3, Failed, &[]),
                (4, Read(C), &[]),
                (5, Failed, &[SourceFailing]),
            ],
        ),
        (
            "a failing source neither clears a crossing nor fires it",
            3,
            &[
                (1, Read(X), &[Crossed]),
                (2, Failed, &[SourceFailing]),
                (5, Failed, &[]),
                (9, Failed, &[]),
                (
                    10,
                    Read(X),
                    &[Fire {
                        crossed_for: Duration::from_secs(9),
                    }],
                ),
            ],
        ),
        (
            "failures never fail anything however many come in a row",
            0,
            &[
                (1, Failed, &[SourceFailing]),
                (2, Failed, &[]),
                (3, Failed, &[]),
                (4, Failed, &[]),
                (5, Failed, &[]),
                (
                    6,
                    Read(X),
                    &[
                        Crossed,
                        Fire {
                            crossed_for: Duration::ZERO,
                        },
                    ],
                ),
            ],
        ),
    ];

    #[test]
    fn each_transition_of_a_trigger_episode() {
        for (name, for_secs, steps) in CASES {
            let mut episodes = TriggerEpisodes::new(vec![Duration::from_secs(*for_secs)]);
            for (at, evaluation, expected) in *steps {
                let got = episodes.step(0, Duration::from_secs(*at), *evaluation);
                assert_eq!(got, *expected, "{name}: at {at}s, {evaluation:?}");
            }
        }
    }

    #[test]
    fn disarming_starts_every_episode_over() {
        let mut episodes = TriggerEpisodes::new(vec![Duration::ZERO, Duration::from_secs(5)]);
        let s = Duration::from_secs;
        assert_eq!(episodes.step(0, s(1), Read(H)), [HeldBack]);
        assert_eq!(episodes.step(1, s(1), Read(X)), [Crossed]);
        assert_eq!(episodes.step(1, s(2), Failed), [SourceFailing]);
        episodes.disarm();
        // Re-armed: the held-back note, the crossing and the failure are forgotten.
        assert_eq!(episodes.step(0, s(1), Read(H)), [HeldBack]);
        assert_eq!(episodes.step(1, s(1), Failed), [SourceFailing]);
        assert_eq!(episodes.step(1, s(2), Read(X)), [Crossed]);
        assert_eq!(episodes.step(1, s(7), Read(X)), [fire(5)]);
    }

    #[test]
    fn triggers_keep_their_own_episodes() {
        let mut episodes = TriggerEpisodes::new(vec![Duration::ZERO, Duration::from_secs(5)]);
        let s = Duration::from_secs;
        assert_eq!(episodes.step(1, s(0), Read(X)), [Crossed]);
        assert_eq!(episodes.step(0, s(1), Read(X)), [Crossed, fire(0)]);
        assert_eq!(episodes.step(0, s(2), Read(C)), [Cleared]);
        assert_eq!(
            episodes.step(1, s(5), Read(X)),
            [fire(5)],
            "not cleared by 0"
        );
    }
}
