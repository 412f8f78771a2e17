//! Credits ledger, activity aggregates (incl. by app) and workspace spend, the same checks on
//! SQLite and PostgreSQL (see common/mod.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_store::*;
use std::sync::Arc;

mod common;
use common::*;

const DAY: i64 = 86_400_000;

#[tokio::test]
async fn ledger_totals_charge_fee_for_byok_and_cost_for_system() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        s.add_credits(&a.id, CreditKind::Topup, 5_000_000, Some("first"), Some("k1")).await.unwrap();
        s.add_credits(&a.id, CreditKind::Topup, 1_000_000, None, None).await.unwrap();
        s.add_credits(&a.id, CreditKind::Adjustment, -250_000, Some("refund reversal"), None).await.unwrap();
        assert!(matches!(s.add_credits(&a.id, CreditKind::Topup, 0, None, None).await, Err(StoreError::Conflict(_))));
        s.add_credits(&b.id, CreditKind::Topup, 42, None, None).await.unwrap();

        let t0 = 100 * DAY;
        s.insert_generations(Arc::from([
            gen("g1", &a.id, "ka", "openai/gpt-4o-mini", Some("openai"), false, 1_000, 0, t0),
            gen("g2", &a.id, "ka", "openai/gpt-4o-mini", Some("openai"), true, 2_000, 100, t0 + 1),
            gen("g3", &a.id, "kb", "openai/gpt-4o", Some("azure"), true, 3_000, 0, t0 + DAY),
            gen("g4", &a.id, "kb", "openai/gpt-4o", None, false, 0, 0, t0 + DAY + 5),
            gen("g5", &b.id, "kc", "openai/gpt-4o", Some("openai"), false, 7, 0, t0 - DAY),
        ]))
        .await
        .unwrap();

        let totals = s.credit_totals(t0 + DAY).await.unwrap();
        let ta = totals[&a.id];
        assert_eq!(ta.credits_micros, 5_750_000);
        assert_eq!(ta.usage_micros, 1_000 + 100, "system pays cost, BYOK pays fee");
        assert_eq!(ta.usage_since_micros, 0, "g3 was a waived BYOK request, g4 failed");
        assert_eq!(ta.byok_requests_since, 1, "only BYOK requests an upstream served count toward the waiver");
        assert_eq!(totals[&b.id].credits_micros, 42);
        assert_eq!(totals[&b.id].usage_micros, 7);

        let spend = s.key_spend_since(t0).await.unwrap();
        assert_eq!(spend["ka"], 1_000 + 2_100);
        assert_eq!(spend["kb"], 3_000);
        assert!(!spend.contains_key("kc"));

        let entries = s.list_credit_entries(&a.id, 10).await.unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().any(|e| e.kind == CreditKind::Adjustment && e.amount_micros == -250_000));
        assert!(entries.iter().any(|e| e.note.as_deref() == Some("first") && e.created_by.as_deref() == Some("k1")));
    })
    .await;
}

#[tokio::test]
async fn activity_groups_and_filters() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        let t0 = 200 * DAY;
        s.insert_generations(Arc::from([
            gen("g1", &a.id, "ka", "openai/gpt-4o-mini", Some("openai"), false, 1_000, 0, t0),
            gen("g2", &a.id, "ka", "openai/gpt-4o-mini", Some("openai"), true, 2_000, 100, t0 + 1),
            gen("g3", &a.id, "kb", "openai/gpt-4o", Some("azure"), true, 3_000, 0, t0 + DAY),
            gen("g4", &a.id, "kb", "openai/gpt-4o", None, false, 0, 0, t0 + DAY + 5),
            gen("g5", &b.id, "kc", "openai/gpt-4o", Some("openai"), false, 7, 0, t0),
            gen("g6", &a.id, "ka", "openai/gpt-4o", Some("openai"), false, 9, 0, t0 + 10 * DAY),
        ]))
        .await
        .unwrap();
        let to = t0 + 2 * DAY;

        let by_model = s.activity(Some(&a.id), t0, to, ActivityGroup::Model).await.unwrap();
        assert_eq!(by_model.len(), 2);
        let mini = by_model.iter().find(|r| r.model == "openai/gpt-4o-mini").unwrap();
        assert_eq!((mini.requests, mini.succeeded, mini.byok_requests), (2, 2, 1));
        assert_eq!((mini.prompt_tokens, mini.completion_tokens, mini.cached_tokens), (20, 10, 4));
        assert_eq!((mini.cost_micros, mini.fee_micros, mini.charged_micros, mini.byok_cost_micros), (3_000, 100, 1_100, 2_000));
        let big = by_model.iter().find(|r| r.model == "openai/gpt-4o").unwrap();
        assert_eq!((big.requests, big.succeeded), (2, 1), "a failed request counts under the requested model");

        let by_provider = s.activity(Some(&a.id), t0, to, ActivityGroup::Provider).await.unwrap();
        let names: Vec<&str> = by_provider.iter().map(|r| r.provider.as_str()).collect();
        assert_eq!(names, vec!["", "azure", "openai"]);

        let by_key = s.activity(Some(&a.id), t0, to, ActivityGroup::Key).await.unwrap();
        assert_eq!(by_key.iter().map(|r| (r.api_key_hash.as_str(), r.requests)).collect::<Vec<_>>(), vec![("ka", 2), ("kb", 2)]);

        let by_cred = s.activity(Some(&a.id), t0, to, ActivityGroup::Credential).await.unwrap();
        assert!(by_cred.iter().any(|r| r.credential_id == "cred-1" && r.requests == 2));

        let by_day = s.activity(Some(&a.id), t0, to, ActivityGroup::Day).await.unwrap();
        assert_eq!(by_day.iter().map(|r| (r.day, r.requests)).collect::<Vec<_>>(), vec![(200, 2), (201, 2)]);

        let or = s.activity(Some(&a.id), t0, to, ActivityGroup::DayModelProvider).await.unwrap();
        assert_eq!(or.len(), 3);

        // Without a workspace filter (an admin): workspace B's row is there too.
        let all = s.activity(None, t0, to, ActivityGroup::Model).await.unwrap();
        assert_eq!(all.iter().map(|r| r.requests).sum::<i64>(), 5);
        assert!(s.activity(Some(&a.id), to, to + DAY, ActivityGroup::Model).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn workspace_spend_counts_cost_plus_fee_per_period() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        let (month, day) = (100 * DAY, 120 * DAY);
        s.insert_generations(Arc::from([
            gen("g1", &a.id, "k1", "m", Some("openai"), false, 1000, 0, month - 1), // last month
            gen("g2", &a.id, "k1", "m", Some("openai"), true, 200, 10, month + 5), // this month
            gen("g3", &a.id, "k2", "m", Some("openai"), false, 300, 0, day + 1), // today
            gen("g4", &b.id, "k3", "m", None, false, 0, 0, day + 2), // nothing served
        ]))
        .await
        .unwrap();
        let spend = s.workspace_spend_since(day, month).await.unwrap();
        assert_eq!(spend.get(&a.id), Some(&(300, 510)), "today: g3; this month: g2 (cost + fee) and g3");
        assert_eq!(spend.get(&b.id), Some(&(0, 0)));
        let rows = s.list_generations(&a.id).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["g1", "g2", "g3"]);
        assert_eq!((rows[1].cost_micros, rows[1].fee_micros, rows[1].is_byok), (200, 10, true));
        assert!(s.list_generations("nope").await.unwrap().is_empty());
    })
    .await;
}

// Activity by the attribution headers (`HTTP-Referer`, `X-Title`).

fn app_gen(id: &str, ws: &str, referer: Option<&str>, title: Option<&str>, at: i64) -> GenerationRow {
    GenerationRow {
        cached_tokens: 0,
        finish_reason: Some("stop".into()),
        app_referer: referer.map(str::to_owned),
        app_title: title.map(str::to_owned),
        ..gen(id, ws, "k", "openai/gpt-4o-mini", Some("openai"), false, 100, 0, at)
    }
}

async fn check_activity_by_app(s: Store) {
    let ws = s.create_workspace("W", "w").await.unwrap();
    s.insert_generations(Arc::from([
        app_gen("g1", &ws.id, Some("https://a.example"), Some("App A"), 10),
        app_gen("g2", &ws.id, Some("https://a.example"), Some("App A"), 11),
        app_gen("g3", &ws.id, Some("https://a.example"), None, 12),
        app_gen("g4", &ws.id, None, None, 13),
    ]))
    .await
    .unwrap();
    let rows = s.activity(Some(&ws.id), 0, 100, ActivityGroup::App).await.unwrap();
    let got: Vec<(&str, &str, i64, i64)> = rows.iter().map(|r| (r.app_referer.as_str(), r.app_title.as_str(), r.requests, r.cost_micros)).collect();
    assert_eq!(got, [("", "", 1, 100), ("https://a.example", "", 1, 100), ("https://a.example", "App A", 2, 200)]);
    assert_eq!(ActivityGroup::parse("app"), Some(ActivityGroup::App));
    // Other groupings leave the app columns empty.
    let by_model = s.activity(Some(&ws.id), 0, 100, ActivityGroup::Model).await.unwrap();
    assert_eq!((by_model.len(), by_model[0].app_referer.as_str()), (1, ""));
}

#[tokio::test]
async fn activity_grouped_by_app() {
    each_engine(check_activity_by_app).await;
}

#[tokio::test]
async fn credit_sums_past_i64_saturate_instead_of_failing() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        s.add_credits(&a.id, CreditKind::Topup, i64::MAX, None, None).await.unwrap();
        s.add_credits(&a.id, CreditKind::Topup, i64::MAX, None, None).await.unwrap();
        s.add_credits(&b.id, CreditKind::Topup, 42, None, None).await.unwrap();
        let totals = s.credit_totals(0).await.expect("the ledger sums failed");
        assert_eq!(totals[&a.id].credits_micros, i64::MAX);
        assert_eq!(totals[&b.id].credits_micros, 42, "the other workspaces keep their exact sums");
    })
    .await;
}

#[tokio::test]
async fn a_store_with_every_migration_applied_is_ready() {
    each_engine(|s| async move {
        assert_eq!(s.readiness().await, Ok(()));
        s.close().await;
        assert!(s.readiness().await.is_err_and(|e| e.contains("unreachable")));
    })
    .await;
}

/// Rows spread over keys, workspaces and days, in several batches (two writers adding to the
/// same days), against sums taken straight from the rows.
#[tokio::test]
async fn the_day_totals_agree_with_the_rows_they_sum() {
    each_engine(|s| async move {
        let a = s.create_workspace("A", "a").await.unwrap();
        let b = s.create_workspace("B", "b").await.unwrap();
        let rows: Vec<GenerationRow> = (0..600i64)
            .map(|i| {
                let ws = if i % 5 == 0 { &b.id } else { &a.id };
                let provider = (i % 7 != 0).then_some("openai");
                gen(&format!("g{i:04}"), ws, &format!("k{}", i % 3), "m", provider, i % 2 == 0, i * 11, i % 4, 200 * DAY + i * (DAY / 40))
            })
            .collect();
        for chunk in rows.chunks(97) {
            s.insert_generations(Arc::from(chunk)).await.unwrap();
        }
        let (day, month) = (210 * DAY, 203 * DAY);
        let since = |t: i64| rows.iter().filter(move |g| g.created_at >= t);
        let charged = |g: &GenerationRow| if g.is_byok { g.fee_micros } else { g.cost_micros };
        let totals = s.credit_totals(month).await.unwrap();
        for ws in [&a.id, &b.id] {
            let mine = |g: &&GenerationRow| &g.workspace_id == ws;
            let t = totals[ws];
            assert_eq!(t.usage_micros, rows.iter().filter(mine).map(charged).sum::<i64>());
            assert_eq!(t.usage_since_micros, since(month).filter(mine).map(charged).sum::<i64>());
            assert_eq!(t.byok_requests_since, since(month).filter(mine).filter(|g| g.is_byok && g.provider.is_some()).count() as i64);
            let spend = s.workspace_spend_since(day, month).await.unwrap()[ws];
            let cost = |g: &GenerationRow| g.cost_micros + g.fee_micros;
            assert_eq!(spend, (since(day).filter(mine).map(cost).sum::<i64>(), since(month).filter(mine).map(cost).sum::<i64>()));
        }
        let by_key = s.key_spend_since(day).await.unwrap();
        for k in ["k0", "k1", "k2"] {
            assert_eq!(by_key[k], since(day).filter(|g| g.api_key_hash == k).map(|g| g.cost_micros + g.fee_micros).sum::<i64>(), "{k}");
        }
        // A batch the store refuses adds nothing to the days either.
        let dup = [gen("g-new", &a.id, "k0", "m", Some("openai"), false, 1_000_000, 0, 215 * DAY), rows[0].clone()];
        assert!(s.insert_generations(Arc::from(dup)).await.is_err());
        assert_eq!(s.key_spend_since(day).await.unwrap(), by_key, "all or nothing");
    })
    .await;
}

#[tokio::test]
async fn migration_0010_sums_the_rows_written_before_it() {
    for (url, _dir) in engine_urls().await {
        let (pool, url) = migrated_before(url, "0010").await;
        // (id, key, byok, provider served, cost, fee, at)
        let before = [
            ("g1", "ka", 0, true, 1_000, 0, 300 * DAY + 5),
            ("g2", "ka", 1, true, 2_000, 100, 300 * DAY + 6),
            ("g3", "ka", 1, true, 4_000, 7, 301 * DAY),
            ("g4", "kb", 0, false, 0, 0, 301 * DAY + 1),
            ("g5", "kb", 0, true, 50, 0, 299 * DAY),
        ];
        for (id, key, byok, served, cost, fee, at) in before {
            sqlx::query(
                "INSERT INTO generations (id, workspace_id, api_key_hash, requested_model, provider, is_byok, streamed, status, prompt_tokens, \
                 completion_tokens, cached_tokens, cache_write_tokens, has_usage, latency_ms, attempts, cost_micros, fee_micros, created_at) \
                 VALUES ($1, 'ws-old', $2, 'm', $3, $4, 0, 200, 1, 1, 0, 0, 1, 1, '[]', $5, $6, $7)",
            )
            .bind(id)
            .bind(key)
            .bind(served.then_some("openai"))
            .bind(byok)
            .bind(cost)
            .bind(fee)
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        let s = Store::connect(&url, Arc::new(keyway_crypto::Keyring::new(keyway_crypto::MasterKey::generate()))).await.unwrap();
        let t = s.credit_totals(300 * DAY).await.unwrap()["ws-old"];
        assert_eq!((t.usage_micros, t.usage_since_micros, t.byok_requests_since), (1_000 + 100 + 7 + 50, 1_000 + 100 + 7, 2));
        let spend = s.key_spend_since(300 * DAY).await.unwrap();
        assert_eq!((spend["ka"], spend["kb"]), (1_000 + 2_100 + 4_007, 0));
        assert_eq!(s.workspace_spend_since(301 * DAY, 300 * DAY).await.unwrap()["ws-old"], (4_007, 7_107));
        // Rows written after it add to the same days.
        s.insert_generations(Arc::from([gen("g6", "ws-old", "ka", "m", Some("openai"), false, 10, 0, 301 * DAY + 9)])).await.unwrap();
        assert_eq!(s.key_spend_since(301 * DAY).await.unwrap()["ka"], 4_007 + 10);
        s.close().await;
    }
}
