//! Runs every `events/<function>/<status>-<mode>-<case>.json` through its function's handler and
//! checks the status its name promises, so no fixture rots.

use std::path::PathBuf;

use chatgate_tests::*;
use lambda_http::http::header;
use token::handler::{TokenState, handle};

fn fixtures() -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(workspace_root().join("events")).expect("events/") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let function = dir.file_name().expect("name").to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).expect("function dir") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|e| e == "json") {
                found.push((function.clone(), file));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn every_event_fixture_answers_the_status_in_its_name() {
    let jwt = TokenState::from_settings(&jwt_settings(&[])).await.expect("jwt config");
    let authorizer = TokenState::from_settings(&authorizer_settings(&[])).await.expect("authorizer config");
    let fixtures = fixtures();
    assert!(fixtures.len() >= 20, "expected the generated fixtures, found {}", fixtures.len());
    for (function, path) in fixtures {
        let name = path.file_stem().expect("stem").to_string_lossy().into_owned();
        let mut parts = name.splitn(3, '-');
        let (status, mode) = (parts.next().expect("status"), parts.next().expect("mode"));
        let status: u16 = status.parse().unwrap_or_else(|_| panic!("{name}: name must start with the expected status"));
        let req = lambda_http::request::from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let response = match (function.as_str(), mode) {
            ("token", "jwt") => handle(&jwt, req).await,
            ("token", "authorizer") => handle(&authorizer, req).await,
            _ => panic!("no runner for events/{function}/{name}.json"),
        };
        assert_eq!(response.status().as_u16(), status, "events/{function}/{name}.json: {:?}", response.body());
        let body = json_body(&response);
        if status == 200 {
            assert!(body["token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{name}: {body}");
        } else {
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json", "{name}");
            assert_eq!(body["status"], status, "{name}");
        }
    }
}
