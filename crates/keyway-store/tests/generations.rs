//! Generation rows written by the usage writer's batch insert (its own rusqlite connection on an
//! SQLite file, multi-row statements on PostgreSQL) read back field for field, all or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_store::*;
use std::sync::Arc;

mod common;
use common::*;

fn full(i: usize, ws: &str) -> GenerationRow {
    GenerationRow {
        user_id: i.is_multiple_of(2).then(|| format!("user-{i}")),
        streamed: i.is_multiple_of(3),
        ttft_ms: i.is_multiple_of(3).then_some(i as i64),
        attempts: format!(r#"[{{"provider":"openai","status":200,"n":{i}}}]"#),
        finish_reason: Some("stop".into()),
        app_referer: i.is_multiple_of(5).then(|| "https://app.example".into()),
        app_title: Some("héllo ✓ 'quoted'".into()),
        cache_write_tokens: i as i64,
        has_usage: !i.is_multiple_of(7),
        route_plan: plan(i),
        ..gen(&format!("gen-{i:05}"), ws, "kh", "openai/gpt-4o-mini", Some("openai"), i % 2 == 1, i as i64 * 3, i as i64, 1_000 + i as i64)
    }
}

/// Every fourth row names one of three plans; the rows between them keep an older row's inline
/// text (no id).
fn plan(i: usize) -> Option<Arc<RoutePlan>> {
    let text = |n: usize| format!(r#"{{"candidates":[{{"position":1,"provider":"openai","plan":{n}}}],"excluded":[]}}"#);
    match i % 4 {
        0 => Some(Arc::new(RoutePlan::new(text(i % 3)))),
        2 => Some(Arc::new(RoutePlan { id: None, text: text(i) })),
        _ => None,
    }
}

#[tokio::test]
async fn each_distinct_route_plan_is_stored_once_and_read_back_with_its_rows() {
    for (url, _dir) in engine_urls().await {
        let keyring = Arc::new(keyway_crypto::Keyring::new(keyway_crypto::MasterKey::generate()));
        let s = Store::connect(&url, keyring.clone()).await.unwrap();
        let ws = s.create_workspace("W", "w").await.unwrap();
        let rows: Vec<GenerationRow> = (0..100).map(|i| full(i, &ws.id)).collect();
        s.insert_generations(Arc::from(&rows[..50])).await.unwrap();
        s.insert_generations(Arc::from(&rows[50..])).await.unwrap();
        // Another node, which has not seen them, writes the same plans again: no conflict.
        let other = Store::connect(&url, keyring).await.unwrap();
        other.insert_generations(Arc::from([full(100, &ws.id), full(104, &ws.id)])).await.unwrap();
        let mut out = Vec::new();
        let report = s.export_dump(&mut out).await.unwrap();
        let plans = report.rows.iter().find(|(t, _)| *t == "route_plans").unwrap().1;
        assert_eq!(plans, 3, "three distinct plans, each once");
        let back = s.list_generations(&ws.id).await.unwrap();
        assert_eq!(&back[..100], &rows[..]);
        let named = back.iter().filter(|g| g.route_plan.as_ref().is_some_and(|p| p.id.is_some())).count();
        assert_eq!(named, 27, "rows 0, 4, .., 104 name their plan");
        let dump = String::from_utf8(out).unwrap();
        assert_eq!(dump.matches(r#"\"plan\":0}"#).count(), 1, "a plan's text is in the store once");
        s.close().await;
        other.close().await;
    }
}

#[tokio::test]
async fn a_batch_reads_back_field_for_field() {
    each_engine(|s| async move {
        let ws = s.create_workspace("W", "w").await.unwrap();
        let rows: Vec<GenerationRow> = (0..1_200).map(|i| full(i, &ws.id)).collect();
        // Two batches, as the writer commits them.
        s.insert_generations(Arc::from(&rows[..700])).await.unwrap();
        s.insert_generations(Arc::from(&rows[700..])).await.unwrap();
        s.insert_generations(Arc::from(Vec::new())).await.unwrap();
        assert_eq!(s.count_generations(&ws.id).await.unwrap(), 1_200);
        assert_eq!(s.list_generations(&ws.id).await.unwrap(), rows);
        let one = s.get_generation(Some(&ws.id), "gen-00042").await.unwrap();
        assert_eq!(one, rows[42]);
    })
    .await;
}

#[tokio::test]
async fn a_failing_batch_writes_nothing_and_the_next_one_works() {
    each_engine(|s| async move {
        let ws = s.create_workspace("W", "w").await.unwrap();
        s.insert_generations(Arc::from([full(1, &ws.id)])).await.unwrap();
        // gen-00001 again, in the middle of a batch: the whole batch is refused.
        let bad = [full(2, &ws.id), full(1, &ws.id), full(3, &ws.id)];
        assert!(s.insert_generations(Arc::from(bad)).await.is_err());
        assert_eq!(s.count_generations(&ws.id).await.unwrap(), 1, "no half-written batch");
        s.insert_generations(Arc::from([full(2, &ws.id), full(3, &ws.id)])).await.unwrap();
        assert_eq!(s.count_generations(&ws.id).await.unwrap(), 3);
    })
    .await;
}

#[tokio::test]
async fn rows_written_apart_from_the_pool_are_seen_by_a_reopened_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let keyring = Arc::new(keyway_crypto::Keyring::new(keyway_crypto::MasterKey::generate()));
    let s = Store::connect(&url, keyring.clone()).await.unwrap();
    let ws = s.create_workspace("W", "w").await.unwrap();
    s.insert_generations(Arc::from([full(7, &ws.id)])).await.unwrap();
    s.close().await;
    drop(s);
    let again = Store::connect(&url, keyring).await.unwrap();
    assert_eq!(again.get_generation(None, "gen-00007").await.unwrap(), full(7, &ws.id));
}

#[tokio::test]
async fn recent_generations_are_newest_first_and_filtered() {
    each_engine(|s| async move {
        let ws = s.create_workspace("W", "w").await.unwrap();
        let other = s.create_workspace("O", "o").await.unwrap();
        let fell_back = r#"[{"provider":"openai","credential_id":"c1","status":401,"error":"auth","latency_ms":1},{"provider":"openai","credential_id":"c2","status":200,"latency_ms":2}]"#;
        let rows = vec![
            GenerationRow { attempts: fell_back.into(), credential_id: Some("c2".into()), ..gen("g1", &ws.id, "k1", "openai/gpt-4o-mini", Some("openai"), true, 1, 1, 1_000) },
            GenerationRow { status: 502, ..gen("g2", &ws.id, "k2", "anthropic/claude-haiku-4.5", Some("anthropic"), false, 1, 1, 2_000) },
            gen("g3", &ws.id, "k1", "openai/gpt-4o-mini", Some("openai"), false, 1, 1, 3_000),
            gen("g4", &other.id, "k9", "openai/gpt-4o-mini", Some("openai"), false, 1, 1, 4_000),
        ];
        s.insert_generations(Arc::from(rows)).await.unwrap();
        let ids = |v: Vec<GenerationRow>| v.into_iter().map(|g| g.id).collect::<Vec<_>>();
        let any = GenerationFilter::default();
        assert_eq!(ids(s.recent_generations(Some(&ws.id), &any, 10).await.unwrap()), ["g3", "g2", "g1"]);
        assert_eq!(ids(s.recent_generations(None, &any, 2).await.unwrap()), ["g4", "g3"]);
        let f = GenerationFilter { fell_back: true, ..Default::default() };
        assert_eq!(ids(s.recent_generations(Some(&ws.id), &f, 10).await.unwrap()), ["g1"]);
        let f = GenerationFilter { succeeded: Some(false), ..Default::default() };
        assert_eq!(ids(s.recent_generations(Some(&ws.id), &f, 10).await.unwrap()), ["g2"]);
        let f = GenerationFilter { api_key_hash: Some("k1".into()), provider: Some("openai".into()), ..Default::default() };
        assert_eq!(ids(s.recent_generations(Some(&ws.id), &f, 10).await.unwrap()), ["g3", "g1"]);
        let f = GenerationFilter { model: Some("anthropic/claude-haiku-4.5".into()), ..Default::default() };
        assert_eq!(ids(s.recent_generations(Some(&ws.id), &f, 10).await.unwrap()), ["g2"]);
        let f = GenerationFilter { credential_id: Some("c2".into()), ..Default::default() };
        assert_eq!(ids(s.recent_generations(Some(&ws.id), &f, 10).await.unwrap()), ["g1"]);
    })
    .await;
}

#[tokio::test]
async fn migration_0009_keeps_the_plans_of_rows_written_before_it() {
    for (url, _dir) in engine_urls().await {
        // A database as a release before 0009 left it: one generation with its plan inline.
        let (pool, url) = migrated_before(url, "0009").await;
        let plan = r#"{"candidates":[{"position":1,"provider":"openai"}],"excluded":[]}"#;
        sqlx::query("INSERT INTO workspaces (id, name, slug, created_at) VALUES ('ws-old', 'Old', 'old', 1)").execute(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO generations (id, workspace_id, api_key_hash, requested_model, is_byok, streamed, status, prompt_tokens, completion_tokens, \
             cached_tokens, cache_write_tokens, has_usage, latency_ms, attempts, cost_micros, fee_micros, created_at, route_plan) \
             VALUES ('gen-old', 'ws-old', 'kh', 'openai/gpt-4o-mini', 0, 0, 200, 1, 2, 0, 0, 1, 5, '[]', 0, 0, 10, $1)",
        )
        .bind(plan)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let keyring = Arc::new(keyway_crypto::Keyring::new(keyway_crypto::MasterKey::generate()));
        let s = Store::connect(&url, keyring).await.unwrap();
        let old_row = s.get_generation(Some("ws-old"), "gen-old").await.unwrap();
        assert_eq!(old_row.route_plan.as_deref(), Some(&RoutePlan { id: None, text: plan.into() }), "the inline text is read as before");
        // A new row naming the same text stores it apart, and both read back the same plan.
        let named = Arc::new(RoutePlan::new(plan.into()));
        s.insert_generations(Arc::from([GenerationRow { route_plan: Some(named.clone()), ..gen("gen-new", "ws-old", "kh", "openai/gpt-4o-mini", Some("openai"), false, 1, 1, 11) }])).await.unwrap();
        let new_row = s.get_generation(None, "gen-new").await.unwrap();
        assert_eq!(new_row.route_plan, Some(named));
        s.close().await;
    }
}
