//! Transport: TLS is verified by default (a self-signed server is refused without --ca-cert and
//! accepted with it), http:// is refused outside loopback unless --allow-http, and ids that would
//! change the URL path are refused before anything is sent.

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};

fn tls_sandbox() -> (Sandbox, String) {
    let key =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_pem = key.cert.pem();
    let sb = Sandbox::start(SandboxConfig {
        tls: Some((
            cert_pem.clone().into_bytes(),
            key.signing_key.serialize_pem().into_bytes(),
        )),
        ..SandboxConfig::default()
    })
    .unwrap();
    (sb, cert_pem)
}

#[test]
fn a_self_signed_server_is_refused_without_ca_cert_and_accepted_with_it() {
    let (sb, cert_pem) = tls_sandbox();
    let dir = tempdir();
    let url = sb.url_for("hub");
    assert_eq!(url.scheme(), "https");
    let apply = |extra: &[&str]| {
        bulkedit()
            .arg("apply")
            .arg(sample("hub-clean.csv"))
            .args(["--url", url.as_str(), "--rate", "unlimited", "--report"])
            .arg(dir.path().join("r.csv"))
            .args(extra)
            .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
            .output()
            .unwrap()
    };
    let refused = apply(&[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr_of(&refused));
    assert!(
        stderr_of(&refused).contains("certificate is not trusted"),
        "{}",
        stderr_of(&refused)
    );
    assert!(
        stderr_of(&refused).contains("--ca-cert"),
        "the message says what to do"
    );
    assert!(sb.requests().is_empty(), "nothing got past the handshake");
    let ca = write(dir.path(), "ca.pem", &cert_pem);
    let accepted = apply(&["--ca-cert", ca.to_str().unwrap()]);
    assert_eq!(accepted.status.code(), Some(0), "{}", stderr_of(&accepted));
    assert_eq!(read_report(&dir.path().join("r.csv")).len(), 10);
    assert!(!sb.requests().is_empty());
    // A file that is not a certificate is a clear error.
    let junk = write(dir.path(), "junk.pem", "not a certificate");
    let out = apply(&["--ca-cert", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--ca-cert"), "{}", stderr_of(&out));
}

#[test]
fn plain_http_is_allowed_only_to_loopback_or_when_asked() {
    for (url, allowed) in [
        ("http://127.0.0.1:9/x", true),
        ("http://localhost:9/x", true),
        ("http://[::1]:9/x", true),
        ("http://10.1.2.3/automationhub_", false),
        ("http://hub.example.com/automationhub_", false),
        ("ftp://hub.example.com/", false),
    ] {
        let r = bulkedit::commands::apply::check_url(url, false);
        assert_eq!(r.is_ok(), allowed, "{url}: {r:?}");
    }
    assert!(
        bulkedit::commands::apply::check_url("http://hub.example.com/automationhub_", true).is_ok()
    );
    assert!(
        bulkedit::commands::apply::check_url("https://h.example.com/x?y=1", false).is_err(),
        "a query is not a service root"
    );
}

#[test]
fn ids_that_would_change_the_url_path_are_refused_and_never_sent() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let f = write(
        dir.path(),
        "ids.csv",
        "userId,name\n../00000000-0000-4000-8000-000000000001,A\n00000000-0000-4000-8000-000000000002%2Fx,B\n00000000-0000-4000-8000-000000000003?admin=1,C\n00000000-0000-4000-8000-000000000004#frag,D\n",
    );
    let out = bulkedit()
        .arg("apply")
        .arg(&f)
        .args(["--url", sb.url_for("identity").as_str(), "--report"])
        .arg(dir.path().join("r.csv"))
        .env("BULKEDIT_CLIENT_ID", "sandbox-client")
        .env("BULKEDIT_CLIENT_SECRET", "sandbox-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows = read_report(&dir.path().join("r.csv"));
    assert!(
        rows.iter()
            .all(|r| r["status"] == "invalid"
                && r["error"].starts_with("userId: an id cannot contain")),
        "{rows:?}"
    );
    assert!(
        sb.requests().iter().all(|r| !r.path.contains("/api/User/")),
        "no user URL was requested"
    );
}

#[test]
fn path_segments_are_percent_encoded_whatever_they_hold() {
    let base = url::Url::parse("https://h.example.com/acme/identity_/").unwrap();
    let u = bulkedit::platform::endpoint(&base, &["api", "User", "a/../b?c#d"]);
    assert_eq!(
        u.as_str(),
        "https://h.example.com/acme/identity_/api/User/a%2F..%2Fb%3Fc%23d"
    );
}
