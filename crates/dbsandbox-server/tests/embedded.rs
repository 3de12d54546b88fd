//! The embedded server against the real PostgreSQL binaries: start, query, stop, private clusters,
//! reclaim after a crash, running as root.

use dbsandbox_server::{Server, ServerConfig};

fn private_config(cache: &std::path::Path) -> ServerConfig {
    ServerConfig {
        cache_dir: Some(cache.to_path_buf()),
        private: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn starts_answers_and_stops_leaving_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(&private_config(cache.path())).await.unwrap();
    let endpoint = server.endpoint().clone();
    assert_eq!(endpoint.major_version(), endpoint.version_num / 10000);
    assert!(endpoint.version_num >= 130000);
    let client = endpoint.admin().await.unwrap();
    let row = client
        .query_one(
            "select current_setting('fsync'), current_setting('autovacuum'), current_setting('listen_addresses'), current_user",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "off");
    assert_eq!(row.get::<_, String>(1), "off");
    assert_eq!(row.get::<_, String>(2), "127.0.0.1");
    assert_eq!(row.get::<_, String>(3), "dbsandbox");
    // TCP works too, not only the socket.
    let mut tcp = endpoint.clone();
    tcp.socket_dir = None;
    tcp.admin()
        .await
        .unwrap()
        .simple_query("select 1")
        .await
        .unwrap();
    let dir = match &server {
        Server::Embedded(s) => s.cluster_dir().to_path_buf(),
        Server::External(_) => unreachable!(),
    };
    assert!(dir.join("data/PG_VERSION").exists());
    drop(client);
    server.stop().await.unwrap();
    assert!(!dir.exists(), "a private cluster is removed at stop");
    assert!(tcp.admin().await.is_err(), "the server is gone");
}

fn shared_config(cache: &std::path::Path) -> ServerConfig {
    ServerConfig {
        cache_dir: Some(cache.to_path_buf()),
        ..Default::default()
    }
}

fn embedded(server: &Server) -> &dbsandbox_server::EmbeddedServer {
    match server {
        Server::Embedded(s) => s,
        Server::External(_) => unreachable!("an embedded server was asked for"),
    }
}

#[tokio::test]
async fn users_of_the_shared_cluster_share_one_postmaster_and_the_last_stops_it() {
    let cache = tempfile::tempdir().unwrap();
    let first = Server::start(&shared_config(cache.path())).await.unwrap();
    first
        .endpoint()
        .admin()
        .await
        .unwrap()
        .batch_execute("create database kept_between_runs")
        .await
        .unwrap();
    let second = Server::start(&shared_config(cache.path())).await.unwrap();
    let pid = embedded(&first).postgres_pid().unwrap();
    assert_eq!(
        embedded(&second).postgres_pid(),
        Some(pid),
        "one postmaster"
    );
    assert!(embedded(&second).is_attached());
    assert!(!embedded(&second).is_private());
    assert_eq!(first.endpoint().port, second.endpoint().port);
    assert!(
        second.describe().contains("shared"),
        "{}",
        second.describe()
    );

    // The one that started it leaves first: the server stays for the other.
    first.stop().await.unwrap();
    second
        .endpoint()
        .admin()
        .await
        .expect("the server outlives the process that started it")
        .simple_query("select 1")
        .await
        .unwrap();
    let dir = embedded(&second).cluster_dir().to_path_buf();
    second.stop().await.unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true),
        "the last user stops the server"
    );

    let again = Server::start(&shared_config(cache.path())).await.unwrap();
    assert_eq!(embedded(&again).cluster_dir(), dir);
    assert!(!embedded(&again).is_attached(), "started afresh");
    let found = again
        .endpoint()
        .admin()
        .await
        .unwrap()
        .query_one(
            "select count(*) from pg_database where datname = 'kept_between_runs'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(
        found, 1,
        "the shared cluster keeps its databases between runs"
    );
    again.stop().await.unwrap();
}

#[tokio::test]
async fn a_killed_server_is_started_again_on_its_port() {
    let cache = tempfile::tempdir().unwrap();
    let mut first = Server::start(&shared_config(cache.path())).await.unwrap();
    let mut second = Server::start(&shared_config(cache.path())).await.unwrap();
    let pid = embedded(&first).postgres_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The attached one notices first: it restarts the server where both look for it.
    while !second.ensure_running().await.unwrap() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let restarted = embedded(&second).postgres_pid().unwrap();
    assert_ne!(restarted, pid);
    assert!(first.ensure_running().await.unwrap(), "its server had died");
    assert_eq!(
        embedded(&first).postgres_pid(),
        Some(restarted),
        "adopted, not started twice"
    );
    for server in [&first, &second] {
        server
            .endpoint()
            .admin()
            .await
            .unwrap()
            .simple_query("select 1")
            .await
            .unwrap();
    }
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

#[tokio::test]
async fn only_dbsandbox_can_connect() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(&private_config(cache.path())).await.unwrap();
    let endpoint = server.endpoint().clone();
    let socket_dir = endpoint.socket_dir.clone().expect("a socket");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&socket_dir).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "the socket directory is private");
    let secret = std::fs::metadata(
        embedded(&server)
            .cluster_dir()
            .join("data/dbsandbox.secret"),
    )
    .unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&secret.permissions()) & 0o777,
        0o600
    );

    let mut tcp = endpoint.clone();
    tcp.socket_dir = None;
    for (user, password) in [
        ("dbsandbox", None),
        ("dbsandbox", Some("wrong")),
        ("postgres", None),
        (dbsandbox_server::SANDBOX_OWNER, None),
    ] {
        let mut guess = tcp.clone();
        guess.user = user.to_string();
        guess.password = password.map(str::to_string);
        let refused = guess
            .admin()
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} with password {password:?} got in over TCP"));
        // Either the server refused the password, or it asked for one the client did not have.
        let refused_password = refused
            .as_db_error()
            .is_some_and(|e| e.code().code() == "28P01");
        let asked_for_one = format!("{refused:?}").contains("password missing");
        assert!(refused_password || asked_for_one, "{user}: {refused:?}");
    }
    // With the secret it works, and the sandbox owner role is unprivileged.
    let admin = tcp.admin().await.unwrap();
    let row = admin
        .query_one(
            "select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = $1",
            &[&dbsandbox_server::SANDBOX_OWNER],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2)
        ),
        (false, false, false)
    );
    tcp.owner()
        .admin()
        .await
        .unwrap()
        .simple_query("select 1")
        .await
        .unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn missing_binaries_name_the_fix_and_exit_2() {
    let cache = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut config = private_config(cache.path());
    config.pg_bin = Some(empty.path().to_path_buf());
    let err = Server::start(&config)
        .await
        .err()
        .expect("no binaries there");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--pg-bin"), "{err}");
}

#[tokio::test]
async fn external_server_is_checked() {
    let cache = tempfile::tempdir().unwrap();
    let embedded = Server::start(&private_config(cache.path())).await.unwrap();
    let url = embedded.endpoint().url("postgres");
    let external = Server::start(&ServerConfig {
        external: Some(url),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        external.endpoint().version_num,
        embedded.endpoint().version_num
    );
    assert_eq!(external.endpoint().user, "dbsandbox");
    external.stop().await.unwrap();
    // Stopping an external server leaves it running.
    embedded.endpoint().admin().await.unwrap();

    let bad = Server::start(&ServerConfig {
        external: Some("postgres://nobody@127.0.0.1:1/x".to_string()),
        ..Default::default()
    })
    .await
    .err()
    .expect("nothing listens on port 1");
    assert_eq!(bad.exit_code(), 2);
    assert!(bad.to_string().contains("cannot connect"), "{bad}");
    embedded.stop().await.unwrap();
}

#[tokio::test]
async fn a_cluster_from_before_passwords_is_closed_at_its_next_start() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(&shared_config(cache.path())).await.unwrap();
    let data = embedded(&server).cluster_dir().join("data");
    server.stop().await.unwrap();
    // What an older dbsandbox left: initdb's trust-everything rules, no secrets.
    std::fs::remove_file(data.join("dbsandbox.secret")).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();

    let server = Server::start(&shared_config(cache.path())).await.unwrap();
    assert!(data.join("dbsandbox.secret").exists());
    let mut guess = server.endpoint().clone();
    guess.socket_dir = None;
    guess.password = None;
    assert!(
        guess.admin().await.is_err(),
        "TCP without the secret is refused"
    );
    guess.password = server.endpoint().password.clone();
    guess.admin().await.expect("and works with it");
    server.stop().await.unwrap();
}
