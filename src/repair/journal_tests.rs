//! Tests of `repair::journal`.

use super::*;

fn info(id: &str, name: &str) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: name.into(),
        image: "rancher/rancher:v2.5.7".into(),
        image_id: "sha256:1".into(),
        status: "exited".into(),
        running: false,
        restarting: false,
        started_at: None,
        restart_count: 0,
        labels: Default::default(),
        auto_remove: false,
        env: vec![],
    }
}

fn journal(id: &str) -> Journal {
    Journal {
        version: VERSION,
        container_id: id.into(),
        container_name: "rancher".into(),
        image_id: "sha256:1".into(),
        tls_path: "/tls".into(),
        phase: Phase::Wiping,
        backup: "/b/r.tar".into(),
        delete: vec!["client-admin.crt".into(), "client-admin.key".into()],
        run_id: "r1".into(),
        tool_version: "0.1.0".into(),
        started_at: "now".into(),
        updated_at: "now".into(),
    }
}

const ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[test]
fn roundtrip_keyed_by_id_found_by_the_container() {
    let d = tempfile::tempdir().unwrap();
    let j = journal(ID);
    save(d.path(), &j).unwrap();
    assert!(d.path().join(format!("journal.{ID}.json")).exists());
    assert_eq!(load(d.path(), &info(ID, "rancher")), Ok(Some(j.clone())));
    assert_eq!(load(d.path(), &info(OTHER, "rancher")), Ok(None));
    clear(d.path(), ID, "rancher");
    assert_eq!(load(d.path(), &info(ID, "rancher")), Ok(None));
}

#[test]
fn validation_refuses_other_containers_paths_and_protected_files() {
    let i = info(ID, "rancher");
    assert_eq!(journal(ID).validate(&i, "/tls"), Ok(()));
    assert!(matches!(
        journal(OTHER).validate(&i, "/tls"),
        Err(Refusal::OtherContainer { .. })
    ));
    assert!(matches!(
        journal(ID).validate(&i, "/etc"),
        Err(Refusal::OtherTlsPath { .. })
    ));
    for bad in [
        "server-ca.key",
        "client-ca.crt",
        "service.key",
        "client-kubelet.key",
        "serving-kubelet.key",
        "../db/state.db",
        "/var/lib/rancher/k3s/server/db/state.db",
        "etcd/peer-ca.key",
        "python-api.crt",
        "sub/../client-ca.key",
        "",
    ] {
        let mut j = journal(ID);
        j.delete.push(bad.into());
        assert!(
            matches!(j.validate(&i, "/tls"), Err(Refusal::Forbidden(_))),
            "{bad:?} must be refused"
        );
    }
    let mut j = journal(ID);
    j.version = 9;
    assert_eq!(j.validate(&i, "/tls"), Err(Refusal::Version(9)));
}

#[test]
fn a_garbage_journal_is_refused_not_acted_upon() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(format!("journal.{ID}.json")), b"{not json").unwrap();
    assert!(matches!(
        load(d.path(), &info(ID, "rancher")),
        Err(Refusal::Unreadable(_))
    ));
}

#[test]
fn a_version_1_journal_is_converted() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("rancher.journal.json"),
        format!(r#"{{"target":"rancher","container_id":"{ID}","tls_path":"/tls","step":"wiping","stopped_by_us":true,"backup":"/b/x.tar","delete":["client-admin.crt"],"started_at":"t"}}"#),
    )
    .unwrap();
    let j = load(d.path(), &info(ID, "rancher")).unwrap().unwrap();
    assert_eq!(j.phase, Phase::Wiping);
    assert_eq!(j.delete, vec!["client-admin.crt".to_string()]);
    assert_eq!(j.validate(&info(ID, "rancher"), "/tls"), Ok(()));
}

#[test]
fn journals_of_a_recreated_container_are_orphans() {
    let d = tempfile::tempdir().unwrap();
    save(d.path(), &journal(OTHER)).unwrap();
    let o = orphans(d.path(), "rancher", ID);
    assert_eq!(o.len(), 1);
    assert!(orphans(d.path(), "other-name", ID).is_empty());
    assert!(orphans(d.path(), "rancher", OTHER).is_empty());
    let aside = set_aside(&o[0], 7).unwrap();
    assert!(aside.to_string_lossy().ends_with(".set-aside-7"));
    assert!(orphans(d.path(), "rancher", ID).is_empty());
}
