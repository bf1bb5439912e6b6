//! The `healthcheck` subcommand's check against the service over real HTTP.

mod helpers;

use contact_list_cache_backend::healthcheck::{check, CHECK_TIMEOUT};
use contact_list_cache_core::envelope::HealthStatus;
use helpers::{closed_port, spawn_app};

#[tokio::test]
async fn a_serving_backend_passes_even_when_degraded() {
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &format!("redis://127.0.0.1:{}", closed_port()))]).await;
    assert_eq!(check(&format!("{base}/health"), CHECK_TIMEOUT).await, Ok(HealthStatus::Degraded));
}

#[tokio::test]
async fn an_answer_that_is_not_the_health_body_fails() {
    let base = spawn_app(&[("REDIS_PUBLIC_URL", "redis://127.0.0.1:1")]).await;
    let err = check(&format!("{base}/nope"), CHECK_TIMEOUT).await.unwrap_err();
    assert!(err.ends_with("answered 404 Not Found"), "{err}");
}

/// Runs the built binary with `args` and only `env` (plus nothing inherited); its exit code and output.
async fn binary(args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_contact-list-cache-backend"));
    command.args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v.as_str())));
    let output = tokio::task::spawn_blocking(move || command.output().expect("the binary runs")).await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn the_subcommand_exits_0_while_the_service_answers_and_1_when_nothing_does() {
    let base = spawn_app(&[("REDIS_PUBLIC_URL", "redis://127.0.0.1:1")]).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let env = |port: String| {
        vec![
            ("INTERNAL_AUTH_KEY", helpers::AUTH_KEY.to_owned()),
            ("CACHE_ENCRYPTION_KEY", helpers::ENCRYPTION_KEY.to_owned()),
            ("SUPABASE_URL", "http://127.0.0.1:1".to_owned()),
            ("SUPABASE_JWT_SECRET", helpers::JWT_SECRET.to_owned()),
            ("HOST", "0.0.0.0".to_owned()),
            ("PORT", port),
        ]
    };
    assert_eq!(binary(&["healthcheck"], &env(port)).await, (0, "contact-list-cache-backend: degraded\n".into()));
    let (code, output) = binary(&["healthcheck"], &env(closed_port().to_string())).await;
    assert_eq!(code, 1, "{output}");
    assert!(output.starts_with("contact-list-cache-backend: unhealthy: GET http://127.0.0.1:"), "{output}");
}

#[tokio::test]
async fn bad_arguments_and_bad_configuration_exit_2_saying_why() {
    let (code, output) = binary(&["--frobnicate"], &[]).await;
    assert_eq!(code, 2);
    assert!(output.contains("usage: contact-list-cache-backend [healthcheck]"), "{output}");
    let (code, output) = binary(&["healthcheck"], &[("PORT", "99999".into())]).await;
    assert_eq!(code, 2);
    assert!(output.contains("configuration error"), "{output}");
}
