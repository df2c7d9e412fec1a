//! The compile cache: a second load deserializes the `.cwasm`; a corrupt entry is
//! recompiled, not trusted.

mod common;

use common::guest_bytes;
use tocsin_engine::{CacheOutcome, Engine, EngineConfig, Providers};

#[test]
fn second_load_hits_and_survives_restart_and_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..EngineConfig::default()
    };
    let bytes = guest_bytes("cpu_high");
    {
        let engine = Engine::new(config.clone(), Providers::default()).expect("engine");
        assert_eq!(
            engine.compile(&bytes).expect("compile").1,
            CacheOutcome::Miss
        );
        assert_eq!(engine.compile(&bytes).expect("cached").1, CacheOutcome::Hit);
    }
    // A new engine (a restart) reuses the file.
    let engine = Engine::new(config, Providers::default()).expect("engine");
    assert_eq!(engine.compile(&bytes).expect("cached").1, CacheOutcome::Hit);

    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0]
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name");
    assert!(
        name.starts_with(&tocsin_engine::sha256_hex(&bytes)),
        "{name}"
    );

    std::fs::write(&entries[0], b"torn write").expect("corrupt");
    assert_eq!(
        engine.compile(&bytes).expect("recompiled").1,
        CacheOutcome::Miss
    );
    assert_eq!(
        engine.compile(&bytes).expect("cached again").1,
        CacheOutcome::Hit
    );
}
