//! Azure deployments name their model: any `author/model` slug a deployment names is routable to
//! Azure, whether or not the catalog lists the model (or lists Azure for it).

use super::fixture::*;
use crate::credential::{AzureCredential, AzureDeployment};
use crate::route::RouteError;
use crate::Credential;
use serde_json::json;

fn deployments(ds: &[(&str, &str)]) -> Vec<crate::credential::ModelMapping> {
    ds.iter().map(|(slug, id)| mapping(slug, id)).collect()
}

fn azure_fx(ds: &[(&str, &str)]) -> Fx {
    let ds = deployments(ds);
    fx().key_with("az", Azure, move |m| m.azure_deployments = Some(ds))
}

#[test]
fn a_model_the_catalog_does_not_list_is_routed_to_its_deployment() {
    let f = azure_fx(&[("mistralai/mistral-large", "mistral-large-2411"), ("openai/gpt-5.2", "gpt52-prod")]);
    assert_eq!(f.plan_detailed("mistralai/mistral-large"), ["mistralai/mistral-large azure:byok:az mistral-large-2411"]);
    // `openai/...` also has the OpenAI candidate (no credential for it here).
    assert_eq!(f.plan_detailed("openai/gpt-5.2"), ["openai/gpt-5.2 azure:byok:az gpt52-prod"]);
    // Priced 0 (no catalog endpoint) but routed.
    let endpoint_none = f.run("mistralai/mistral-large", |r| r.expect("plan").attempts[0].endpoint.is_none());
    assert!(endpoint_none);
}

#[test]
fn a_catalog_model_without_an_azure_endpoint_is_priced_from_the_catalog() {
    let f = azure_fx(&[(LLAMA, "llama-33-70b")]).system(Groq);
    assert_eq!(f.plan_detailed(LLAMA), [format!("{LLAMA} azure:byok:az llama-33-70b"), format!("{LLAMA} groq:system#0 llama-3.3-70b-versatile")]);
    let price = f.run(LLAMA, |r| r.expect("plan").attempts[0].endpoint.map(|e| e.input_per_mtok_micros));
    assert_eq!(price, Some(590_000), "the model's first catalog endpoint prices it");
}

#[test]
fn provider_only_azure_reaches_the_deployment() {
    let f = azure_fx(&[("openai/o3-mini", "o3-mini-dep")]).opts(json!({"provider": {"only": ["azure"]}}));
    assert_eq!(f.plan_detailed("openai/o3-mini"), ["openai/o3-mini azure:byok:az o3-mini-dep"]);
}

#[test]
fn a_deployment_for_another_model_does_not_make_a_slug_routable() {
    let f = azure_fx(&[("openai/o3-mini", "o3")]);
    assert!(matches!(f.err("mistralai/mistral-large"), RouteError::UnknownModel { .. }));
    // A disabled credential doesn't either.
    let ds = deployments(&[("mistralai/mistral-large", "m")]);
    let f = fx().key_with("az", Azure, move |m| {
        m.azure_deployments = Some(ds);
        m.disabled = true;
    });
    assert!(matches!(f.err("mistralai/mistral-large"), RouteError::UnknownModel { .. }));
}

#[test]
fn request_scoped_deployments_route_too() {
    let cred = Credential::Azure(AzureCredential::Deployments(vec![AzureDeployment {
        model_slug: "mistralai/mistral-large".into(),
        endpoint_url: "https://x.services.ai.azure.com/models/chat/completions".into(),
        api_key: "k".to_owned().into(),
        model_id: "mistral-large-2411".into(),
    }]));
    let f = fx().scoped_cred(Azure, cred);
    assert_eq!(f.plan_detailed("mistralai/mistral-large"), [format!("mistralai/mistral-large azure:request:{Azure}#0 mistral-large-2411")]);
}

#[test]
fn resource_mappings_name_deployments_too() {
    let f = fx().key_with("res", Azure, |m| m.model_mappings = vec![mapping("openai/gpt-5.2", "gpt-5-2")]);
    assert_eq!(f.plan_detailed("openai/gpt-5.2"), ["openai/gpt-5.2 azure:byok:res gpt-5-2"]);
}
