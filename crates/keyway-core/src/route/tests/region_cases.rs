//! Bedrock regions: a credential's key sets × the request's region × where the model is offered.
//! A stored credential's region is where its requests go; `global` serves any region without a
//! set of its own; a request that names a region picks the set for it.

use super::fixture::*;
use crate::credential::{BedrockCredential, BedrockKeySet, BedrockScope};
use crate::Credential;
use serde_json::json;

fn sets(regions: &[&str]) -> BedrockScope {
    BedrockScope::Sets(regions.iter().map(|r| (*r).to_owned()).collect())
}

fn iam(regions: &[&str]) -> Credential {
    Credential::Bedrock(BedrockCredential::Iam(
        regions
            .iter()
            .map(|r| BedrockKeySet {
                region: (*r).to_owned(),
                access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
                secret_access_key: "secret".to_owned().into(),
                session_token: None,
            })
            .collect(),
    ))
}

fn with_region(f: Fx, region: Option<&str>) -> Fx {
    match region {
        Some(r) => f.opts(json!({"providerOptions": {"bedrock": {"region": r}}})),
        None => f,
    }
}

/// The region each attempt goes to, or the planner's error.
fn outcome(f: &Fx, model: &str) -> Result<Vec<String>, String> {
    f.run(model, |r| match r {
        Ok(p) => Ok(p.attempts.iter().map(|a| format!("{}@{}", a.credential, a.region.unwrap_or("-"))).collect()),
        Err(e) => Err(e.to_string()),
    })
}

/// (key sets, request region, model, expected: Some(region) or None = the credential can't serve it)
type Case = (&'static [&'static str], Option<&'static str>, &'static str, Option<&'static str>);

const TABLE: &[Case] = &[
    // One set: its region, whatever the catalog's default is (OpenRouter's `{accessKeyId, secretAccessKey, region}`).
    (&["us-west-2"], None, SONNET, Some("us-west-2")),
    (&["us-west-2"], Some("us-west-2"), SONNET, Some("us-west-2")),
    (&["us-west-2"], Some("eu-west-1"), SONNET, None),
    (&["eu-central-1"], None, SONNET, Some("eu-central-1")),
    // Only `global`: the catalog's region, or the request's.
    (&["global"], None, SONNET, Some("us-east-1")),
    (&["global"], Some("ap-south-1"), SONNET, Some("ap-south-1")),
    // `global` and a set of its own: no region asked -> the catalog's region through `global`;
    // the set's region -> that set; another region -> global's keys there.
    (&["global", "eu-west-1"], None, SONNET, Some("us-east-1")),
    (&["global", "eu-west-1"], Some("eu-west-1"), SONNET, Some("eu-west-1")),
    (&["global", "eu-west-1"], Some("us-east-2"), SONNET, Some("us-east-2")),
    // Several sets: the first is home; a request picks the one for its region.
    (&["eu-west-1", "us-west-2"], None, SONNET, Some("eu-west-1")),
    (&["eu-west-1", "us-west-2"], Some("us-west-2"), SONNET, Some("us-west-2")),
    (&["eu-west-1", "us-west-2"], Some("ap-south-1"), SONNET, None),
    // Model availability: Nova Pro is offered in us-east-1 and us-west-2 only.
    (&["us-west-2"], None, NOVA, Some("us-west-2")),
    (&["eu-west-1"], None, NOVA, None),
    (&["global"], None, NOVA, Some("us-east-1")),
    (&["global"], Some("eu-west-1"), NOVA, None),
    (&["global", "eu-west-1"], None, NOVA, Some("us-east-1")),
    (&["global", "eu-west-1"], Some("eu-west-1"), NOVA, None),
    (&["eu-west-1", "us-west-2"], None, NOVA, None),
    (&["eu-west-1", "us-west-2"], Some("us-west-2"), NOVA, Some("us-west-2")),
    (&["global", "eu-west-1"], Some("us-west-2"), NOVA, Some("us-west-2")),
];

fn expected(id: &str, want: Option<&str>) -> Result<Vec<String>, ()> {
    want.map(|r| vec![format!("{id}@{r}")]).ok_or(())
}

#[test]
fn stored_credentials_region_table() {
    for (regions, request, model, want) in TABLE {
        let f = with_region(fx().key_with("k1", AmazonBedrock, |m| m.bedrock = Some(sets(regions))), *request);
        let got = outcome(&f, model);
        match expected("byok:k1", *want) {
            Ok(w) => assert_eq!(got, Ok(w), "sets {regions:?}, request {request:?}, {model}"),
            Err(()) => {
                let e = got.expect_err("no attempt");
                assert!(e.contains("without a key set for the region"), "sets {regions:?}, request {request:?}, {model}: {e}");
            }
        }
    }
}

#[test]
fn request_scoped_credentials_region_table() {
    for (regions, request, model, want) in TABLE {
        let f = with_region(fx().scoped_cred(AmazonBedrock, iam(regions)), *request);
        let got = outcome(&f, model);
        match expected(&format!("request:{AmazonBedrock}#0"), *want) {
            Ok(w) => assert_eq!(got, Ok(w), "sets {regions:?}, request {request:?}, {model}"),
            Err(()) => assert!(got.is_err(), "sets {regions:?}, request {request:?}, {model}: {got:?}"),
        }
    }
}

#[test]
fn system_credentials_region_table() {
    for (regions, request, model, want) in TABLE {
        let f = with_region(fx().system_with(AmazonBedrock, |s| s.bedrock = Some(sets(regions))), *request);
        let got = outcome(&f, model);
        match expected("system#0", *want) {
            Ok(w) => assert_eq!(got, Ok(w), "sets {regions:?}, request {request:?}, {model}"),
            Err(()) => assert!(got.is_err(), "sets {regions:?}, request {request:?}, {model}: {got:?}"),
        }
    }
}

#[test]
fn a_key_for_another_region_falls_through_to_one_that_serves_it() {
    // The BYOK key is for us-west-2; a request for eu-west-1 goes to the operator's global key,
    // and without a request region the BYOK key serves in its own region first.
    let f = fx()
        .key_with("west", AmazonBedrock, |m| m.bedrock = Some(sets(&["us-west-2"])))
        .system_with(AmazonBedrock, |s| s.bedrock = Some(sets(&["global"])));
    assert_eq!(outcome(&f, SONNET), Ok(vec!["byok:west@us-west-2".to_owned(), "system#0@us-east-1".to_owned()]));
    let f = with_region(f, Some("eu-west-1"));
    assert_eq!(outcome(&f, SONNET), Ok(vec!["system#0@eu-west-1".to_owned()]));
}

#[test]
fn api_keys_go_anywhere_and_home_to_their_region() {
    let key = |home: Option<&str>| BedrockScope::Anywhere { home: home.map(str::to_owned) };
    let f = fx().key_with("k", AmazonBedrock, |m| m.bedrock = Some(key(Some("ap-south-1"))));
    assert_eq!(outcome(&f, SONNET), Ok(vec!["byok:k@ap-south-1".to_owned()]));
    assert_eq!(outcome(&with_region(f, Some("eu-west-1")), SONNET), Ok(vec!["byok:k@eu-west-1".to_owned()]));
    let f = fx().key_with("k", AmazonBedrock, |m| m.bedrock = Some(key(None)));
    assert_eq!(outcome(&f, SONNET), Ok(vec!["byok:k@us-east-1".to_owned()]));
    // The catalog's availability still holds for an API key.
    assert!(outcome(&with_region(f, Some("eu-west-1")), NOVA).is_err());
}

#[test]
fn meta_built_from_a_credential_carries_its_regions() {
    let m = crate::route::CredentialMeta::new("k", AmazonBedrock).with_credential(&iam(&["us-west-2", "global"]));
    assert_eq!(m.bedrock, Some(sets(&["us-west-2", "global"])));
}
