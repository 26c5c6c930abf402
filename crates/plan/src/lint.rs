//! Checking a plan without its secrets: `liftoff validate --no-env`, for CI.
//!
//! Every `${VAR}` is left unset, whatever the environment holds. What does not depend
//! on a variable's value is checked as [`crate::parse`] checks it; a value that holds a
//! variable is checked only on its literal text before the first variable
//! (`http://${HOST}:9000` must still be an http URL; `${DATABASE_URL}` is not checked).
//! The plan decoded this way has placeholders where values are missing, so it is
//! dropped here: only [`crate::parse`] hands out a [`Plan`](crate::Plan).

use std::collections::BTreeMap;

use crate::decode::Env;
use crate::{Limits, Location, PlanErrors};

/// What [`lint`] found in a plan that is valid but for its variables' values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lint {
    pub steps: usize,
    pub rollback_steps: usize,
    /// Every use of a `${VAR}`, in file order: what a launch of the plan needs set.
    pub variables: Vec<VariableUse>,
}

impl Lint {
    /// The names of the variables the plan needs, sorted, each once.
    pub fn names(&self) -> Vec<&str> {
        self.uses_by_name().into_keys().collect()
    }

    /// Each variable the plan needs, by name, with where it is used in file order.
    pub fn uses_by_name(&self) -> BTreeMap<&str, Vec<Location>> {
        let mut by_name: BTreeMap<&str, Vec<Location>> = BTreeMap::new();
        for u in &self.variables {
            by_name.entry(&u.name).or_default().push(u.location);
        }
        by_name
    }
}

/// One `${NAME}` in a plan, where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariableUse {
    pub name: String,
    pub location: Location,
}

/// Check a plan's structure and types with every variable unset (the strict check,
/// with values, is [`crate::parse`]). Errors are those of `parse` but for unset
/// variables, and for checks that need a value a variable would give.
pub fn lint(source: &str) -> Result<Lint, PlanErrors> {
    let (plan, mut variables) = crate::decode_source(source, Env::Unset, Limits::default())?;
    variables.sort_by_key(|u| (u.location.line, u.location.col));
    variables.dedup();
    Ok(Lint {
        steps: plan.steps.len(),
        rollback_steps: plan.rollback.steps.len(),
        variables,
    })
}
