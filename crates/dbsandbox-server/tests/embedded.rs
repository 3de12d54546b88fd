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

#[tokio::test]
async fn shared_cluster_is_taken_once_and_persists() {
    let cache = tempfile::tempdir().unwrap();
    let shared_config = ServerConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let first = Server::start(&shared_config).await.unwrap();
    first
        .endpoint()
        .admin()
        .await
        .unwrap()
        .batch_execute("create database kept_between_runs")
        .await
        .unwrap();
    // While the first holds the shared cluster, a second start gets a private one.
    let second = Server::start(&shared_config).await.unwrap();
    let (first_dir, second_private) = match (&first, &second) {
        (Server::Embedded(a), Server::Embedded(b)) => {
            (a.cluster_dir().to_path_buf(), b.is_private())
        }
        _ => unreachable!(),
    };
    assert!(second_private);
    assert_ne!(first.endpoint().port, second.endpoint().port);
    second.stop().await.unwrap();
    first.stop().await.unwrap();

    let again = Server::start(&shared_config).await.unwrap();
    match &again {
        Server::Embedded(s) => {
            assert!(!s.is_private());
            assert_eq!(s.cluster_dir(), first_dir);
        }
        Server::External(_) => unreachable!(),
    }
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
