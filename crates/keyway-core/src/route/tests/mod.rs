//! Table tests for route planning. `fixture` builds inputs; each rule of `docs/routing.md` names
//! the test that backs it.

mod fixture;
mod health_cases;
mod options_cases;
mod plan_cases;
mod region_cases;
mod azure_cases;
mod explain_cases;
mod precedence_cases;
