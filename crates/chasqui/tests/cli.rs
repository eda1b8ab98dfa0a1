//! The binary's maintenance commands against a real SQLite file: migrate, project create,
//! key create/list/revoke, and configuration errors that name the key and value.

use std::process::{Command, Output};

use serde_json::Value;

fn chasqui(dir: &std::path::Path, args: &[&str]) -> Output {
    std::fs::write(dir.join("empty.toml"), "").expect("config");
    Command::new(env!("CARGO_BIN_EXE_chasqui"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(dir.join("empty.toml"))
        .env_remove("CHASQUI_DATABASE_URL")
        .env_remove("CHASQUI_INSTANCE_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run chasqui")
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn project_and_key_commands() {
    let dir = tempfile::tempdir().expect("dir");
    let migrated = chasqui(dir.path(), &["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let created = json_lines(&chasqui(
        dir.path(),
        &["project", "create", "--name", "Acme"],
    ));
    let project = created[0]["project_id"]
        .as_str()
        .expect("project_id")
        .to_owned();
    let first_key = created[0]["api_key"].as_str().expect("api_key").to_owned();
    assert!(first_key.starts_with("chq_"));
    let second = json_lines(&chasqui(
        dir.path(),
        &["key", "create", "--project", &project, "--name", "ci"],
    ));
    let second_id = second[0]["id"].as_str().expect("id").to_owned();
    let listed = json_lines(&chasqui(
        dir.path(),
        &["key", "list", "--project", &project],
    ));
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|k| k.get("api_key").is_none()),
        "keys are never listed"
    );
    let listing = serde_json::to_string(&listed).expect("text");
    assert!(!listing.contains(&first_key));
    json_lines(&chasqui(
        dir.path(),
        &["key", "revoke", "--project", &project, &second_id],
    ));
    let listed = json_lines(&chasqui(
        dir.path(),
        &["key", "list", "--project", &project],
    ));
    assert_eq!(
        listed.iter().filter(|k| !k["revoked_at"].is_null()).count(),
        1
    );
    let again = chasqui(
        dir.path(),
        &["key", "revoke", "--project", &project, &second_id],
    );
    assert!(!again.status.success());
    // The key is stored hashed: its text is nowhere in the database file.
    let db = std::fs::read(dir.path().join("chasqui.db")).expect("db");
    let wal = std::fs::read(dir.path().join("chasqui.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes
                .windows(first_key.len())
                .any(|w| w == first_key.as_bytes())
        );
    }
}

#[test]
fn bad_configuration_names_key_and_value() {
    let dir = tempfile::tempdir().expect("dir");
    let out = chasqui(dir.path(), &["migrate", "--role", "boss"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("role") && err.contains("boss"), "{err}");
    let out = chasqui(
        dir.path(),
        &["migrate", "--database-url", "mysql://root:s3cret@db/x"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("database_url") && !err.contains("s3cret"),
        "{err}"
    );
    let out = chasqui(
        dir.path(),
        &["migrate", "--smtp-url", "ftp://mailer:hunter22@example.com"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("smtp") && !err.contains("hunter22"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chasqui"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env("CHASQUI_LISTEN", "not-an-address")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("listen") && err.contains("not-an-address"),
        "{err}"
    );
    // A different instance key is refused instead of silently failing to decrypt secrets.
    assert!(
        chasqui(dir.path(), &["project", "create", "--name", "first"])
            .status
            .success()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chasqui"))
        .args(["project", "create", "--name", "x", "--data-dir"])
        .arg(dir.path())
        .env(
            "CHASQUI_INSTANCE_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("instance key"),
        "{err}"
    );
    assert!(!err.contains("AAAAAAAAAAAAAAAA"), "{err}");
}

#[tokio::test]
async fn user_commands_create_list_and_reset_passwords() {
    let dir = tempfile::tempdir().expect("dir");
    json_lines(&chasqui(
        dir.path(),
        &["project", "create", "--name", "Acme"],
    ));
    let created = json_lines(&chasqui(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            " Ana@Example.com",
            "--name",
            "Ana",
            "--project-role",
            "admin",
        ],
    ));
    assert_eq!(created[0]["email"], "ana@example.com");
    assert_eq!(created[0]["role"], "admin");
    let first_password = created[0]["password"]
        .as_str()
        .expect("generated")
        .to_owned();
    assert!(first_password.len() >= 16);

    // Adding the same person twice is refused; a bad role names the value.
    let again = chasqui(
        dir.path(),
        &["user", "create", "--email", "ana@example.com"],
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("already a member"),
        "{err}"
    );
    let bad = chasqui(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "b@x.io",
            "--project-role",
            "boss",
        ],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("boss"), "{err}");
    let short = Command::new(env!("CARGO_BIN_EXE_chasqui"))
        .args(["user", "create", "--email", "c@x.io", "--data-dir"])
        .arg(dir.path())
        .args(["--config"])
        .arg(dir.path().join("empty.toml"))
        .env("CHASQUI_USER_PASSWORD", "short")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(!short.status.success() && err.contains("8 to 128"), "{err}");

    let listed = json_lines(&chasqui(dir.path(), &["user", "list"]));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].get("password").is_none());

    let reset = json_lines(&chasqui(
        dir.path(),
        &["user", "password", "--email", "ana@example.com"],
    ));
    let second_password = reset[0]["password"].as_str().expect("generated").to_owned();
    assert_ne!(second_password, first_password);

    // Only the new password logs in, and the password is stored only as an Argon2 hash.
    chasqui::install_crypto_provider();
    let config = chasqui::config::ConfigArgs {
        data_dir: Some(dir.path().to_path_buf()),
        config: Some(dir.path().join("empty.toml")),
        ..Default::default()
    };
    let app = chasqui::node::app_for_cli(&config.resolve().expect("config"))
        .await
        .expect("app");
    assert!(
        chasqui_app::users::login(&app, "ana@example.com", &first_password)
            .await
            .is_err()
    );
    let session = chasqui_app::users::login(&app, "ANA@example.com", &second_password)
        .await
        .expect("login");
    assert_eq!(session.user.name, "Ana");
    let db = std::fs::read(dir.path().join("chasqui.db")).expect("db");
    let wal = std::fs::read(dir.path().join("chasqui.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes
                .windows(second_password.len())
                .any(|w| w == second_password.as_bytes())
        );
    }
}
