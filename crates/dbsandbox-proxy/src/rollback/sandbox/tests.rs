//! The savepoint bookkeeping of a sandbox, without a server: what each client's statements queue.

use super::*;

/// A backend with no connection behind it: the bookkeeping needs none.
fn backend(clients: &[ClientId]) -> Backend {
    let mut backend = Backend::new(
        Box::new(tokio::io::empty()),
        Box::new(tokio::io::sink()),
        BytesMut::new(),
    );
    for &id in clients {
        let (outbox, _) = tokio::sync::mpsc::unbounded_channel();
        backend
            .clients
            .insert(id, ClientState::new(id as i32, outbox, BTreeMap::new()));
    }
    backend
}

fn run(backend: &mut Backend, id: ClientId, kind: Kind) -> Result<&'static str, ClientError> {
    backend
        .transaction_control(id, &kind, &SandboxCounters::default())
        .map(|(tag, _)| tag)
}

/// What the next batch of `id` would send before its guard.
fn work(backend: &mut Backend, id: ClientId) -> String {
    backend.take_savepoint_work(id).unwrap_or_default()
}

#[test]
fn begin_costs_nothing_until_a_statement_and_commit_releases() {
    let mut b = backend(&[1]);
    assert_eq!(
        run(&mut b, 1, Kind::Begin { read_only: None }).unwrap(),
        "BEGIN"
    );
    assert_eq!(b.pending_ops, Vec::<String>::new(), "BEGIN is lazy");
    assert_eq!(work(&mut b, 1), "SAVEPOINT dbsb_c1_1");
    assert_eq!(
        run(&mut b, 1, Kind::Commit { chain: false }).unwrap(),
        "COMMIT"
    );
    assert_eq!(work(&mut b, 1), "RELEASE SAVEPOINT dbsb_c1_1");
    // An empty transaction never reaches the server.
    run(&mut b, 1, Kind::Begin { read_only: None }).unwrap();
    run(&mut b, 1, Kind::Commit { chain: false }).unwrap();
    assert_eq!(work(&mut b, 1), "");
}

#[test]
fn a_commit_under_another_clients_savepoint_waits_for_it() {
    let mut b = backend(&[1, 2]);
    run(&mut b, 1, Kind::Begin { read_only: None }).unwrap();
    assert_eq!(work(&mut b, 1), "SAVEPOINT dbsb_c1_1");
    run(&mut b, 2, Kind::Begin { read_only: None }).unwrap();
    assert_eq!(work(&mut b, 2), "SAVEPOINT dbsb_c2_2");
    run(&mut b, 1, Kind::Commit { chain: false }).unwrap();
    assert_eq!(
        work(&mut b, 1),
        "",
        "releasing 1 now would destroy 2's savepoint"
    );
    run(&mut b, 2, Kind::Commit { chain: false }).unwrap();
    assert_eq!(
        work(&mut b, 2),
        "RELEASE SAVEPOINT dbsb_c1_1",
        "both go at once"
    );
    assert!(b.stack.is_empty());
}

#[test]
fn a_rollback_recreates_the_savepoints_of_other_clients_above_it() {
    let mut b = backend(&[1, 2]);
    run(&mut b, 1, Kind::Begin { read_only: None }).unwrap();
    work(&mut b, 1);
    run(&mut b, 2, Kind::Begin { read_only: None }).unwrap();
    work(&mut b, 2);
    assert_eq!(
        run(&mut b, 1, Kind::Rollback { chain: false }).unwrap(),
        "ROLLBACK"
    );
    assert_eq!(
        work(&mut b, 2),
        "ROLLBACK TO SAVEPOINT dbsb_c1_1; RELEASE SAVEPOINT dbsb_c1_1; SAVEPOINT dbsb_c2_2"
    );
    assert_eq!(
        b.clients[&2].status,
        TxStatus::InTx,
        "2's transaction goes on"
    );
    run(&mut b, 2, Kind::Commit { chain: false }).unwrap();
    assert_eq!(work(&mut b, 2), "RELEASE SAVEPOINT dbsb_c2_2");
}

#[test]
fn client_savepoints_follow_postgres_rules() {
    let mut b = backend(&[1]);
    assert_eq!(
        run(&mut b, 1, Kind::Savepoint("a".into()))
            .unwrap_err()
            .sqlstate,
        "25P01"
    );
    run(&mut b, 1, Kind::Begin { read_only: None }).unwrap();
    assert_eq!(
        run(&mut b, 1, Kind::Savepoint("a".into())).unwrap(),
        "SAVEPOINT"
    );
    assert_eq!(work(&mut b, 1), "SAVEPOINT dbsb_c1_1; SAVEPOINT dbsb_c1_2");
    run(&mut b, 1, Kind::Savepoint("b".into())).unwrap();
    assert_eq!(
        run(&mut b, 1, Kind::RollbackTo("a".into())).unwrap(),
        "ROLLBACK"
    );
    assert_eq!(
        work(&mut b, 1),
        "SAVEPOINT dbsb_c1_3; ROLLBACK TO SAVEPOINT dbsb_c1_2"
    );
    assert_eq!(
        run(&mut b, 1, Kind::Release("b".into()))
            .unwrap_err()
            .sqlstate,
        "3B001",
        "b went with the rollback to a"
    );
    assert_eq!(
        run(&mut b, 1, Kind::Release("a".into())).unwrap(),
        "RELEASE"
    );
    assert_eq!(work(&mut b, 1), "RELEASE SAVEPOINT dbsb_c1_2");
    // A failed transaction ends with ROLLBACK whatever the client says.
    b.client_failed(1);
    assert_eq!(
        run(&mut b, 1, Kind::Savepoint("c".into()))
            .unwrap_err()
            .sqlstate,
        "25P02"
    );
    assert_eq!(
        run(&mut b, 1, Kind::Commit { chain: false }).unwrap(),
        "ROLLBACK"
    );
    assert_eq!(
        work(&mut b, 1),
        "ROLLBACK TO SAVEPOINT dbsb_c1_1; RELEASE SAVEPOINT dbsb_c1_1"
    );
    assert_eq!(b.clients[&1].status, TxStatus::Idle);
}

#[test]
fn notify_waits_for_commit_and_is_dropped_by_rollback() {
    let mut b = backend(&[1, 2]);
    let (outbox, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    b.clients
        .insert(2, ClientState::new(2, outbox, BTreeMap::new()));
    b.clients.get_mut(&2).unwrap().listens.insert("ch".into());
    run(&mut b, 1, Kind::Begin { read_only: None }).unwrap();
    b.notify(1, "ch", "one");
    b.notify(1, "ch", "one");
    assert!(inbox.try_recv().is_err(), "nothing before COMMIT");
    run(&mut b, 1, Kind::Commit { chain: false }).unwrap();
    assert!(inbox.try_recv().is_ok());
    assert!(
        inbox.try_recv().is_err(),
        "duplicates in one transaction fold into one"
    );
    run(&mut b, 1, Kind::Begin { read_only: None }).unwrap();
    b.notify(1, "ch", "two");
    run(&mut b, 1, Kind::Rollback { chain: false }).unwrap();
    assert!(inbox.try_recv().is_err(), "a rollback drops it");
    b.notify(1, "ch", "three");
    assert!(
        inbox.try_recv().is_ok(),
        "outside a transaction it goes at once"
    );
}

#[test]
fn rollback_to_a_savepoint_drops_the_notifications_made_after_it() {
    let mut b = backend(&[1, 2]);
    let (outbox, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    b.clients
        .insert(2, ClientState::new(2, outbox, BTreeMap::new()));
    b.clients.get_mut(&2).unwrap().listens.insert("ch".into());
    run(&mut b, 1, Kind::Begin { read_only: None }).unwrap();
    b.notify(1, "ch", "before");
    run(&mut b, 1, Kind::Savepoint("a".into())).unwrap();
    b.notify(1, "ch", "undone");
    run(&mut b, 1, Kind::Savepoint("b".into())).unwrap();
    b.notify(1, "ch", "undone too");
    run(&mut b, 1, Kind::RollbackTo("a".into())).unwrap();
    b.notify(1, "ch", "after");
    run(&mut b, 1, Kind::Commit { chain: false }).unwrap();
    let payloads: Vec<Vec<u8>> = std::iter::from_fn(|| inbox.try_recv().ok())
        .map(|message| message[9..message.len() - 1].to_vec())
        .collect();
    assert_eq!(payloads, [b"ch\0before".to_vec(), b"ch\0after".to_vec()]);
}
