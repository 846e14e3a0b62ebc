//! The read endpoint's query: every bad parameter is a 400 naming it.

use crate::support::StoreCtx;
use crate::support::app::spawn_app;

backend_test! {
    async fn a_limit_outside_1_to_100_is_a_400_naming_limit(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        for query in [
            "limit=0",
            "limit=101",
            "limit=-1",
            "limit=abc",
            "limit=",
            "limit=2.5",
        ] {
            let r = app.get(&format!("/sessions/call-1?{query}")).await;

            r.assert_problem(400, "validation_failed");
            assert_eq!(r.error_fields(), ["limit"], "{query}: {}", r.text);
        }
    }
}

backend_test! {
    async fn an_order_other_than_asc_or_desc_is_a_400_naming_order(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        for query in ["order=up", "order=ASC", "order="] {
            let r = app.get(&format!("/sessions/call-1?{query}")).await;

            r.assert_problem(400, "validation_failed");
            assert_eq!(r.error_fields(), ["order"], "{query}: {}", r.text);
        }
    }
}

backend_test! {
    async fn a_page_below_1_or_not_a_number_is_a_400_naming_page(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        for query in ["page=0", "page=-1", "page=x", "page="] {
            let r = app.get(&format!("/sessions/call-1?{query}")).await;

            r.assert_problem(400, "validation_failed");
            assert_eq!(r.error_fields(), ["page"], "{query}: {}", r.text);
        }
    }
}

backend_test! {
    async fn an_unknown_query_parameter_is_a_400_naming_it(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        let r = app.get("/sessions/call-1?offset=10").await;

        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["offset"]);
    }
}

backend_test! {
    async fn a_repeated_query_parameter_is_a_400(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        let r = app.get("/sessions/call-1?limit=5&limit=5").await;

        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["limit"]);
    }
}

backend_test! {
    async fn every_bad_query_parameter_is_reported_at_once(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        let r = app
            .get("/sessions/call-1?limit=0&order=up&page=0&bogus=1")
            .await;

        r.assert_problem(400, "validation_failed");
        let mut fields = r.error_fields();
        fields.sort();
        assert_eq!(fields, ["bogus", "limit", "order", "page"]);
    }
}

backend_test! {
    async fn page_together_with_after_is_a_400(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        app.add_events("call-1", "e-", 3).await;
        let first = app.read_session("call-1", "?limit=1").await;
        let cursor = first["pagination"]["nextCursor"].as_str().unwrap();

        let r = app
            .get(&format!("/sessions/call-1?limit=1&page=2&after={cursor}"))
            .await;

        r.assert_problem(400, "validation_failed");
        assert!(r.error_fields().contains(&"page".to_owned()), "{}", r.text);
    }
}

backend_test! {
    async fn an_after_that_is_not_a_next_cursor_is_a_400_naming_after(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        app.add_events("call-1", "e-", 3).await;

        // "djEuYS4wMQ" is base64 of "v1.a.01": the right shape but not a canonical cursor.
        for after in ["garbage", "", "1", "djEuYS4wMQ", "%21%21%21"] {
            let r = app.get(&format!("/sessions/call-1?after={after}")).await;

            r.assert_problem(400, "validation_failed");
            assert_eq!(r.error_fields(), ["after"], "{after}: {}", r.text);
        }
    }
}

backend_test! {
    async fn a_cursor_from_an_ascending_walk_is_refused_in_descending_order(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        app.add_events("call-1", "e-", 3).await;
        let asc = app.read_session("call-1", "?limit=1").await;
        let asc_cursor = asc["pagination"]["nextCursor"].as_str().unwrap();
        let desc = app.read_session("call-1", "?limit=1&order=desc").await;
        let desc_cursor = desc["pagination"]["nextCursor"].as_str().unwrap();

        let asc_in_desc = app
            .get(&format!("/sessions/call-1?order=desc&after={asc_cursor}"))
            .await;
        let desc_in_asc = app
            .get(&format!("/sessions/call-1?after={desc_cursor}"))
            .await;

        asc_in_desc.assert_problem(400, "validation_failed");
        assert_eq!(asc_in_desc.error_fields(), ["after"]);
        desc_in_asc.assert_problem(400, "validation_failed");
        assert_eq!(desc_in_asc.error_fields(), ["after"]);
    }
}

backend_test! {
    async fn a_bad_query_is_a_400_even_for_an_unknown_session(s: StoreCtx) {
        let app = spawn_app(s).await;

        let r = app.get("/sessions/nobody?limit=0").await;

        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["limit"]);
    }
}
