//! Config text through interpolation, YAML parsing and every check, as `sluice validate` runs
//! them: the first byte picks whether the rest is the global config or a pipeline file (beside
//! the shipped other one). Problems or a config, never a panic; every problem names its file.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn root() -> &'static tempfile::TempDir {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["config", "pipelines", "schemas"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            for entry in std::fs::read_dir(repo.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap())).unwrap();
                }
            }
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, text)) = data.split_first() else { return };
    let root = root().path();
    let global = root.join("config/sluice.yaml");
    let target = if which % 2 == 0 { global.clone() } else { root.join("pipelines/logs.yaml") };
    let original = std::fs::read(&target).unwrap();
    std::fs::write(&target, text).unwrap();
    let result = sluice::config::load_with_env(&global, |k| (k == "SLUICE_INSTANCE").then(|| "fuzz".to_owned()));
    std::fs::write(&target, original).unwrap();
    if let Err(problems) = result {
        assert!(!problems.0.is_empty());
        for p in &problems.0 {
            assert!(!p.message.is_empty());
            assert!(p.file.starts_with(root), "{}", p.file.display());
        }
    }
});
