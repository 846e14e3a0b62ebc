use std::net::IpAddr;
use std::time::Duration;

use super::*;

#[test]
fn signs_the_standard_webhooks_example_as_the_spec_does() {
    // The example of the Standard Webhooks documentation (and Svix's).
    let secret = Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
    let signature = secret.sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

#[test]
fn a_generated_secret_has_32_random_bytes_and_differs_each_time() {
    let (a, b) = (Secret::generate().unwrap(), Secret::generate().unwrap());
    assert!(a.expose().starts_with("whsec_"));
    assert_eq!(a.key().len(), 32);
    assert_ne!(a, b);
    assert_eq!(format!("{a:?}"), "Secret(…)");
}

#[test]
fn urls_must_be_http_with_a_host_and_no_credentials() {
    assert!(WebhookUrl::parse("https://hooks.example.com/in?x=1").is_ok());
    assert!(WebhookUrl::parse("http://127.0.0.1:9000/").is_ok());
    for bad in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "https://user:pw@example.com/",
        "https://example.com/#frag",
        "not a url",
        "http://",
    ] {
        assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
    }
    assert!(WebhookUrl::parse(&format!("https://e.com/{}", "a".repeat(2100))).is_err());
}

#[test]
fn private_loopback_and_link_local_addresses_are_forbidden() {
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "::ffff:0:7f00:1",
        "64:ff9b::7f00:1",
        "64:ff9b:1::a00:1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "198.18.0.1",
        "198.19.255.255",
    ] {
        assert!(forbidden_address(ip.parse::<IpAddr>().unwrap()), "{ip}");
    }
    for ip in [
        "93.184.216.34",
        "8.8.8.8",
        "2606:4700::1111",
        "100.128.0.1",
        "198.20.0.1",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "::ffff:8.8.8.8",
    ] {
        assert!(!forbidden_address(ip.parse::<IpAddr>().unwrap()), "{ip}");
    }
}

#[test]
fn the_message_id_is_the_same_for_one_position_and_differs_between_positions() {
    assert_eq!(message_id("42"), message_id("42"));
    assert_ne!(message_id("42"), message_id("43"));
    assert!(message_id("42").starts_with("msg_") && message_id("42").len() == 36);
    // Stored messages keep their ids across upgrades: the derivation must not change (the first
    // 16 bytes of SHA-256, in lower-case hex, as Python's hashlib gives them).
    assert_eq!(message_id("42"), "msg_73475cb40a568e8da8a045ced110137e");
}

#[test]
fn a_metadata_filter_holds_scalars_under_metadata_keys() {
    let filter = parse_metadata_filter(&serde_json::json!({"tenant": "acme", "tier": 2})).unwrap();
    let meta = |v: serde_json::Value| v.as_object().unwrap().clone();
    assert!(filter_matches(
        &filter,
        &meta(serde_json::json!({"tenant": "acme", "tier": 2, "x": 1}))
    ));
    assert!(!filter_matches(
        &filter,
        &meta(serde_json::json!({"tenant": "acme", "tier": "2"}))
    ));
    assert!(parse_metadata_filter(&serde_json::json!({"a b": 1})).is_err());
    assert!(parse_metadata_filter(&serde_json::json!({"a": {"b": 1}})).is_err());
    assert!(parse_metadata_filter(&serde_json::json!([1])).is_err());
}

#[test]
fn the_schedule_gives_each_retry_its_delay_within_ten_percent() {
    let schedule = RetrySchedule::parse("0,5,300").unwrap();
    let now = Timestamp::from_millis(1_000_000).unwrap();
    assert_eq!(schedule.attempts(), 3);
    assert_eq!(schedule.next_at(0, now, 1.0), Some(now));
    assert_eq!(schedule.next_at(1, now, 0.0).unwrap().millis(), 1_005_000);
    assert_eq!(schedule.next_at(2, now, 1.0).unwrap().millis(), 1_330_000);
    assert_eq!(schedule.next_at(2, now, -1.0).unwrap().millis(), 1_270_000);
    assert_eq!(schedule.next_at(3, now, 0.0), None);
    assert!(RetrySchedule::parse("").is_err());
    assert!(RetrySchedule::parse("1,x").is_err());
}

#[test]
fn verdicts_follow_the_status() {
    assert_eq!(verdict(Some(204), None), Verdict::Delivered);
    assert_eq!(verdict(Some(410), None), Verdict::Gone);
    let later = Some(Duration::from_secs(7));
    assert_eq!(
        verdict(Some(503), later),
        Verdict::Retry { not_before: later }
    );
    assert_eq!(
        verdict(Some(500), later),
        Verdict::Retry { not_before: None }
    );
    assert_eq!(verdict(None, None), Verdict::Retry { not_before: None });
    assert_eq!(
        verdict(Some(301), None),
        Verdict::Retry { not_before: None }
    );
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let now = Timestamp::parse("2015-10-21T07:27:00Z").unwrap();
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    // The obsolete forms RFC 9110 has recipients accept too.
    for old in [
        "Wednesday, 21-Oct-15 07:28:00 GMT",
        "Wed Oct 21 07:28:00 2015",
    ] {
        assert_eq!(
            parse_retry_after(old, now),
            Some(Duration::from_secs(60)),
            "{old}"
        );
    }
    // A past date is now; beyond a day is a day.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("172800", now), Some(MAX_RETRY_AFTER));
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 2044 08:49:37 GMT", now),
        Some(MAX_RETRY_AFTER)
    );
    assert_eq!(parse_retry_after("soon", now), None);
}
